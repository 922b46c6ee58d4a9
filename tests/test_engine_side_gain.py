"""The side gain (Spatializer(side_gain=...), config.json "inference": {"side_gain": G}): the part of
the masks that differs between the ears scaled by G, the mid kept. Through the engine it must equal
the model's own output with its side scaled, on every CPU path and for both mask kinds."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.to_onnx import export_bundle
from streambin import Spatializer
from streambin.bundle import BundleError, load_bundle, write_config
from streambin.signal_contract import MAX_SIDE_GAIN, check_side_gain, scale_side, scale_side_output
from tests.export.factory import make_checkpoint
from tests.test_engine_mirror_average import _scene, _stream

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", ["side", "left_right"])
@pytest.mark.parametrize("gain", [0.0, 1.0, 1.5, 3.0])
def test_scaled_masks_keep_the_mid_and_scale_the_side(kind, gain):
    rng = np.random.default_rng(2)
    n = 1 if kind == "side" else 2
    masks = rng.uniform(-1, 1, (n, 2, 9, 4)).astype(np.float32)
    out = scale_side(masks, gain, kind)
    if kind == "side":  # L = M + S M, R = M - S M: the side mask is the side
        np.testing.assert_allclose(out, gain * masks, rtol=0, atol=1e-6)
    else:
        np.testing.assert_allclose(out[0] + out[1], masks[0] + masks[1], rtol=0, atol=1e-6)
        np.testing.assert_allclose(out[0] - out[1], gain * (masks[0] - masks[1]), rtol=0, atol=1e-6)
    in_place = masks.copy()
    assert scale_side(in_place, gain, kind, out=in_place) is in_place  # aliasing is allowed
    np.testing.assert_allclose(in_place, out, rtol=0, atol=1e-6)
    strided = np.zeros((n, 2, 9, 10), np.float32)
    strided[..., 3:7] = masks
    np.testing.assert_allclose(scale_side(strided[..., 3:7], gain, kind), out, rtol=0, atol=1e-6)


def test_scale_side_and_the_gain_check_name_what_they_expect():
    masks = np.zeros((1, 2, 9, 4), np.float32)
    for bad in (-0.1, MAX_SIDE_GAIN + 0.5, float("nan"), float("inf"), True, "1.5", None):
        with pytest.raises(ValueError, match=r"side_gain must be a number in \[0, 4\]"):
            check_side_gain(bad)
    assert check_side_gain(np.float32(1.25)) == 1.25 and isinstance(check_side_gain(2), float)
    with pytest.raises(ValueError, match="mask_kind must be one of"):
        scale_side(masks, 1.5, "both")
    with pytest.raises(ValueError, match=r"masks must be \(n_masks=2, 2, F, k\)"):
        scale_side(masks, 1.5, "left_right")
    with pytest.raises(ValueError, match="out must be"):
        scale_side(masks, 1.5, "side", out=np.zeros((1, 2, 9, 3), np.float32))
    with pytest.raises(ValueError, match=r"binaural must be \(2, n\)"):
        scale_side_output(np.zeros((3, 10), np.float32), 1.5)


def test_scaled_output_has_the_same_mid_and_gain_times_the_side():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 100)).astype(np.float32)
    y = scale_side_output(x, 1.7)
    assert y.shape == (2, 100) and y.dtype == np.float32
    np.testing.assert_allclose(y[0] + y[1], x[0] + x[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(y[0] - y[1], 1.7 * (x[0] - x[1]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(scale_side_output(x, 1.0), x, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A side-mask (U-Net) and a left/right-mask (APNet) bundle, plain, and the U-Net again
    exported with a side gain in its config."""
    root = tmp_path_factory.mktemp("side_gain")
    out = {}
    for arch in ("unet", "apnet"):
        ckpt = root / f"{arch}.pt"
        make_checkpoint(ckpt, arch, seed=0)
        out[arch] = export_bundle(str(ckpt), root / arch)
    out["unet_gain"] = export_bundle(str(root / "unet.pt"), root / "unet_gain", engine_mirror_average=True,
                                     side_gain=1.5)
    return out


