"""The engine's mirror averaging (Spatializer(mirror_average=...)): a plain bundle run twice per
block, once with the frame's feature and once with its mirror image's, the masks averaged with
the ears swapped. It must equal a graph exported with the averaging inside it, and give a
mirrored scene exactly swapped ears."""

import json

import numpy as np
import pytest
import torch

from export.to_onnx import export_bundle
from streambin import Spatializer
from streambin.bundle import BundleError, load_bundle, write_config
from streambin.signal_contract import average_mirrored_masks, average_mirrored_masks_torch
from tests.export.factory import make_checkpoint


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The same weights as a plain bundle whose config asks the engine to average, and as a
    bundle that averages inside its graph."""
    root = tmp_path_factory.mktemp("engine_mirror")
    ckpt = root / "unet.pt"
    make_checkpoint(ckpt, "unet", seed=0)
    plain = export_bundle(str(ckpt), root / "plain", engine_mirror_average=True)
    graph = export_bundle(str(ckpt), root / "graph", mirror_average=True)
    return plain, graph


def _scene(seconds=1.0, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    mono = (0.3 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    frame = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
    return mono, frame


def _stream(sp, mono, picture, chunk):
    out = [sp.process(mono[i:i + chunk], picture if i == 0 else None) for i in range(0, len(mono), chunk)]
    return np.concatenate(out + [sp.flush()], axis=1)


@pytest.mark.parametrize("kind", ["side", "left_right"])
def test_numpy_and_torch_averaging_agree_and_swap_the_ears(kind):
    rng = np.random.default_rng(1)
    n = 1 if kind == "side" else 2
    own = rng.uniform(-1, 1, (n, 2, 9, 4)).astype(np.float32)
    mirrored = rng.uniform(-1, 1, (n, 2, 9, 4)).astype(np.float32)
    out = average_mirrored_masks(own, mirrored, kind)
    expected = 0.5 * (own - mirrored) if kind == "side" else 0.5 * (own + mirrored[::-1])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-7)
    torch_out = average_mirrored_masks_torch(torch.from_numpy(own)[None], torch.from_numpy(mirrored)[None], kind)
    np.testing.assert_allclose(torch_out[0].numpy(), out, rtol=0, atol=1e-7)
    # averaging the mirrored pair the other way round gives the ears swapped
    swapped = average_mirrored_masks(mirrored, own, kind)
    np.testing.assert_allclose(swapped, -out if kind == "side" else out[::-1], rtol=0, atol=1e-7)
    buf = np.zeros_like(own)
    assert average_mirrored_masks(own, mirrored, kind, out=buf) is buf
    with pytest.raises(ValueError, match="own and mirrored must both be"):
        average_mirrored_masks(own, mirrored[:, :, :5], kind)
    with pytest.raises(ValueError, match="out must be"):
        average_mirrored_masks(own, mirrored, kind, out=np.zeros((n, 2, 9, 3), np.float32))
    with pytest.raises(ValueError, match="mask_kind must be one of"):
        average_mirrored_masks(own, mirrored, "centre")


@pytest.mark.parametrize("rate, chunk", [(16000, 160), (48000, 441)])  # model-rate and full-band runners
def test_engine_averaging_equals_the_averaging_graph(bundles, rate, chunk):
    plain, graph = bundles
    mono, frame = _scene(rate=rate)
    engine = Spatializer(plain.path, sample_rate=rate, block_frames=2)
    inside = Spatializer(graph.path, sample_rate=rate, block_frames=2)
    off = Spatializer(plain.path, sample_rate=rate, block_frames=2, mirror_average=False)
    assert engine.mirror_average and inside.mirror_average and not off.mirror_average
    assert engine.visual.mirror_average and not inside.visual.mirror_average  # who does the averaging
    a, b, c = (_stream(sp, mono, frame, chunk) for sp in (engine, inside, off))
    for sp in (engine, inside, off):
        sp.close()
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert np.abs(a - c).max() > 1e-3  # the averaging changes the output


def test_a_mirrored_scene_swaps_the_ears_and_grey_is_centred(bundles):
    plain, _ = bundles
    mono, frame = _scene()
    with Spatializer(plain.path, sample_rate=16000) as sp:
        out = _stream(sp, mono, frame, 160)
        sp.reset()
        mirrored = _stream(sp, mono, np.ascontiguousarray(frame[:, ::-1]), 160)
        sp.reset()
        grey = _stream(sp, mono, np.full((48, 96, 3), 128, np.uint8), 160)
    assert np.abs(out[0] - out[1]).max() > 1e-3
    np.testing.assert_allclose(mirrored, out[::-1], rtol=0, atol=1e-4)
    np.testing.assert_allclose(grey[0], grey[1], rtol=0, atol=1e-5)
    with Spatializer(plain.path, sample_rate=16000, mirror_average=False) as sp:
        plain_out = _stream(sp, mono, frame, 160)
        sp.reset()
        plain_mirrored = _stream(sp, mono, np.ascontiguousarray(frame[:, ::-1]), 160)
    assert np.abs(plain_mirrored - plain_out[::-1]).max() > 1e-3  # not so without it


def test_threaded_visual_gives_the_same_stream(bundles):
    plain, _ = bundles
    mono, frame = _scene()
    with Spatializer(plain.path, sample_rate=16000) as sync:
        expected = _stream(sync, mono, frame, 1600)
    with Spatializer(plain.path, sample_rate=16000, threaded_visual=True) as sp:
        sp.process(np.zeros(0, np.float32), frame)
        sp.visual.wait_idle()
        assert sp.visual.current.shape == (2,) + tuple(plain.feature_shape)
        got = np.concatenate([sp.process(mono[i:i + 1600]) for i in range(0, len(mono), 1600)] + [sp.flush()],
                             axis=1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_defaults_follow_the_bundle_and_the_block_grows(bundles, tmp_path):
    plain, graph = bundles
    with Spatializer(plain.path, sample_rate=48000) as on, \
            Spatializer(plain.path, sample_rate=48000, mirror_average=False) as off:
        assert on.block_frames == 3 and off.block_frames == 2
        assert on.latency_ms > off.latency_ms
        assert on.stats["mirror_average"] is True and off.stats["mirror_average"] is False
    with Spatializer(plain.path, sample_rate=48000, block_frames=1) as sp:
        assert sp.block_frames == 1 and sp.mirror_average  # an explicit block is kept
    # a bundle without the inference section runs plain unless asked
    cfg = json.loads((plain.path / "config.json").read_text())
    del cfg["inference"]
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("audio.onnx", "visual.onnx"):
        (bare / name).write_bytes((plain.path / name).read_bytes())
    write_config(bare, cfg)
    with Spatializer(bare, sample_rate=16000) as sp, Spatializer(bare, sample_rate=16000, mirror_average=True) as on:
        assert not sp.mirror_average and sp.block_frames == 2 and on.mirror_average


def test_bad_settings_are_refused(bundles, tmp_path):
    plain, graph = bundles
    with pytest.raises(ValueError, match="averages inside its graph"):
        Spatializer(graph.path, mirror_average=False)
    with pytest.raises(ValueError, match="mirror_average must be True, False or None"):
        Spatializer(plain.path, mirror_average="yes")
    with pytest.raises(ValueError, match="gpu_pipeline=True does not do mirror averaging"):
        Spatializer(plain.path, backend="torch", device="cpu", gpu_pipeline=True)
    cfg = json.loads((plain.path / "config.json").read_text())
    cfg["inference"] = {"mirror_average": "on"}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="'inference' must be an object"):
        load_bundle(bad, check_graphs=False)


def test_the_auto_block_measures_both_runs(bundles):
    plain, _ = bundles
    with Spatializer(plain.path, sample_rate=16000, block_frames="auto") as sp:
        assert sp.mirror_average and 1 <= sp.block_frames <= 16
        out = sp.process(np.zeros(1600, np.float32), np.zeros((48, 96, 3), np.uint8))
        assert out.shape == (2, 1600) and np.isfinite(out).all()
