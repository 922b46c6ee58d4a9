"""Full-band output at the device rate (streambin.full_band) and the latency plan.

Tiny exported models with random weights (tests/conftest.py); the identity checks replace the
network's masks by zeros, so what is checked is the engine.
"""

import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

from streambin.full_band import FullBandMapper, device_grid
from streambin.latency_plan import plan_latency
from streambin.spatializer import Spatializer

from .test_spatializer import run_chunked, split

FULL_BAND_RATES = [44100, 48000, 96000]


def zero_masks(sp):
    """Make the Spatializer's audio net return all-zero masks (side mask 0: L = R = mono)."""
    b = sp.bundle
    masks = np.zeros((1, b.n_masks, 2, b.n_bins, b.context_frames), np.float32)
    sp.backend.audio = lambda spec, feature: masks


def band_db(y, x, rate, lo, hi):
    """Energy of y over x in [lo, hi) Hz, in dB (y, x: (n,) or (c, n); channels averaged)."""
    f = np.fft.rfftfreq(x.shape[-1], 1 / rate)
    m = (f >= lo) & (f < hi)
    py = np.mean(np.abs(np.fft.rfft(np.atleast_2d(y), axis=-1)[:, m]) ** 2)
    px = np.mean(np.abs(np.fft.rfft(np.atleast_2d(x), axis=-1)[:, m]) ** 2)
    return 10 * np.log10(py / px)


# ------------------------------------------------------------------------------ grid


def test_device_grid_matches_the_model_time_grid():
    g = device_grid(48000, 16000, 512, 400, 160)
    assert (g.n_fft, g.win_length, g.hop, g.exact) == (1536, 1200, 480, True)
    assert g.bin_hz == g.model_bin_hz == 31.25
    g = device_grid(96000, 16000, 512, 400, 160)
    assert (g.n_fft, g.win_length, g.hop, g.exact) == (3072, 2400, 960, True)
    g = device_grid(44100, 16000, 512, 400, 160)    # no whole n_fft gives 31.25 Hz bins
    assert (g.n_fft, g.win_length, g.hop, g.exact) == (1440, 1102, 441, False)
    for rate in (8000, 16000, 22050):                # nothing above the band / hop of 220.5 samples
        assert device_grid(rate, 16000, 512, 400, 160) is None
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        device_grid(48000.0, 16000, 512, 400, 160)


def test_full_band_is_chosen_where_the_rate_allows(tiny_unet):
    assert Spatializer(tiny_unet[0], sample_rate=48000).full_band
    assert not Spatializer(tiny_unet[0], sample_rate=48000, full_band=False).full_band
    assert not Spatializer(tiny_unet[0], sample_rate=22050).full_band
    with pytest.raises(ValueError, match="full_band=True needs a device rate"):
        Spatializer(tiny_unet[0], sample_rate=16000, full_band=True)
    with pytest.raises(ValueError, match="full_band must be True, False or None"):
        Spatializer(tiny_unet[0], sample_rate=48000, full_band="yes")


def test_mapper_validates_its_settings():
    g = device_grid(48000, 16000, 512, 400, 160)
    with pytest.raises(ValueError, match="mask_mode must be"):
        FullBandMapper(g, "mid", 1, 1)
    with pytest.raises(ValueError, match="takes n_masks 1"):
        FullBandMapper(g, "side", 2, 1)
    with pytest.raises(ValueError, match="block_frames must be an integer >= 1"):
        FullBandMapper(g, "side", 1, 0)


@pytest.mark.parametrize("k", [1, 3])
def test_model_bins_at_44k_are_the_model_frames_spectrum(k):
    """At 44.1 kHz each device frame's network input is its windowed samples' spectrum at the
    model's frequencies j * 31.25 Hz, with the model frame's phase reference: time from the model
    window's centre (200 samples at 16 kHz before the newest sample) and the frame's start 256
    model samples before that centre ((-1)^j), scaled by 16000 / 44100."""
    g = device_grid(44100, 16000, 512, 400, 160)
    W, hop, Fm = g.win_length, g.hop, g.model_bins
    mapper = FullBandMapper(g, "side", 1, k)
    x = np.random.default_rng(16).standard_normal(W + (k - 1) * hop + 100).astype(np.float32)
    out = np.zeros((k, Fm), np.complex64)
    mapper.to_model_bins(np.zeros((k, g.n_bins), np.complex64), out, x)
    f = np.arange(Fm) * g.model_bin_hz
    t_s = (np.arange(W) - W) / g.sample_rate + 200 / 16000          # from the model window's centre
    basis = np.exp(-2j * np.pi * np.outer(t_s, f)) * (-1.0) ** np.arange(Fm) * (16000 / 44100)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(W) / W)
    start = len(x) - W - (k - 1) * hop                               # the newest frame ends at x's end
    ref = np.stack([x[start + t * hop:start + t * hop + W] * window for t in range(k)]) @ basis
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()


