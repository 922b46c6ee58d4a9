"""streambin.spatialize: whole clips, every accepted input form, any sample rate, mirror.

Tiny exported models with random weights (tests/conftest.py): a side-mask U-Net, so the mid
signal (L + R) / 2 of the output is the input itself, which checks the alignment exactly; and
a tiny APNet where the picture must matter (the random U-Net's output ignores its visual
feature), for the frame forms and mirroring.
"""

import numpy as np
import pytest

import streambin
from streambin.spatializer import Spatializer


def scene_frames(n=6, h=48, w=96):
    """Frames with a bright square moving left to right (different pictures, so the tests below
    would see a frame handed over at the wrong time or in the wrong layout)."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        x = int(i * (w - 16) / max(n - 1, 1))
        frames[i, 10:30, x:x + 16] = (255, 200, 40)
    return frames


@pytest.fixture
def clip():
    return np.random.default_rng(3).standard_normal(8000).astype(np.float32) * 0.1  # 0.5 s at 16 kHz


def test_output_is_aligned_and_deterministic(tiny_unet, clip):
    frames = scene_frames()
    y = streambin.spatialize(clip, 16000, frames, fps=12, model=tiny_unet[0])
    assert y.shape == (2, len(clip)) and y.dtype == np.float32
    np.testing.assert_allclose((y[0] + y[1]) / 2, clip, atol=1e-5)
    assert np.abs(y[0] - y[1]).max() > 1e-4  # the two ears differ
    np.testing.assert_array_equal(streambin.spatialize(clip, 16000, frames, fps=12, model=tiny_unet[0]), y)


def test_every_frames_form_gives_the_same_output(tiny_apnet, clip):
    torch = pytest.importorskip("torch")
    from PIL import Image

    frames = scene_frames()
    fps = 12.0
    kw = dict(model=tiny_apnet[0])
    ref = streambin.spatialize(clip, 16000, frames, fps=fps, **kw)
    forms = {
        "list": (list(frames), fps),
        "pairs": ([(i / fps, f) for i, f in enumerate(frames)], None),
        "lazy pairs": (((i / fps, f) for i, f in enumerate(frames)), None),
        "PIL list": ([Image.fromarray(f) for f in frames], fps),
        "uint8 tensor (N, H, W, 3)": (torch.from_numpy(frames), fps),
        "float tensors (3, H, W)": ([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames], fps),
    }
    for name, (given, given_fps) in forms.items():
        out = streambin.spatialize(clip, 16000, given, fps=given_fps, **kw)
        np.testing.assert_array_equal(out, ref, err_msg=name)
    # Frames do matter: another picture sequence changes the output.
    other = streambin.spatialize(clip, 16000, frames[::-1].copy(), fps=fps, **kw)
    assert np.abs(other - ref).max() > 1e-5
    # Torch audio (and int16 PCM) as numpy float.
    np.testing.assert_array_equal(streambin.spatialize(torch.from_numpy(clip), 16000, frames, fps=fps, **kw), ref)


def test_single_frame_is_a_still_picture(tiny_unet, clip):
    from PIL import Image

    frame = scene_frames(1)[0]
    still = streambin.spatialize(clip, 16000, frame, model=tiny_unet[0])
    np.testing.assert_array_equal(streambin.spatialize(clip, 16000, [frame], fps=1, model=tiny_unet[0]), still)
    np.testing.assert_array_equal(streambin.spatialize(clip, 16000, Image.fromarray(frame), model=tiny_unet[0]),
                                  still)


@pytest.mark.parametrize("rate", [11025, 16000, 44100, 192000])
def test_any_sample_rate(tiny_unet, rate):
    """Rates the engine does not run at are resampled (soxr) there and back: same length, the
    mid signal still the input (a 440 Hz tone, well inside every band involved)."""
    t = np.arange(rate // 2) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = streambin.spatialize(tone, rate, scene_frames(), fps=12, model=tiny_unet[0])
    assert y.shape == (2, len(tone))
    mid = (y[0] + y[1]) / 2
    inner = slice(rate // 20, -rate // 20)  # the resamplers' edges aside
    np.testing.assert_allclose(mid[inner], tone[inner], atol=2e-3)


def test_mirror_equals_flipped_frames(tiny_apnet, clip):
    frames = scene_frames()
    mirrored = streambin.spatialize(clip, 16000, frames, fps=12, mirror=True, model=tiny_apnet[0])
    flipped = streambin.spatialize(clip, 16000, frames[:, :, ::-1].copy(), fps=12, model=tiny_apnet[0])
    np.testing.assert_array_equal(mirrored, flipped)
    plain = streambin.spatialize(clip, 16000, frames, fps=12, model=tiny_apnet[0])
    assert np.abs(mirrored - plain).max() > 1e-5
    with pytest.raises(ValueError, match="mirror must be"):
        Spatializer(tiny_apnet[0], sample_rate=16000, mirror="yes")


def test_bad_input_names_what_is_expected(tiny_unet, clip):
    frames = scene_frames()
    kw = dict(model=tiny_unet[0])
    cases = [
        (dict(audio=clip, sample_rate=0), ValueError, "positive whole number"),
        (dict(audio=clip, sample_rate=44100.5), ValueError, "positive whole number"),
        (dict(audio=np.zeros((2, 100), np.float32), sample_rate=16000), ValueError, "mono"),
        (dict(audio=np.zeros(0, np.float32), sample_rate=16000), ValueError, "empty"),
        (dict(audio=[0.0, 1.0], sample_rate=16000), TypeError, "numpy array"),
        (dict(audio=clip.astype(np.complex64), sample_rate=16000), TypeError, "dtype"),
        (dict(audio=clip, sample_rate=16000, frames=frames), ValueError, "need fps"),
        (dict(audio=clip, sample_rate=16000, frames=list(frames)), ValueError, "needs fps"),
        (dict(audio=clip, sample_rate=16000, frames=frames, fps=-1), ValueError, "fps must be"),
        (dict(audio=clip, sample_rate=16000, frames=[(0.0, frames[0])], fps=10), ValueError, "own times"),
        (dict(audio=clip, sample_rate=16000, frames=[(0.2, frames[0]), (0.1, frames[1])]), ValueError,
         "must not decrease"),
        (dict(audio=clip, sample_rate=16000, threaded_visual=True), TypeError, "threaded_visual"),
    ]
    for args, exc, match in cases:
        with pytest.raises(exc, match=match):
            streambin.spatialize(**args, **kw)


def test_docs_name_latency_and_show_examples():
    assert "latency_samples" in Spatializer.__doc__ and "Example::" in Spatializer.__doc__
    assert "Example::" in streambin.spatialize.__doc__
    assert "spatialize" in streambin.__all__
