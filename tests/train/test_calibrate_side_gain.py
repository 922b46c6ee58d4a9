"""python -m streambin.train.calibrate_side_gain: the least-squares side gain on validation clips."""

import json

import numpy as np
import pytest

from streambin.signal_contract import scale_side_output
from streambin.train import calibrate_side_gain as C
from tests.train.test_localisation_eval import scenes  # noqa: F401  (the fixture)


def _clips(n=3, length=4000, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.zeros((4, 8, 16, 3), np.uint8)
    out = []
    for i in range(n):
        mid = rng.standard_normal(length).astype(np.float32)
        side = 0.4 * rng.standard_normal(length).astype(np.float32)
        out.append({"audio": np.stack([mid + side, mid - side]), "frames": frames, "fps": 10.0, "clip": f"c{i}"})
    return out


def _shrinking_predictor(dataset, own_gain, mirrored_gain):
    """Predicts each clip's truth with its side scaled by ``own_gain``; for the mirrored picture,
    the ears swapped and the side scaled by ``mirrored_gain`` (a model less sure of mirror images)."""
    by_mono = {}
    for item in dataset:
        a = item["audio"]
        by_mono[(0.5 * (a[0] + a[1])).tobytes()] = a

    def predict(mono, frames, fps, mode):
        truth = by_mono[np.asarray(mono, np.float32).tobytes()]
        if mode == "true":
            return scale_side_output(truth, own_gain)
        assert mode == "flipped"
        return scale_side_output(truth, mirrored_gain)[::-1]
    return predict


def test_a_side_predicted_at_half_its_size_calibrates_to_two():
    data = _clips()
    stats = C.calibrate(_shrinking_predictor(data, 0.5, 0.5), data, progress=False)
    assert stats.n_clips == 3
    assert stats.gain() == pytest.approx(2.0, rel=1e-6)
    summary = stats.summary(16000)
    assert len(summary["gain_per_bin"]) == 257 and summary["freq_hz"][-1] == 8000
    assert np.allclose(summary["gain_per_bin"], 2.0, rtol=1e-4)
    assert sum(summary["truth_energy_share"]) == pytest.approx(1.0)


def test_mirror_averaging_is_calibrated_as_the_engine_runs_it():
    """Averaged with a mirrored output whose side is 0.1 of the truth's, the side is 0.3 of it."""
    data = _clips(seed=1)
    predict = _shrinking_predictor(data, 0.5, 0.1)
    assert C.calibrate(predict, data, progress=False).gain() == pytest.approx(1 / 0.3, rel=1e-5)
    assert C.calibrate(predict, data, mirror_average=False, progress=False).gain() == pytest.approx(2.0, rel=1e-5)
    assert C.calibrate(predict, data, max_clips=1, progress=False).n_clips == 1


def test_noise_in_the_prediction_lowers_the_gain():
    """A side that is half the truth plus as much independent noise: least squares gives
    0.5 var(T) / (0.25 var(T) + var(noise)) = 0.5 / 0.5 = 1, not the 2 a noiseless one gets."""
    rng = np.random.default_rng(2)
    stats = C.SideGainStatistics()
    for item in _clips(n=4, length=16000, seed=3):
        a = item["audio"]
        mid, side = 0.5 * (a[0] + a[1]), 0.5 * (a[0] - a[1])
        noisy = 0.5 * side + 0.5 * 0.4 * rng.standard_normal(side.shape).astype(np.float32)
        stats.add(np.stack([mid + noisy, mid - noisy]), a)
    assert stats.gain() == pytest.approx(1.0, abs=0.05)


def test_bad_input_fails_clearly():
    stats = C.SideGainStatistics()
    with pytest.raises(ValueError, match="nothing to calibrate"):
        stats.gain()
    with pytest.raises(ValueError, match=r"must both be \(2, n\)"):
        stats.add(np.zeros((2, 100)), np.zeros((2, 90)))
    stats.add(np.zeros((2, 800)), np.ones((2, 800)))  # a silent prediction: no side to scale
    with pytest.raises(ValueError, match="nothing to calibrate"):
        stats.gain()
    with pytest.raises(ValueError, match="max_clips must be >= 1"):
        C.calibrate(lambda *a: None, _clips(), max_clips=0, progress=False)
    with pytest.raises(ValueError, match="no clips"):
        C.calibrate(lambda *a: None, [], progress=False)


def test_cli_writes_the_gain_and_a_figure(tiny_unet, scenes, tmp_path, capsys):  # noqa: F811
    _, ckpt = tiny_unet
    out, fig = tmp_path / "gain.json", tmp_path / "gain.png"
    base = ["--checkpoint", str(ckpt), "--data", str(scenes), "--split", "all", "--max-clips", "3", "--device", "cpu",
            "--no-progress"]
    assert C.main(base + ["--out", str(out), "--plot", str(fig), "--no-mirror-average"]) == 0
    summary = json.loads(out.read_text())
    assert summary["n_clips"] == 3 and summary["mirror_average"] is False and np.isfinite(summary["side_gain"])
    assert summary["side_gain"] != 0 and len(summary["gain_per_bin"]) == 257
    lo, hi = summary["side_gain_ci95"]
    assert lo <= summary["side_gain"] <= hi
    printed = capsys.readouterr().out
    assert f"--side-gain {summary['side_gain']:.2f}" in printed and f"interval {lo:.3f}-{hi:.3f}" in printed
    assert fig.stat().st_size > 10000
    # This untrained tiny model's side does not depend on the picture, so mirror averaging
    # cancels it: the calibration says so instead of dividing by zero.
    assert C.main(base) == 1
    assert "nothing to calibrate" in capsys.readouterr().err
    assert C.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(scenes), "--split", "all",
                   "--no-progress"]) == 1
    assert "calibrate_side_gain: error" in capsys.readouterr().err


