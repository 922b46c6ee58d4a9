"""Tests of streambin.train.metrics on hand-computed cases."""

import math
import subprocess
import sys

import numpy as np
import pytest

from streambin.train import metrics as M

SR = 16000


def _noise(n=4000, seed=0):
    return np.random.default_rng(seed).standard_normal((2, n))


def _sine(freq, n, amp=1.0, sr=SR):
    t = np.arange(n) / sr
    return amp * np.sin(2 * np.pi * freq * t)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", list(M.METRICS))
def test_rejects_bad_shapes_and_values(name):
    f = M.METRICS[name]
    good = _noise(400)
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        f(good.T, good.T)
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        f(good[0], good[0])
    with pytest.raises(ValueError, match="same shape"):
        f(good, good[:, :300])
    with pytest.raises(TypeError, match="float"):
        f(np.ones((2, 400), dtype=np.int32), np.ones((2, 400), dtype=np.int32))
    bad = good.copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        f(bad, good)
    with pytest.raises(ValueError, match="sample_rate"):
        f(good, good, sample_rate=0)


def test_imports_without_torch():
    code = "import sys, streambin.train.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- identity


@pytest.mark.parametrize("name", ["stft", "env", "wave_l2", "mrstft", "spl"])
def test_distances_zero_on_identity(name):
    x = _noise(3000)
    assert M.METRICS[name](x, x.copy()) == pytest.approx(0.0, abs=1e-12)


def test_snr_infinite_on_identity_and_minus_inf_on_silent_target():
    x = _noise(500)
    assert M.snr(x, x.copy()) == math.inf
    assert M.snr(x, np.zeros_like(x), normalize=False) == -math.inf


# ----------------------------------------------------------------------------- STFT distance


