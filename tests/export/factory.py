"""Test helpers: hand-built tiny bundles (no torch) and exported tiny real-model bundles.

``make_tiny_bundle(dir)`` writes a bundle whose graphs are small hand-written ONNX graphs with
known maths (so backends can be checked against numpy):

    feature = mean over (H, W) of frames/255 @ W_VIS                  (B, 4)
    mask    = tanh(spec * (1 + mean(feature)))[:, None]               (B, 1, 2, 257, T)

``exported_bundle(arch)`` trains nothing: it builds the colleague's generator with tiny sizes,
gives it non-trivial weights, saves a checkpoint and runs export.to_onnx (cached per session).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

from streambin.bundle import make_config, write_config

TINY = {"sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop": 160,
        "context_frames": 32, "input_rms": 0.1, "rms_floor": 1e-4}
TINY_VISUAL = (8, 16)
TINY_FEATURE = (4,)
W_VIS = np.array([[0.5, -1.0, 2.0, 0.1], [1.0, 0.3, -0.2, 0.4], [-0.7, 0.2, 0.9, 1.5]],
                 np.float32)


def tiny_graphs():
    """(visual ModelProto, audio ModelProto) with a symbolic batch axis."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = TINY_VISUAL
    bins, t = TINY["n_fft"] // 2 + 1, TINY["context_frames"]
    vis = helper.make_graph(
        [helper.make_node("Cast", ["frames"], ["f32"], to=TensorProto.FLOAT),
         helper.make_node("Div", ["f32", "c255"], ["scaled"]),
         helper.make_node("ReduceMean", ["scaled", "axes12"], ["rgb"], keepdims=0),
         helper.make_node("MatMul", ["rgb", "wvis"], ["feature"])],
        "visual",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["batch", h, w, 3])],
        [helper.make_tensor_value_info("feature", TensorProto.FLOAT, ["batch", TINY_FEATURE[0]])],
        [numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
         numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
         numpy_helper.from_array(W_VIS, "wvis")])
    aud = helper.make_graph(
        [helper.make_node("ReduceMean", ["feature", "axes1"], ["fm"], keepdims=1),
         helper.make_node("Add", ["fm", "one"], ["gain"]),
         helper.make_node("Reshape", ["gain", "shape4"], ["gain4"]),
         helper.make_node("Mul", ["spec", "gain4"], ["scaled"]),
         helper.make_node("Tanh", ["scaled"], ["m"]),
         helper.make_node("Unsqueeze", ["m", "axes1"], ["mask"])],
        "audio",
        [helper.make_tensor_value_info("spec", TensorProto.FLOAT, ["batch", 2, bins, t]),
         helper.make_tensor_value_info("feature", TensorProto.FLOAT, ["batch", TINY_FEATURE[0]])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 1, 2, bins, t])],
        [numpy_helper.from_array(np.array([1], np.int64), "axes1"),
         numpy_helper.from_array(np.array(1.0, np.float32), "one"),
         numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape4")])
    opset = [helper.make_opsetid("", 18)]
    models = []
    for g in (vis, aud):
        m = helper.make_model(g, opset_imports=opset)
        m.ir_version = 9
        onnx.checker.check_model(m)
        models.append(m)
    return tuple(models)


def tiny_reference(frames: np.ndarray, spec: np.ndarray):
    """numpy reference of the tiny graphs: (feature (B, 4), mask (B, 1, 2, 257, T))."""
    rgb = (frames.astype(np.float32) / 255.0).mean(axis=(1, 2))
    feature = rgb @ W_VIS
    gain = 1.0 + feature.mean(axis=1)
    mask = np.tanh(spec * gain[:, None, None, None])[:, None]
    return feature.astype(np.float32), mask.astype(np.float32)


def tiny_config(**overrides):
    cfg = make_config(**TINY, mask_kind="side", visual_size=TINY_VISUAL,
                      feature_shape=TINY_FEATURE, recipe="test", arch="tiny", model={"ngf": 1},
                      export={"opset": 18, "fp16": False}, versions={"streambin": "test"})
    cfg.update(overrides)
    return cfg


def make_tiny_bundle(path) -> Path:
    """Write the tiny bundle into directory ``path`` (created); returns it."""
    import onnx

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vis, aud = tiny_graphs()
    onnx.save(vis, str(path / "visual.onnx"))
    onnx.save(aud, str(path / "audio.onnx"))
    write_config(path, tiny_config())
    return path


def perturb_weights(model, seed: int = 0) -> None:
    """Replace the generator's near-zero initial weights by variance-preserving random ones
    (and random BatchNorm statistics), so masks and features are far from constant and the
    parity checks compare real numbers."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel() if "ConvTranspose" not in name else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / fan_in) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + (1.0 if "weight" in name
                                                                     else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def make_checkpoint(path, arch: str, seed: int = 0):
    """Save a tiny-generator checkpoint (ngf 8, 32x64 frames, T 64) at ``path``; returns the
    (model in eval mode, Config)."""
    import torch

    from streambin.train.build import build_generator
    from streambin.train.checkpoint import save_checkpoint
    from streambin.train.config import config_from_dict

    recipe = {"unet": "mono2binaural", "apnet": "apnet"}[arch]
    cfg = config_from_dict({"recipe": recipe,
                            "model": {"arch": arch, "ngf": 8, "visual_size": [32, 64]}})
    torch.manual_seed(seed)
    model = build_generator(cfg)
    perturb_weights(model, seed)
    model.eval()
    save_checkpoint(str(path), config=cfg, model=model)
    return model, cfg


_TMP = []


def _cleanup():
    for d in _TMP:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


@functools.lru_cache(maxsize=None)
def exported_bundle(arch: str, fp16: bool = False):
    """(bundle, model, checkpoint path) for a tiny ``arch`` generator exported once per session."""
    from export.to_onnx import export_bundle

    root = Path(tempfile.mkdtemp(prefix=f"sb_{arch}_"))
    _TMP.append(root)
    ckpt = root / "ckpt.pt"
    model, _ = make_checkpoint(ckpt, arch)
    bundle = export_bundle(ckpt, root / "bundle", fp16=fp16)
    return bundle, model, ckpt