def test_model_bins_at_44k_need_the_samples():
    g = device_grid(44100, 16000, 512, 400, 160)
    mapper = FullBandMapper(g, "side", 1, 2)
    frames, out = np.zeros((2, g.n_bins), np.complex64), np.zeros((2, g.model_bins), np.complex64)
    for samples in (None, np.zeros(g.win_length + g.hop - 1, np.float32), np.zeros((2, 2000), np.float32)):
        with pytest.raises(ValueError, match=r"needs samples \(m >= 1543,\) float32 at 44100 Hz"):
            mapper.to_model_bins(frames, out, samples)
    with pytest.raises(ValueError, match=r"\(m,\) float32"):
        mapper.to_model_bins(frames, out, np.zeros(2000, np.float64))


# ------------------------------------------------------------------------------ engine properties


@pytest.mark.parametrize("rate", FULL_BAND_RATES)
def test_zero_side_mask_is_the_identity_over_the_whole_band(tiny_unet, rate):
    x = np.random.default_rng(10).standard_normal(rate // 2).astype(np.float32) * 0.1
    sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=2, lookahead_frames=1, full_band=True)
    zero_masks(sp)
    y = np.concatenate([run_chunked(sp, x, split(len(x), [333, 4096])), sp.flush()], axis=1)
    L = sp.latency_samples
    np.testing.assert_allclose(y[:, L:L + len(x)], np.stack([x, x]), atol=1e-5, rtol=0)
    assert np.abs(y[:, L + len(x):]).max() < 1e-6  # the tail of an identity is silence
    assert np.abs(y[:, :L]).max() < 1e-6


@pytest.mark.parametrize("rate", FULL_BAND_RATES)
def test_impulse_comes_out_latency_samples_later(tiny_unet, rate):
    """With a side mask (L + R) / 2 is the mono input itself over the whole band."""
    sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=1, lookahead_frames=0, full_band=True)
    x = np.zeros(rate // 2, np.float32)
    x[rate // 5] = 1.0
    y = run_chunked(sp, x, split(len(x), [333, 1, 4096]))
    mid = (y[0] + y[1]) / 2
    assert int(np.argmax(np.abs(mid))) == rate // 5 + sp.latency_samples
    np.testing.assert_allclose(mid[rate // 5 + sp.latency_samples], 1.0, atol=1e-5)
    assert sp.stats["underrun_samples"] == 0


@pytest.mark.parametrize("rate, model", [(44100, "tiny_apnet"), (48000, "tiny_unet")])
def test_output_identical_for_any_chunking(request, rate, model):
    bundle = request.getfixturevalue(model)[0]
    rng = np.random.default_rng(11)
    x = rng.standard_normal(20000).astype(np.float32) * 0.1
    frames = {0: rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)}
    sp = Spatializer(bundle, sample_rate=rate, block_frames=2, lookahead_frames=1, full_band=True)
    ref = sp.process(x, frames[0])
    for sizes in ([1], [64], [65], [8192], [8193], [1, 64, 65, 8193]):
        sp.reset()
        np.testing.assert_array_equal(run_chunked(sp, x, split(len(x), sizes), frames), ref)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_high_band_energy_of_white_noise(tiny_unet, rate):
    """8.5-16 kHz keeps its level (ears averaged) within +-3 dB; the resampling path loses it."""
    x = np.random.default_rng(12).standard_normal(rate).astype(np.float32) * 0.1
    out = {}
    for full in (True, False):
        sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=1, full_band=full)
        y = np.concatenate([sp.process(x), sp.flush()], axis=1)[:, sp.latency_samples:sp.latency_samples + len(x)]
        out[full] = band_db(y, x, rate, 8500, 16000)
    assert abs(out[True]) <= 3.0
    assert out[False] < -30.0


def test_network_input_equals_the_model_rate_path(tiny_unet):
    """The network sees what the 16 kHz engine shows it for the same band-limited sound.

    Measured on this band-limited white noise: -50 dB relative error at 48 kHz and at
    44.1 kHz (model frequencies evaluated on the device samples). On speech-like sound -30 dB,
    mostly the RMS normaliser: from the frames' band energy it differs from the model-rate
    samples' RMS by 1.2% (std, up to 3.5%).
    """
    x16 = np.random.default_rng(13).standard_normal(16000).astype(np.float32) * 0.1
    x16 = signal.sosfiltfilt(signal.butter(8, 7000, fs=16000, output="sos"), x16).astype(np.float32)
    seen = {}
    for rate in (16000, 48000, 44100):
        r = Fraction(rate, 16000)
        x = signal.resample_poly(x16.astype(np.float64), r.numerator, r.denominator).astype(np.float32)
        sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=1, lookahead_frames=0)
        inputs, audio = [], sp.backend.audio
        sp.backend.audio = lambda spec, feature: inputs.append(spec.copy()) or audio(spec, feature)
        sp.process(x)
        seen[rate] = np.stack(inputs[70:98])      # context filled with sound
    ref = seen[16000]
    for rate, limit_db in ((48000, -40.0), (44100, -40.0)):
        err_db = 10 * np.log10(np.sum((seen[rate] - ref) ** 2) / np.sum(ref ** 2))
        assert err_db < limit_db, (rate, err_db)


def test_below_7_khz_the_output_matches_the_model_rate_path(tiny_unet):
    """Same band-limited sound through the 16 kHz engine and the 48 kHz full-band engine:
    below 7 kHz the outputs agree (measured relative error, side signal L - R: about -20 dB
    with these random-weight models; ears: about -40 dB)."""
    x16 = np.random.default_rng(14).standard_normal(24000).astype(np.float32) * 0.1
    x16 = signal.sosfiltfilt(signal.butter(8, 7000, fs=16000, output="sos"), x16).astype(np.float32)
    x48 = signal.resample_poly(x16.astype(np.float64), 3, 1).astype(np.float32)
    out = {}
    for rate, x in ((16000, x16), (48000, x48)):
        sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=1, lookahead_frames=1)
        y = np.concatenate([sp.process(x), sp.flush()], axis=1)[:, sp.latency_samples:sp.latency_samples + len(x)]
        out[rate] = y
    y48 = signal.resample_poly(out[48000].astype(np.float64), 1, 3, axis=1)
    lo = signal.butter(8, [200, 7000], "bandpass", fs=16000, output="sos")
    a, b = signal.sosfiltfilt(lo, out[16000], axis=1), signal.sosfiltfilt(lo, y48, axis=1)
    a, b = a[:, 8000:], b[:, 8000:]                # context filled
    ears_db = 10 * np.log10(np.sum((a - b) ** 2) / np.sum(a ** 2))
    side_db = 10 * np.log10(np.sum(((a[0] - a[1]) - (b[0] - b[1])) ** 2) / np.sum((a[0] - a[1]) ** 2))
    assert ears_db < -30.0 and side_db < -12.0, (ears_db, side_db)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_no_allocation_per_block(tiny_unet, rate):
    """Per block the full-band engine writes into buffers made in __init__. With the network
    replaced by a fixed array, a call of one block (one 10 ms hop) allocates little beyond its
    (2, hop) float32 result (measured: about 1 kB more at 48 and at 44.1 kHz: Python objects and
    views), less than any per-block array would take (one frame's spectrum is 6 kB), and a
    call of 40 blocks no more than the larger result and input checks."""
    sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=1, lookahead_frames=1, full_band=True)
    zero_masks(sp)
    hop = rate // 100
    x = np.random.default_rng(15).standard_normal(rate).astype(np.float32) * 0.1
    sp.process(x)                                  # warm up (first-call caches)

    def peak(n):
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        sp.process(x[:n])
        result = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return result

    one, many = peak(hop), peak(hop * 40)
    assert one <= 2 * hop * 4 + 3072, one
    assert many - one <= 39 * hop * (2 * 4 + 2) + 1024, (one, many)


