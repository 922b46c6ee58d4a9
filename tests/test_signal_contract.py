"""The signal contract (streambin.signal_contract): its numpy/native and torch halves agree, and
the network input the engine builds is the one training builds for the same samples."""

import numpy as np
import pytest
import torch

import streambin
from streambin import signal_contract as sc

HOP, N_FFT, WIN, T = 160, 512, 400, 64


def _complex(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_input_scale_numpy_and_torch_agree_and_respect_the_floor():
    rng = np.random.default_rng(0)
    x = (0.03 * rng.standard_normal((3, 10080))).astype(np.float32)
    x[2] = 0.0                                                  # silence: the floor holds
    ours = [sc.input_scale(row) for row in x]
    theirs = sc.input_scale_torch(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ours[2] == pytest.approx(sc.INPUT_RMS / sc.RMS_FLOOR)
    assert ours[0] == pytest.approx(0.1 / np.sqrt(np.mean(x[0].astype(np.float64) ** 2)), rel=1e-5)
    with pytest.raises(ValueError, match=r"\(n,\) float"):
        sc.input_scale(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="input_rms and rms_floor"):
        sc.input_scale(x[0], input_rms=0.0)


def test_network_input_numpy_and_torch_agree():
    rng = np.random.default_rng(1)
    frames = _complex(rng, T, 257)                          # (T, F) as the engine keeps them
    out = np.zeros((2, 257, T), np.float32)
    ours = sc.network_input(frames, 0.5, out=out)
    assert ours is out
    theirs = sc.network_input_torch(torch.from_numpy(frames.T.copy())[None], torch.tensor([0.5]))[0]
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(2, 257, 64\) float32"):
        sc.network_input(frames, 0.5, out=np.zeros((2, 64, 257), np.float32))


@pytest.mark.parametrize("kind, n_masks", [("side", 1), ("left_right", 2)])
def test_apply_masks_native_and_torch_agree(kind, n_masks):
    rng = np.random.default_rng(2)
    k = 3
    frames = _complex(rng, k, 257)
    masks = rng.standard_normal((n_masks, 2, 257, k)).astype(np.float32)
    ours = sc.apply_masks(frames, masks, kind)                               # (2, k, F)
    theirs = sc.apply_masks_torch(torch.from_numpy(frames.T.copy())[None],
                                  torch.from_numpy(masks)[None], kind)[0]    # (2, F, k)
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
    m = masks[:, 0] + 1j * masks[:, 1]                                       # (n_masks, F, k)
    if kind == "side":
        expected = np.stack([frames * (1 + m[0].T), frames * (1 - m[0].T)])
    else:
        expected = np.stack([frames * m[0].T, frames * m[1].T])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="mask_kind"):
        sc.apply_masks(frames, masks, "mid_side")
    with pytest.raises(ValueError, match=r"\(B, n_masks, 2, F, T\)"):
        sc.apply_masks_torch(torch.zeros(1, 257, k, dtype=torch.complex64), torch.zeros(1, 3, 2, 257, k), kind)


def _engine_last_network_input():
    """Stream 1 s of noise through the Spatializer at the model rate (block 1) and catch its last
    network input: ``(x (n,) float32, input (2, 257, T) float32)``."""
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal(100 * HOP)).astype(np.float32)
    sp = streambin.Spatializer(sample_rate=16000, block_frames=1, full_band=False)
    seen = []
    audio = sp.backend.audio
    sp.backend.audio = lambda spec, feature: (seen.append(spec.copy()), audio(spec, feature))[1]
    sp.process(x, np.zeros((64, 128, 3), np.uint8))
    return x, seen[-1][0]


def test_engine_network_input_is_trainings_for_the_same_samples():
    """The engine's last network input (:func:`_engine_last_network_input`) against training's.
    Training's input for the same samples is the ``center=True`` STFT of the 10,080-sample crop
    whose frames are centred where the engine's causal frames are: the spectra agree on every
    frame whose window lies inside the crop (frames 2-61; training pads the crop's edges), and
    the scales differ only by which samples the RMS covers (engine: the T*hop samples up to the
    newest; training: the crop, 200 samples earlier and 160 shorter)."""
    x, engine = _engine_last_network_input()
    n = len(x)
    newest = n // HOP - 1                                       # the engine's last frame
    crop_start = (newest - T + 2) * HOP - WIN // 2
    crop = torch.from_numpy(x[crop_start:crop_start + (T - 1) * HOP])[None]
    spec = sc.stft_torch(crop, N_FFT, HOP, WIN)
    train_scale = sc.input_scale_torch(crop)
    training = sc.network_input_torch(spec, train_scale)[0].numpy()

    engine_scale = sc.input_scale(x[n - T * HOP:])
    inner = slice(2, T - 2)
    np.testing.assert_allclose(engine[:, :, inner] / engine_scale, training[:, :, inner] / float(train_scale),
                               rtol=1e-4, atol=2e-5)
    assert not np.allclose(engine[:, :, :2] / engine_scale, training[:, :, :2] / float(train_scale), atol=1e-3)
    assert float(train_scale) / engine_scale == pytest.approx(1.0, abs=0.02)


def test_engine_network_input_is_the_stream_framed_crops_up_to_the_newest_frame():
    """With ``framing="stream"`` the crop that ends at the newest sample gives the engine's spectra
    on every frame but the oldest three (whose windows reach before the crop), the newest ones,
    which the engine plays, included."""
    x, engine = _engine_last_network_input()
    n = len(x)
    crop = torch.from_numpy(x[n - (T - 1) * HOP:])[None]
    training = sc.network_input_torch(sc.stft_torch(crop, N_FFT, HOP, WIN, framing="stream"), torch.ones(1))[0].numpy()
    np.testing.assert_allclose(engine[:, :, 3:] / sc.input_scale(x[n - T * HOP:]), training[:, :, 3:],
                               rtol=1e-4, atol=2e-5)
