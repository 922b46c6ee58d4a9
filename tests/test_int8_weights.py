"""export.int8_weights: int8 storage with float32 compute, folded by ONNX Runtime at load."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.fp16_graph import store_weights_fp16  # noqa: E402
from export.int8_weights import fold_int8_weights, store_weights_int8  # noqa: E402


def _conv_graph(rng):
    big = (rng.standard_normal((16, 8, 3, 3)) * np.linspace(0.01, 1.0, 16)[:, None, None, None]).astype(np.float32)
    small = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w_small"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["h", "w_big"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 6, 6])],
                              initializer=[numpy_helper.from_array(big, "w_big"),
                                           numpy_helper.from_array(small, "w_small")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    store_weights_fp16(model, min_elements=1)
    return model


def _run(model, x, optimized=None):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if optimized:
        opts.optimized_model_filepath = str(optimized)
    s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_largest_weight_stored_int8_per_channel_and_folded_at_load(tmp_path, rng):
    model = _conv_graph(rng)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    before = _run(model, x)
    names = store_weights_int8(model, 1)
    assert names == ["w_big"]                                  # the larger of the two
    inits = {t.name: t for t in model.graph.initializer}
    assert inits["w_big__int8"].data_type == TensorProto.INT8 and "w_big__fp16" not in inits
    assert inits["w_small__fp16"].data_type == TensorProto.FLOAT16   # the other one untouched
    onnx.checker.check_model(model)
    after = _run(model, x, tmp_path / "opt.onnx")
    # per-channel scales: every output channel, the 100x smaller ones too, stays within a few
    # per cent of its own range (one scale for the tensor would leave channel 0 about 100x worse)
    rel = np.abs(after - before).max(axis=(0, 2, 3)) / np.abs(before).max(axis=(0, 2, 3))
    assert rel.max() < 0.05, rel
    assert not np.array_equal(after, before)                   # the rounding did change something
    folded = onnx.load(str(tmp_path / "opt.onnx"))
    assert not [n for n in folded.graph.node if n.op_type in ("Cast", "Mul")]   # no per-run dequantising


def test_bad_counts_are_refused(rng):
    model = _conv_graph(rng)
    with pytest.raises(ValueError, match="stores 2 weights as float16"):
        store_weights_int8(model, 3)
    with pytest.raises(ValueError, match="count must be an int >= 0"):
        store_weights_int8(model, -1)


def test_folding_gives_float_weights_with_the_same_outputs(rng):
    model = _conv_graph(rng)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    store_weights_int8(model, 1)
    stored = _run(model, x)
    assert fold_int8_weights(model) == 1
    inits = {t.name: t for t in model.graph.initializer}
    assert inits["w_big"].data_type == TensorProto.FLOAT and "w_big__int8" not in inits
    assert not [n for n in model.graph.node if n.name.startswith("w_big__int8")]
    onnx.checker.check_model(model)
    np.testing.assert_allclose(_run(model, x), stored, rtol=1e-6, atol=1e-7)
    assert fold_int8_weights(model) == 0


def test_tensorrt_parser_gets_the_shipped_visual_graph_folded():
    from export.to_trt import _parser_bytes
    from streambin.bundle import load_bundle

    path = load_bundle("default").graphs["visual"]
    folded = onnx.load_from_string(_parser_bytes(path))
    assert not [t for t in folded.graph.initializer if t.data_type == TensorProto.INT8]
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 128, 3), dtype=np.uint8)
    shipped = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"frames": frames})[0]
    again = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"frames": frames})[0]
    np.testing.assert_allclose(again, shipped, rtol=1e-5, atol=1e-6)