# ------------------------------------------------------------------------------ latency plan


def test_latency_plan_full_band_at_48k():
    for a, ms in ((0, 24.98), (1, 34.98), (2, 44.98)):
        p = plan_latency(sample_rate=48000, stft_rate=48000, win_length=1200, hop=480, block_frames=1,
                         lookahead_frames=a)
        assert p.latency_samples == 720 + 479 + a * 480
        assert round(1e3 * p.latency_samples / 48000, 2) == ms
        assert (p.fifo_prefill, p.resample_delay, p.engine_prefill) == (0, 0, 479)


def test_latency_plan_resampling_path_rounds_to_device_samples():
    p = plan_latency(sample_rate=44100, stft_rate=16000, win_length=400, hop=160, block_frames=2,
                     lookahead_frames=1, resample_holdback=lambda burst, prefill: 7, resample_delay=3)
    step = 160   # 16000 / gcd(16000, 44100)
    assert p.stft_latency % step == 0 and p.stft_latency >= 240 + 319 + 160
    assert p.latency_samples == p.stft_latency * 44100 // 16000 + 7 + 3
    with pytest.raises(ValueError, match="needs resample_holdback"):
        plan_latency(sample_rate=44100, stft_rate=16000, win_length=400, hop=160, block_frames=1,
                     lookahead_frames=0)
    with pytest.raises(ValueError, match="lookahead_frames must be an integer >= 0"):
        plan_latency(sample_rate=16000, stft_rate=16000, win_length=400, hop=160, block_frames=1,
                     lookahead_frames=-1)
    with pytest.raises(ValueError, match="hop must be <= win_length"):
        plan_latency(sample_rate=16000, stft_rate=16000, win_length=100, hop=160, block_frames=1,
                     lookahead_frames=0)
