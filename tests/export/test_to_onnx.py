"""export.to_onnx: checkpoint -> bundle round trips, fp16, atomicity, CLI errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import export.to_onnx as to_onnx
from export import probe_inputs
from streambin.backends import create_backend
from streambin.bundle import load_bundle
from tests.export.factory import exported_bundle, make_checkpoint, make_tiny_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arch, mask_kind, n_masks", [("unet", "side", 1),
                                                      ("apnet", "left_right", 2)])
def test_round_trip_onnxruntime_equals_pytorch(arch, mask_kind, n_masks):
    import torch

    bundle, model, _ = exported_bundle(arch)
    assert bundle.mask_kind == mask_kind and bundle.n_masks == n_masks
    assert bundle.arch == arch and bundle.feature_shape == tuple(model.feature_shape)
    assert bundle.visual_size == (32, 64) and bundle.context_frames == 64
    exp = bundle.config["export"]
    assert exp["opset"] == 17 and exp["fp16"] is False
    assert 0 <= exp["max_abs_err_audio"] <= to_onnx.TOL_FP32
    assert set(bundle.config["versions"]) >= {"streambin", "torch", "onnx", "onnxruntime"}

    # fresh inputs, not those of the export's own check
    rng = np.random.default_rng(123)
    for batch in (1, 3):
        frames = rng.integers(0, 256, (batch, 32, 64, 3), dtype=np.uint8)
        spec = (rng.standard_normal((batch, 2, 257, 64)) * 0.3).astype(np.float32)
        with torch.inference_mode():
            feat_t = model.visual(torch.from_numpy(frames)).numpy()
            mask_t = model.audio(torch.from_numpy(spec), torch.from_numpy(feat_t)).numpy()
        with create_backend(bundle, backend="onnxruntime", device="cpu") as be:
            feat_o = be.visual(frames)
            mask_o = be.audio(spec, feat_t)
            mask_chain = be.audio(spec, feat_o)
        assert mask_o.shape == (batch, n_masks, 2, 257, 64)
        assert mask_t.std() > 0.05
        np.testing.assert_allclose(feat_o, feat_t, atol=1e-4 * max(1.0, np.abs(feat_t).max()))
        np.testing.assert_allclose(mask_o, mask_t, atol=to_onnx.TOL_FP32)
        np.testing.assert_allclose(mask_chain, mask_t, atol=1e-3)
        # the Nyquist row is the fixed value of the contract
        nyq = 0.0 if mask_kind == "side" else 1.0
        np.testing.assert_array_equal(mask_o[:, :, 0, 256], nyq)
        np.testing.assert_array_equal(mask_o[:, :, 1, 256], 0.0)


def test_weights_pt_reloads_the_same_generator():
    import torch

    from streambin.train.checkpoint import load_generator

    bundle, model, _ = exported_bundle("unet")
    reloaded, cfg = load_generator(str(bundle.weights))
    assert cfg.model.arch == "unet"
    ref = model.state_dict()
    for k, v in reloaded.state_dict().items():
        assert torch.equal(v, ref[k]), k
    ckpt = torch.load(str(bundle.weights), weights_only=False)
    assert ckpt["optimizer"] is None and all(k.startswith("generator.") for k in ckpt["model"])


def _path_to_first_compute(model, output="mask"):
    """Nodes on every path from ``output`` back to the first Conv/ConvTranspose."""
    producer = {o: n for n in model.graph.node for o in n.output}
    seen, stack, nodes = set(), [output], []
    while stack:
        n = producer.get(stack.pop())
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        nodes.append(n)
        if n.op_type not in ("Conv", "ConvTranspose"):
            stack.extend(n.input)
    return nodes


def test_fp16_export_keeps_head_float32_and_io_types():
    import onnx
    import torch

    bundle, model, _ = exported_bundle("apnet", fp16=True)
    exp = bundle.config["export"]
    assert exp["fp16"] is True and exp["max_abs_err_audio"] <= to_onnx.TOL_FP16 * model.mask_bound
    for name in ("visual", "audio"):
        g = onnx.load(str(bundle.graphs[name]))
        n_half = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in g.graph.initializer)
        assert n_half > 0, f"{name}: no float16 weights, the conversion did nothing"
    g = onnx.load(str(bundle.graphs["audio"]))
    head = _path_to_first_compute(g)
    convs = [n for n in head if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 2  # the left and right mask heads
    inits = {t.name: t for t in g.graph.initializer}
    for n in convs:
        assert inits[n.input[1]].data_type == onnx.TensorProto.FLOAT, n.name
    casts_to_half = [n for n in head if n.op_type == "Cast"
                     and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16
                             for a in n.attribute)]
    assert casts_to_half == [], "the mask head passes through float16"

    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    spec = (rng.standard_normal((2, 2, 257, 64)) * 0.3).astype(np.float32)
    with torch.inference_mode():
        feat_t = model.visual(torch.from_numpy(frames)).numpy()
        mask_t = model.audio(torch.from_numpy(spec), torch.from_numpy(feat_t)).numpy()
    with create_backend(bundle, backend="onnxruntime", device="cpu") as be:
        feat_o, mask_o = be.visual(frames), be.audio(spec, feat_t)
    assert feat_o.dtype == mask_o.dtype == np.float32
    np.testing.assert_allclose(feat_o, feat_t, atol=to_onnx.TOL_FP16 * np.abs(feat_t).max())
    np.testing.assert_allclose(mask_o, mask_t, atol=to_onnx.TOL_FP16 * model.mask_bound)


def test_parity_failure_writes_nothing(tmp_path, monkeypatch):
    ckpt = tmp_path / "ck.pt"
    make_checkpoint(ckpt, "unet", seed=1)
    existing = make_tiny_bundle(tmp_path / "out")
    before = (existing / "config.json").read_text()
    monkeypatch.setattr(to_onnx, "TOL_FP32", 0.0)  # any rounding difference now fails
    with pytest.raises(to_onnx.ExportError, match=r"differs from PyTorch by .* over the tolerance"):
        to_onnx.export_bundle(ckpt, existing)
    assert (existing / "config.json").read_text() == before  # old bundle untouched
    assert load_bundle(existing).recipe == "test"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers


def test_refuses_to_replace_a_non_bundle_directory(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"x")
    with pytest.raises(to_onnx.ExportError, match="is not a streambin bundle; refusing"):
        to_onnx.export_bundle(tmp_path / "missing.pt", out)
    assert (out / "cat.jpg").exists()


def test_real_inputs_from_data_dir(tmp_path):
    import cv2
    import soundfile as sf

    data = tmp_path / "data"
    data.mkdir()
    t = np.arange(48000) / 48000.0
    sf.write(str(data / "clip.wav"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    cv2.imwrite(str(data / "frame.png"), np.full((100, 200, 3), 128, np.uint8))
    fields = {**{k: v for k, v in load_bundle(make_tiny_bundle(tmp_path / "b")).config.items()
                 if k in ("sample_rate", "n_fft", "win_length", "hop", "context_frames",
                          "input_rms", "rms_floor")}, "visual_size": (8, 16)}
    frames, spec, desc = probe_inputs.realistic_inputs(fields, 2, data=str(data))
    assert "clip.wav" in desc and "frame.png" in desc
    assert frames.shape == (2, 8, 16, 3) and frames.dtype == np.uint8
    assert spec.shape == (2, 2, 257, fields["context_frames"]) and spec.dtype == np.float32
    # a 440 Hz tone peaks in bin round(440 / (16000 / 512)) = 14
    mag = np.hypot(spec[0, 0], spec[0, 1]).mean(axis=1)
    assert int(np.argmax(mag)) == 14


def test_spectrogram_context_matches_torch_stft():
    import torch

    fields = {"n_fft": 512, "win_length": 400, "hop": 160, "context_frames": 64,
              "input_rms": 0.1, "rms_floor": 1e-4}
    x = probe_inputs.synthetic_audio(16000, 1.0)
    ours = probe_inputs.spectrogram_context(x, fields)
    crop = torch.from_numpy(x[:63 * 160].astype(np.float32))
    ref = torch.stft(crop, 512, 160, 400, window=torch.hann_window(400), center=True,
                     return_complex=True)
    scale = 0.1 / float(crop.pow(2).mean().sqrt())
    np.testing.assert_allclose(ours[0], ref.real.numpy() * scale, atol=1e-4)
    np.testing.assert_allclose(ours[1], ref.imag.numpy() * scale, atol=1e-4)


def test_cli_reports_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = subprocess.run([sys.executable, "-m", "export.to_onnx", "--checkpoint", str(bad),
                        "--out", str(tmp_path / "b")], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert "export.to_onnx: error:" in r.stderr and "bad.pt" in r.stderr
    assert not (tmp_path / "b").exists()


def test_config_json_is_plain_json():
    bundle, _, _ = exported_bundle("unet")
    cfg = json.loads((bundle.path / "config.json").read_text())
    assert cfg["window"] == "hann_periodic" and cfg["visual"]["input_format"] == "NHWC_uint8_RGB"
    assert cfg["graphs"] == {"visual": "visual.onnx", "audio": "audio.onnx"}
    assert "block_frames" not in json.dumps(cfg)  # runtime settings stay out of the bundle