def test_each_clip_weighs_as_the_stft_metric_weighs_it():
    """Two clips of the same signals, one 10 times louder: the loud one predicted exactly, the
    quiet one at half its side. At the metric's peak normalisation they count alike:
    g = (e + e / 2) / (e + e / 4) = 1.2, where raw energies would give ~1.0025."""
    base = _clips(n=1, seed=4)[0]["audio"]
    mid, side = 0.5 * (base[0] + base[1]), 0.5 * (base[0] - base[1])
    stats = C.SideGainStatistics()
    stats.add(10 * base, 10 * base)
    stats.add(np.stack([mid + 0.5 * side, mid - 0.5 * side]), base)
    assert stats.gain() == pytest.approx(1.2, rel=1e-6)


def test_the_interval_covers_the_gain_and_shrinks_with_agreeing_clips():
    rng = np.random.default_rng(5)
    spread, agreeing = C.SideGainStatistics(), C.SideGainStatistics()
    for i, item in enumerate(_clips(n=12, seed=6)):
        a = item["audio"]
        mid, side = 0.5 * (a[0] + a[1]), 0.5 * (a[0] - a[1])
        own = rng.uniform(0.3, 1.0)  # each clip's side shrunk by its own factor
        spread.add(np.stack([mid + own * side, mid - own * side]), a)
        agreeing.add(np.stack([mid + 0.5 * side, mid - 0.5 * side]), a)
    lo, hi = spread.interval()
    assert lo < spread.gain() < hi and hi - lo > 0.1
    lo2, hi2 = agreeing.interval()
    assert lo2 == pytest.approx(2.0, rel=1e-5) and hi2 == pytest.approx(2.0, rel=1e-5)
    assert spread.interval(seed=1) != (lo, hi) and spread.interval() == (lo, hi)  # seeded
    with pytest.raises(ValueError, match="0 < level < 1"):
        spread.interval(level=1.5)
