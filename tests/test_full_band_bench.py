"""benchmarks/full_band.py: its measures on signals with known answers (not speed)."""

import numpy as np
import pytest

from benchmarks import full_band as fb


def test_band_energy_and_scene_measures_on_known_signals():
    rng = np.random.default_rng(0)
    n = fb.RATE
    x = rng.standard_normal(n)
    assert np.isclose(fb.band_energy(x, fb.RATE, 0, fb.RATE / 2 + 1), np.sum(x ** 2) * n / 2, rtol=0.01)
    ref = np.stack([x, x]) * 0.1
    # Output: left 6 dB louder over the whole band; the reference centred.
    out = np.stack([x * 0.2, x * 0.1])
    m = fb.scene_measures(out, ref)
    assert m["sign_agreement"] == 1.0 and m["segments_used"] == 10
    assert abs(m["output_ild_high_db_mean"] - 6.02) < 0.1 and abs(m["output_ild_low_db_mean"] - 6.02) < 0.1
    assert abs(m["high_band_vs_reference_db"] - 10 * np.log10((4 + 1) / 2)) < 0.1
    # Left louder below 7 kHz, right louder above 8.5 kHz: the signs disagree everywhere.
    f = np.fft.rfftfreq(n, 1 / fb.RATE)
    spec = np.fft.rfft(x)
    lo = np.fft.irfft(spec * (f < 8000), n)
    hi = np.fft.irfft(spec * (f >= 8000), n)
    m = fb.scene_measures(np.stack([2 * lo + hi, lo + 2 * hi]), ref)
    assert m["sign_agreement"] == 0.0


def test_run_engine_aligns_the_output(tiny_unet):
    x = np.random.default_rng(1).standard_normal(fb.RATE // 4).astype(np.float32) * 0.1
    y, seconds, sp = fb.run_engine(x, model=tiny_unet[0], fixed_masks=True, block_frames=1, lookahead_frames=0)
    assert sp.full_band and seconds > 0
    assert y.shape == (2, len(x))
    np.testing.assert_allclose((y[0] + y[1]) / 2, x, atol=1e-5)   # side mask: the mid is the input


def test_engine_only_rtf_pairs_the_paths_per_round():
    cost = fb.engine_only_rtf(rounds=2, seconds=0.5)
    assert set(cost) == {"44100", "48000"}
    for rate in cost.values():
        full, resampling = rate["full_band"]["runs"], rate["resampling"]["runs"]
        assert len(full) == len(resampling) == 2 and min(full + resampling) > 0
        ratios = rate["full_band_over_resampling"]["runs"]
        np.testing.assert_allclose(ratios, np.array(full) / np.array(resampling), rtol=0.01)
        assert abs(rate["full_band"]["min"] - min(full)) < 1e-5     # runs are rounded to 5 digits


def test_cost_only_refuses_zero_rounds():
    with pytest.raises(SystemExit, match="at least 1 round"):
        fb.write_cost_only(0)
