"""scripts/experiments/level_difference_by_band.py: a clip's level difference split into bands."""
import numpy as np
import pytest

from .experiment_scripts import load_experiment


@pytest.fixture(scope="module")
def script():
    return load_experiment("level_difference_by_band")


def _tones(freqs_hz, gains, rate=16000, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return sum(g * np.sin(2 * np.pi * f * t) for f, g in zip(freqs_hz, gains))


def test_band_differences_sit_where_the_ears_differ(script):
    both = _tones([300.0, 3000.0], [1.0, 1.0])
    extra = _tones([3000.0], [0.5])                     # the left ear louder at 3 kHz only
    diff = script.band_energy_difference(np.stack([both + extra, both]), 16000)
    names = script.band_names()
    assert names == ["0-0.5 kHz", "0.5-1 kHz", "1-2 kHz", "2-4 kHz", ">= 4 kHz"]
    assert diff[names.index("2-4 kHz")] > 0
    # (a Hann window's leakage past the band edges: well under a thousandth)
    np.testing.assert_allclose(np.delete(diff, names.index("2-4 kHz")), 0.0, atol=1e-3 * diff.max())
    swapped = script.band_energy_difference(np.stack([both, both + extra]), 16000)
    np.testing.assert_allclose(swapped, -diff)
    with pytest.raises(ValueError, match=r"expected \(2, n\) audio with n >= 512"):
        script.band_energy_difference(np.zeros((2, 100)), 16000)


def test_summary_shares_and_the_outputs_part_per_group(script):
    room = {"room": {"dims_m": [4, 5, 3]}, "mid_centroid_hz": 3000.0}
    free = {"room": None, "mid_centroid_hz": 700.0}
    rows = [(free, np.array([0.0, 1.0, 1.0, 2.0, 0.0]), np.array([0.0, 0.5, 0.5, 0.5, 0.0])),
            (room, np.array([0.0, 0.0, 0.0, 4.0, 0.0]), np.array([0.0, 0.0, 0.0, 4.0, 0.0]))]
    table = script.summarise(rows)
    assert table["all"]["clips"] == 2 and set(table) == {"all", "0.5-1 kHz", "0.5-1 kHz, free field",
                                                          ">= 2 kHz", ">= 2 kHz, room"}
    f = table["0.5-1 kHz, free field"]
    assert f["truth_share"] == {"0-0.5 kHz": 0.0, "0.5-1 kHz": 0.25, "1-2 kHz": 0.25, "2-4 kHz": 0.5, ">= 4 kHz": 0.0}
    assert f["output_over_truth"]["2-4 kHz"] == 0.125 and f["output_over_truth_whole"] == 0.375
    assert table[">= 2 kHz, room"]["output_over_truth_whole"] == 1.0
    assert table["all"]["output_over_truth_whole"] == pytest.approx((0.375 + 1.0) / 2, abs=1e-3)
    truth_only = script.summarise([(free, np.array([0.0, 1.0, 1.0, 2.0, 0.0]), None)])
    assert "output_over_truth" not in truth_only["all"]
