"""The shipped default model: it loads, fits the size budget, and hears the example scene's
source on the side the camera sees it (examples/scene.*: a cow walking from +26 deg, right,
to -24 deg, left, over 10 s; a test-split scene the model never trained on), with its side
renderer and without it."""

import json
import os

import numpy as np
import pytest

import streambin
from streambin import media
from streambin.bundle import default_bundle_path, load_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_bundle_is_shipped_and_small():
    path = default_bundle_path()
    size_mb = sum(p.stat().st_size for p in path.iterdir()) / 1e6
    assert size_mb < 25.0, f"default bundle is {size_mb:.2f} MB (the budget: under 25 MB)"
    b = load_bundle("default")
    assert (b.sample_rate, b.n_fft, b.win_length, b.hop, b.context_frames) == (16000, 512, 400, 160, 64)
    assert b.side_renderer is not None and b.side_renderer["peaks"] == 4


def _ild_db(out, start_s, end_s, rate):
    seg = out[:, int(start_s * rate):int(end_s * rate)].astype(np.float64)
    return 10 * np.log10(np.sum(seg[1] ** 2) / np.sum(seg[0] ** 2))  # > 0: right ear louder


def _stream(sp, mono, frame_for):
    """Stream ``mono`` in 100 ms chunks with ``frame_for(i)`` as chunk i's frame; output aligned."""
    sp.reset()
    chunk = sp.sample_rate // 10
    out = [sp.process(mono[i:i + chunk], frame_for(i // chunk)) for i in range(0, len(mono), chunk)]
    return np.concatenate(out + [sp.flush()], axis=1)[:, sp.latency_samples:sp.latency_samples + len(mono)]


def test_default_model_puts_the_source_where_the_camera_sees_it():
    mono, rate = media.read_mono(os.path.join(ROOT, "examples", "scene.wav"))
    frames = [f for _, f in media.iter_video_frames(os.path.join(ROOT, "examples", "scene.mp4"))]

    def frame(i):
        return frames[min(i, len(frames) - 1)]

    with streambin.Spatializer("default", sample_rate=rate) as sp:
        assert sp.backend.name == "onnxruntime" and sp.backend.device == "cpu"
        assert sp.mirror_average and sp.block_frames == 3  # the bundle asks for mirror averaging
        assert sp.side_renderer                            # ... and blends its rendered side
        out = _stream(sp, mono, frame)
        # Mirrored pictures, and a picture that shows nothing (uniform grey).
        out_m = _stream(sp, mono, lambda i: np.ascontiguousarray(frame(i)[:, ::-1]))
        out_g = _stream(sp, mono, lambda i: np.full_like(frame(i), 128))
    assert out.shape == (2, len(mono)) and np.isfinite(out).all()
    assert _ild_db(out, 0.5, 2.5, rate) > 0.5      # cow on the right
    assert _ild_db(out, 7.5, 9.5, rate) < -0.5     # cow on the left
    # Mirrored pictures move it to the other side, exactly (mirror averaging) ...
    np.testing.assert_allclose(out_m, out[::-1], rtol=0, atol=1e-4)
    # ... and the grey picture leaves the sound in the centre.
    np.testing.assert_allclose(out_g[0], out_g[1], rtol=0, atol=1e-5)


def test_default_model_without_its_side_renderer_still_follows_the_picture():
    """The model alone (side_renderer=False): the cow on the right, then on the left, a grey
    picture centred."""
    mono, rate = media.read_mono(os.path.join(ROOT, "examples", "scene.wav"))
    frames = [f for _, f in media.iter_video_frames(os.path.join(ROOT, "examples", "scene.mp4"))]
    with streambin.Spatializer("default", sample_rate=rate, side_renderer=False) as sp:
        assert not sp.side_renderer
        out = _stream(sp, mono, lambda i: frames[min(i, len(frames) - 1)])
        out_g = _stream(sp, mono, lambda i: np.full_like(frames[0], 128))
    assert _ild_db(out, 0.5, 2.5, rate) > 0.5
    assert _ild_db(out, 7.5, 9.5, rate) < -0.5
    np.testing.assert_allclose(out_g[0], out_g[1], rtol=0, atol=1e-5)


def test_default_model_without_mirror_averaging_still_follows_the_picture():
    """The cheaper setting (networks run once per block) for machines that cannot afford twice."""
    mono, rate = media.read_mono(os.path.join(ROOT, "examples", "scene.wav"))
    frames = [f for _, f in media.iter_video_frames(os.path.join(ROOT, "examples", "scene.mp4"))]
    with streambin.Spatializer("default", sample_rate=rate, mirror_average=False) as sp:
        assert not sp.mirror_average and sp.block_frames == 2
        out = _stream(sp, mono, lambda i: frames[min(i, len(frames) - 1)])
        out_g = _stream(sp, mono, lambda i: np.full_like(frames[0], 128))
    assert _ild_db(out, 0.5, 2.5, rate) > 0.5
    assert _ild_db(out, 7.5, 9.5, rate) < -0.5
    assert abs(_ild_db(out_g, 0.0, 10.0, rate)) < 1.0
