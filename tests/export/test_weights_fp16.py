"""export.to_onnx --weights-fp16: half the file size, float32 compute, outputs within fp16 tolerance."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.to_onnx import TOL_FP16, export_bundle
from tests.export.factory import make_checkpoint


def test_weights_fp16_halves_the_graphs_and_keeps_float32_compute(tmp_path):
    # Variance-preserving random weights: at its initialisation the tiny U-Net's masks do not
    # depend on its large (float16-stored) layers at all (scaling them by 1.01 changes no mask
    # value), so there would be no rounding to see.
    ckpt = tmp_path / "unet.pt"
    make_checkpoint(ckpt, "unet", seed=0)
    full = export_bundle(str(ckpt), tmp_path / "full")
    half = export_bundle(str(ckpt), tmp_path / "half", weights_fp16=True, torch_weights=False)
    assert half.weights is None and full.weights is not None
    for name in ("visual", "audio"):
        ratio = half.graphs[name].stat().st_size / full.graphs[name].stat().st_size
        assert ratio < 0.6, f"{name}.onnx only shrank to {ratio:.2f}"
        graph = onnx.load(str(half.graphs[name]))
        casts = [n for n in graph.graph.node if n.op_type == "Cast" and n.name.endswith("__to_fp32")]
        assert casts, "large weights should be stored as float16 behind Casts"
        assert all(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for i in graph.graph.input)
    assert half.config["export"]["weights_fp16"] is True
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2,) + tuple(full.frame_shape), dtype=np.uint8)
    spec = rng.standard_normal((2,) + tuple(full.spec_shape)).astype(np.float32)
    outs = {}
    for key, b in (("full", full), ("half", half)):
        sv = ort.InferenceSession(str(b.graphs["visual"]), providers=["CPUExecutionProvider"])
        sa = ort.InferenceSession(str(b.graphs["audio"]), providers=["CPUExecutionProvider"])
        feat = sv.run(None, {"frames": frames})[0]
        outs[key] = (feat, sa.run(None, {"spec": spec, "feature": feat})[0])
    assert outs["half"][1].dtype == np.float32
    np.testing.assert_allclose(outs["half"][1], outs["full"][1], atol=TOL_FP16)
    assert np.abs(outs["half"][1] - outs["full"][1]).max() > 0  # the rounding is real, not a copy