@pytest.mark.parametrize("arch", ["unet", "apnet"])
@pytest.mark.parametrize("rate,mirror_average", [(16000, False), (16000, True), (48000, False), (44100, True)])
def test_engine_output_is_the_plain_output_with_its_side_scaled(bundles, arch, rate, mirror_average):
    """The model-rate path (16 kHz) and the full-band path (48 and 44.1 kHz, masks extended
    above the model's band from the scaled masks), with and without mirror averaging."""
    mono, frame = _scene(seconds=0.6, rate=rate)
    outs = {}
    for gain in (1.0, 1.8):
        with Spatializer(bundles[arch].path, backend="onnxruntime", sample_rate=rate, block_frames=2,
                         mirror_average=mirror_average, side_gain=gain) as sp:
            assert sp.side_gain == gain and sp.stats["side_gain"] == gain
            assert sp.full_band == (rate != 16000)
            outs[gain] = _stream(sp, mono, frame, rate // 100)
    plain, wide = outs[1.0], outs[1.8]
    # Above the model's band the full-band path extends the masks by the power they pass over
    # 4-8 kHz (streambin.full_band), which is close to, not exactly, linear in the masks: a
    # looser tolerance there. The output's side is still 1.8 times the plain one's.
    tol = (2e-5 if rate == 16000 else 1e-4) * np.abs(plain).max()
    assert np.abs(wide - plain).max() > 20 * tol  # the model makes a side worth scaling
    if arch == "unet":  # a side mask extends above the model's band as one side mask
        np.testing.assert_allclose(wide, scale_side_output(plain, 1.8), rtol=0, atol=tol)
    else:
        # Left/right masks are extended above the model's band as per-ear power gains (not linear
        # in the masks): compare the resampling path, where the masks are all there is.
        if rate == 16000:
            np.testing.assert_allclose(wide, scale_side_output(plain, 1.8), rtol=0, atol=tol)
        else:
            assert np.sqrt(np.mean((wide[0] - wide[1]) ** 2)) > np.sqrt(np.mean((plain[0] - plain[1]) ** 2))


def test_zero_gain_gives_the_same_signal_in_both_ears(bundles):
    mono, frame = _scene(seconds=0.6)
    with Spatializer(bundles["unet"].path, backend="onnxruntime", sample_rate=16000, side_gain=0.0) as sp:
        out = _stream(sp, mono, frame, 160)
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-7)
    assert np.abs(out).max() > 0.05


def test_the_bundle_gain_is_the_default_and_the_caller_overrides_it(bundles, tmp_path):
    b = bundles["unet_gain"]
    assert b.config["inference"] == {"mirror_average": True, "side_gain": 1.5}
    assert b.inference_side_gain == 1.5 and bundles["unet"].inference_side_gain == 1.0
    assert "inference" not in bundles["unet"].config  # nothing but defaults: no section
    mono, frame = _scene(seconds=0.6)
    with Spatializer(b.path, backend="onnxruntime", sample_rate=16000) as sp:
        assert sp.side_gain == 1.5 and sp.mirror_average
        own = _stream(sp, mono, frame, 160)
    with Spatializer(b.path, backend="onnxruntime", sample_rate=16000, side_gain=1.0) as sp:
        assert sp.side_gain == 1.0
        plain = _stream(sp, mono, frame, 160)
    np.testing.assert_allclose(own, scale_side_output(plain, 1.5), rtol=0, atol=2e-5 * np.abs(plain).max())


def test_bad_gains_fail_clearly_in_the_engine_config_and_export(bundles, tmp_path):
    path = bundles["unet"].path
    for bad in (-1, 4.5, float("nan"), "wide"):
        with pytest.raises(ValueError, match=r"side_gain must be a number in \[0, 4\]"):
            Spatializer(path, backend="onnxruntime", sample_rate=16000, side_gain=bad)
    # the GPU pipeline runs the model's masks as they are: asking for both is refused
    with pytest.raises(ValueError, match="gpu_pipeline=True applies no side gain"):
        Spatializer(path, backend="onnxruntime", sample_rate=16000, side_gain=1.5, mirror_average=False,
                    gpu_pipeline=True)
    cfg = json.loads((path / "config.json").read_text())
    for bad in (-0.5, "1.5", None, 9):
        broken = tmp_path / f"broken_{bad}"
        broken.mkdir()
        for f in path.iterdir():
            if f.is_file():
                (broken / f.name).write_bytes(f.read_bytes())
        (broken / "config.json").write_text(json.dumps(dict(cfg, inference={"side_gain": bad})))
        with pytest.raises(BundleError, match=r"\['inference'\]: side_gain must be a number in \[0, 4\]"):
            load_bundle(broken)
    (tmp_path / "never").mkdir()
    with pytest.raises(BundleError, match="side_gain must be"):
        write_config(tmp_path / "never", dict(cfg, inference={"side_gain": -2}))
    assert not (tmp_path / "never" / "config.json").exists()


def test_export_cli_writes_the_gain_and_refuses_a_bad_one(tmp_path):
    """Run as a user would (a subprocess: the CLI sets up logging for its own process)."""
    ckpt = tmp_path / "unet.pt"
    make_checkpoint(ckpt, "unet", seed=1)
    cmd = [sys.executable, "-m", "export.to_onnx", "--checkpoint", str(ckpt)]
    ok = subprocess.run(cmd + ["--out", str(tmp_path / "b"), "--side-gain", "1.25"], capture_output=True, text=True,
                        cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert load_bundle(tmp_path / "b").config["inference"] == {"side_gain": 1.25}
    bad = subprocess.run(cmd + ["--out", str(tmp_path / "c"), "--side-gain", "-1"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 2 and "side_gain must be a number in [0, 4]" in bad.stderr
    assert not (tmp_path / "c").exists()