def _direct_stft(x, n_fft=512, hop=160, win=400, pad_mode="constant"):
    """Centred STFT by an explicit DFT sum (no FFT), periodic Hann by formula; edges padded
    with zeros or by reflection (x[1], x[2], ... mirrored about x[0], likewise at the end)."""
    w = np.zeros(n_fft)
    off = (n_fft - win) // 2
    w[off:off + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    p = n_fft // 2
    if pad_mode == "reflect":
        head, tail = x[1:p + 1][::-1], x[-p - 1:-1][::-1]
    else:
        head, tail = np.zeros(p), np.zeros(p)
    xp = np.concatenate([head, x, tail])
    n_frames = 1 + len(x) // hop
    k = np.arange(n_fft // 2 + 1)[:, None]
    nn = np.arange(n_fft)[None, :]
    basis = np.exp(-2j * np.pi * k * nn / n_fft)
    out = np.empty((n_fft // 2 + 1, n_frames), dtype=complex)
    for t in range(n_frames):
        out[:, t] = basis @ (xp[t * hop:t * hop + n_fft] * w)
    return out


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_stft_distance_against_direct_dft_vs_zeros(pad_mode):
    x = _noise(400, seed=1)  # 400 samples -> 1 + 400 // 160 = 3 frames
    expected = 0.0
    for c in range(2):
        X = _direct_stft(x[c], pad_mode=pad_mode)
        assert X.shape == (257, 3)
        # mean over the stacked (real, imag) x 257 x T tensor
        stacked = np.stack([X.real, X.imag])
        expected += np.mean(stacked ** 2)
    got = M.stft_distance(x, np.zeros_like(x), normalize=False, pad_mode=pad_mode)
    assert got == pytest.approx(expected, rel=1e-10)
    # symmetric in its arguments
    assert M.stft_distance(np.zeros_like(x), x, normalize=False, pad_mode=pad_mode) == pytest.approx(expected)


def test_stft_distance_pads_by_reflection_by_default():
    # The papers' numbers were computed with librosa < 0.9 (reflect padding): that is the default.
    assert M.PAD_MODE_DEFAULT == "reflect"
    x, y = _noise(1600, 3), _noise(1600, 4)
    default = M.stft_distance(x, y)
    assert default == M.stft_distance(x, y, pad_mode="reflect")
    assert default != M.stft_distance(x, y, pad_mode="constant")
    expected = sum(np.mean(np.abs(_direct_stft(a, pad_mode="reflect") - _direct_stft(b, pad_mode="reflect")) ** 2)
                   for a, b in zip(M.peak_normalize(x), M.peak_normalize(y))) / 2
    assert default == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(M.stft(x[0]), _direct_stft(x[0], pad_mode="reflect"), atol=1e-9)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_stft_matches_torch_stft(pad_mode):
    torch = pytest.importorskip("torch")
    x = _noise(2000, seed=2)[0]
    ours = M.stft(x, pad_mode=pad_mode)
    ref = torch.stft(
        torch.from_numpy(x), 512, 160, 400,
        window=torch.hann_window(400, periodic=True, dtype=torch.float64),
        center=True, pad_mode=pad_mode, return_complex=True,
    ).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_stft_distance_pad_mode_changes_only_edge_frames():
    x, y = _noise(1600, 3), _noise(1600, 4)
    a = M.stft_distance(x, y, pad_mode="constant")
    b = M.stft_distance(x, y, pad_mode="reflect")
    assert a != b
    # frames 2 .. T-3 never see the padding: identical spectra there
    sa, sb = M.stft(x[0], pad_mode="constant"), M.stft(x[0], pad_mode="reflect")
    np.testing.assert_allclose(sa[:, 2:-2], sb[:, 2:-2], atol=1e-12)
    assert not np.allclose(sa[:, 0], sb[:, 0])


def test_stft_distance_scaling_and_normalisation():
    x = _noise(2000, seed=5)
    zero_ref = M.stft_distance(x, np.zeros_like(x), normalize=False)
    # STFT is linear: STFT(3x) - STFT(x) = 2 STFT(x) -> 4 times the distance to zero
    assert M.stft_distance(3 * x, x, normalize=False) == pytest.approx(4 * zero_ref)
    # peak normalisation removes a pure gain
    assert M.stft_distance(3 * x, x, normalize=True) == pytest.approx(0.0, abs=1e-20)
    # with normalize=True the result equals scoring the peak-normalised signals
    y = _noise(2000, seed=6)
    expected = M.stft_distance(x / np.abs(x).max(), y / np.abs(y).max(), normalize=False)
    assert M.stft_distance(x, y) == pytest.approx(expected)


def test_stft_distance_sums_channels():
    x = _noise(1000, seed=7)
    only_left = x.copy()
    only_left[1] = 0
    only_right = x.copy()
    only_right[0] = 0
    z = np.zeros_like(x)
    total = M.stft_distance(x, z, normalize=False)
    parts = M.stft_distance(only_left, z, normalize=False) + M.stft_distance(
        only_right, z, normalize=False)
    assert total == pytest.approx(parts)


# ----------------------------------------------------------------------------- envelope


def test_envelope_of_sinusoids_is_amplitude():
    n = 16000  # 1 s, whole number of periods for 250 Hz and 500 Hz: Hilbert exact
    pred = np.stack([_sine(250, n, 0.5), _sine(500, n, 0.2)])
    target = np.stack([_sine(250, n, 0.8), _sine(500, n, 0.6)])
    # |hilbert(a sin)| = a, so each channel contributes |a_pred - a_target|
    got = M.envelope_distance(pred, target, normalize=False)
    assert got == pytest.approx(abs(0.5 - 0.8) + abs(0.2 - 0.6), abs=1e-9)
    z = np.zeros_like(target)
    assert M.envelope_distance(z, target, normalize=False) == pytest.approx(1.4, abs=1e-9)
    # after peak normalisation: pred peaks become 1 and 0.4, target 1 and 0.75
    assert M.envelope_distance(pred, target) == pytest.approx(0.0 + 0.35, abs=1e-6)


# ----------------------------------------------------------------------------- wave L2


def test_wave_l2_hand_cases():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert M.wave_l2(pred, np.zeros_like(pred), normalize=False) == pytest.approx(7.5)
    target = _noise(100, seed=8)
    assert M.wave_l2(target + 0.1, target, normalize=False) == pytest.approx(0.01)
    # normalised: pred / 4, target zeros stays zeros (floor) -> (1 + 4 + 9 + 16) / 16 / 4
    assert M.wave_l2(pred, np.zeros_like(pred)) == pytest.approx(30 / 16 / 4)


# ----------------------------------------------------------------------------- MRSTFT


def test_mrstft_of_doubled_signal():
    x = _noise(8000, seed=9)
    # | |2G| - |G| | / | |G| | = 1 (spectral convergence) and |log 2|G| - log |G|| = log 2
    got = M.mrstft_distance(2 * x, x, normalize=False)
    assert got == pytest.approx(1 + math.log(2), rel=1e-6)
    assert M.mrstft_distance(2 * x, x) == pytest.approx(0.0, abs=1e-9)
    one = M.mrstft_distance(2 * x, x, normalize=False, resolutions=((256, 64, 256),))
    assert one == pytest.approx(1 + math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="resolution"):
        M.mrstft_distance(x, x, resolutions=())


# ----------------------------------------------------------------------------- SNR


def test_snr_hand_cases():
    x = _noise(1000, seed=10)
    # error = 0.5 x -> ratio 4 -> 6.0206 dB
    assert M.snr(0.5 * x, x, normalize=False) == pytest.approx(10 * math.log10(4))
    assert M.snr(np.zeros_like(x), x, normalize=False) == pytest.approx(0.0)
    # normalised: a gain disappears
    assert M.snr(0.5 * x, x) == math.inf
    tiny_t = np.array([[1.0, 0.0], [0.0, 1.0]])
    tiny_p = np.array([[1.0, 1.0], [0.0, 0.0]])
    # signal 2, noise 2 -> 0 dB
    assert M.snr(tiny_p, tiny_t, normalize=False) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- SPL / direction


def _lr(s, gain_l, gain_r):
    return np.stack([gain_l * s, gain_r * s])


def test_spl_distance_constant_level_differences():
    s = _noise(16000, seed=11)[0]
    target = _lr(s, 1.0, 0.5)  # ILD +6.02 dB every frame (left louder)
    six = 20 * math.log10(2)
    assert M.spl_distance(_lr(s, 0.5, 1.0), target) == pytest.approx(2 * six)
    assert M.spl_distance(_lr(s, 0.75, 0.75), target) == pytest.approx(six)
    assert M.spl_distance(_lr(s, 1.0, 0.25), target) == pytest.approx(six)
    # a gain common to both channels does not change a level difference
    assert M.spl_distance(_lr(s, 3.0, 0.75), target, normalize=False) == pytest.approx(six)


def test_direction_accuracy_per_time_step():
    s = _noise(16000, seed=12)[0]  # 10 frames of 0.1 s
    target = _lr(s, 1.0, 0.5)
    target[:, 8000:] = target[::-1, 8000:]  # second half: right louder
    pred_left = _lr(s, 1.0, 0.7)  # always left louder
    assert M.direction_accuracy(pred_left, target) == pytest.approx(0.5)
    assert M.direction_accuracy(target, target) == 1.0
    swapped = target[::-1].copy()
    assert M.direction_accuracy(swapped, target) == 0.0
    # mono (ILD exactly 0) never puts the source on a side
    assert M.direction_accuracy(_lr(s, 0.7, 0.7), target) == 0.0
    # 20 frames of 0.05 s: same halves
    assert M.direction_accuracy(pred_left, target, frame_s=0.05, hop_s=0.05) == 0.5


def test_level_metrics_ignore_silent_and_central_frames():
    s = _noise(16000, seed=13)[0]
    target = _lr(s, 1.0, 0.5)
    target[:, 8000:] = 0.0  # silent second half
    pred = _lr(s, 1.0, 0.5)
    pred[:, 8000:] = _lr(s[8000:], 0.1, 1.0)  # wrong side, but where the target is silent
    assert M.direction_accuracy(pred, target) == 1.0
    assert M.spl_distance(pred, target) == pytest.approx(0.0, abs=1e-9)
    # fully silent target: nothing to score
    assert math.isnan(M.spl_distance(pred, np.zeros_like(pred)))
    assert math.isnan(M.direction_accuracy(pred, np.zeros_like(pred)))
    # target ILD 0.5 dB is below the 1 dB threshold: nothing counted
    central = _lr(s, 1.0, 10 ** (-0.5 / 20))
    assert math.isnan(M.direction_accuracy(pred, central))
    assert M.direction_accuracy(pred[:, :8000], central[:, :8000], ild_threshold_db=0.25) == 1.0


def test_peak_normalize():
    x = np.array([[0.5, -2.0], [1.0, 0.0]])
    np.testing.assert_allclose(M.peak_normalize(x), x / 2.0)
    np.testing.assert_array_equal(M.peak_normalize(np.zeros((2, 3))), np.zeros((2, 3)))
