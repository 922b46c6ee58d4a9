"""The room detector on the mono (streambin.room_detector): its features read reverberation and
not level, the streaming tracker gives what the offline track gives whatever the chunking, and
bad weights are clear errors."""

import warnings

import numpy as np
import pytest

from streambin import dsp
from streambin import room_detector as R

RATE, N_FFT, WIN, HOP = 16000, 512, 400, 160


def _bursts(rng, seconds=3.0, reverb_s=0.0):
    """Noise bursts (0.1 s on, 0.2 s off), dry or through an exponentially decaying noise tail
    (``reverb_s``: its decay to -60 dB)."""
    n = int(seconds * RATE)
    gate = (np.arange(n) % int(0.3 * RATE)) < int(0.1 * RATE)
    x = rng.standard_normal(n) * gate
    if reverb_s:
        t = np.arange(int(reverb_s * RATE)) / RATE
        tail = rng.standard_normal(t.size) * 10 ** (-3 * t / reverb_s)
        x = np.convolve(x, tail)[:n]
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def _frames(x):
    return dsp.StreamingSTFT(N_FFT, WIN, HOP).push(x)


def _detector(weights=None):
    """A detector that, by hand, calls a room where the 1 kHz band's steepest drops are gentle."""
    w = np.zeros(R.N_FEATURES + 1) if weights is None else weights
    if weights is None:
        w[4] = 1.0     # decay percentile 1 (the steepest drops), band 4 (1-2 kHz), in dB per frame
        w[-1] = 0.0
    mean = np.zeros(R.N_FEATURES)
    mean[4] = -20.0  # dB per frame: a drop gentler than this reads as a room
    return R.RoomDetector(w, mean, np.full(R.N_FEATURES, 10.0), N_FFT // 2 + 1, RATE, HOP)


def test_bands_are_octaves_from_62_5_hz_the_top_one_to_nyquist():
    band = R.octave_band_of_bins(257, RATE)
    freqs = np.arange(257) * RATE / N_FFT
    assert band.min() == 0 and band.max() == R.N_BANDS - 1
    assert (band[freqs < 125] == 0).all() and (band[(freqs >= 1000) & (freqs < 2000)] == 4).all()
    assert (band[freqs >= 4000] == R.N_BANDS - 1).all()      # 4 kHz up to the Nyquist frequency
    with pytest.raises(ValueError, match="n_bins >= 2"):
        R.octave_band_of_bins(1, RATE)


def test_features_read_reverberation_and_not_the_level(rng):
    det = _detector()
    dry, wet = _bursts(rng), _bursts(rng, reverb_s=0.8)
    f_dry, f_wet = (R.features(det.band_power(_frames(x))) for x in (dry, wet))
    f_loud = R.features(det.band_power(_frames(dry * 20)))
    np.testing.assert_allclose(f_loud, f_dry, atol=1e-3)          # level-independent
    steepest_drop = slice(0, R.N_BANDS)                           # decay percentile 1, every band
    deepest_gap = slice(len(R.DECAY_PERCENTILES) * R.N_BANDS, (len(R.DECAY_PERCENTILES) + 1) * R.N_BANDS)
    bands = slice(2, R.N_BANDS)                                   # 250 Hz up: frames resolve the bursts
    # dry sounds stop at once; reverberation bounds the fall and fills the gaps
    assert (f_dry[steepest_drop][bands] < f_wet[steepest_drop][bands] - 5).all()
    assert (f_dry[deepest_gap][bands] < f_wet[deepest_gap][bands] - 10).all()
    assert det.probability(det.band_power(_frames(wet))) > 0.6 > 0.4 > det.probability(det.band_power(_frames(dry)))
    with pytest.raises(ValueError, match=r"band_power must be \(T >= 2, 7\)"):
        R.features(np.zeros((10, 3)))


def test_features_are_numpys_percentiles(rng):
    """One sort per feature kind (the engine's per-block cost) gives np.percentile's values."""
    bp = (np.abs(rng.standard_normal((200, R.N_BANDS))) ** 3).astype(np.float32)
    level = 10 * np.log10(bp.astype(np.float64) + 1e-12 * bp.max())
    expected = np.concatenate([
        np.percentile(np.diff(level, axis=0), R.DECAY_PERCENTILES, axis=0).ravel(),
        np.percentile(level - np.percentile(level, 90, axis=0), R.GAP_PERCENTILES, axis=0).ravel()])
    np.testing.assert_allclose(R.features(bp), expected, rtol=1e-9, atol=1e-9)


def test_no_estimate_before_a_quarter_second_or_in_silence(rng):
    det = _detector()
    bp = det.band_power(_frames(_bursts(rng, reverb_s=0.8)))
    assert det.probability(bp[: det.min_frames - 1]) == 0.5
    assert det.probability(bp[: det.min_frames]) != 0.5
    assert det.probability(np.zeros((300, R.N_BANDS), np.float32)) == 0.5
    assert det.window_frames == 200 and det.min_frames == 25
    assert det.probability(bp[:0]) == 0.5


@pytest.mark.parametrize("chunk_frames", [1, 3, 7, 64])
def test_tracker_gives_the_offline_track_whatever_the_chunking(rng, chunk_frames):
    det = _detector(0.1 * rng.standard_normal(R.N_FEATURES + 1))
    x = np.concatenate([_bursts(rng, 2.0), _bursts(rng, 2.5, reverb_s=0.8)])   # free field, then a room
    frames = _frames(x)
    ends = np.arange(chunk_frames, len(frames) + 1, chunk_frames)
    offline = R.probability_track(det, frames, ends)
    tracker = det.tracker()
    for repeat in range(2):           # reset starts the stream afresh
        streamed = [tracker.push(frames[e - chunk_frames:e]) for e in ends]
        np.testing.assert_allclose(streamed, offline, rtol=1e-6, atol=1e-9)
        assert tracker.frames_heard == ends[-1]
        tracker.reset()
        assert tracker.probability == 0.5 and tracker.frames_heard == 0
    assert np.ptp(offline[ends >= det.min_frames]) > 0.01      # the track moves: the comparison is not trivial


def test_estimate_is_renewed_every_tenth_of_a_second(rng):
    det = _detector(0.1 * rng.standard_normal(R.N_FEATURES + 1))
    frames = _frames(_bursts(rng, 3.0, reverb_s=0.5))
    tracker, last, changed_at = det.tracker(), 0.5, []
    for k in range(len(frames)):
        p = tracker.push(frames[k:k + 1])
        if p != last:
            changed_at.append(k + 1)
        last = p
    assert det.update_frames == 10 and len(changed_at) > 10
    assert all(n % 10 == 0 and n >= det.min_frames for n in changed_at)


def test_bad_detector_arrays_are_clear_errors():
    good = (np.zeros(R.N_FEATURES + 1), np.zeros(R.N_FEATURES), np.ones(R.N_FEATURES))
    with pytest.raises(ValueError, match=rf"weights \({R.N_FEATURES + 1},\)"):
        R.RoomDetector(np.zeros(5), *good[1:], 257, RATE, HOP)
    with pytest.raises(ValueError, match="std positive"):
        R.RoomDetector(good[0], good[1], np.zeros(R.N_FEATURES), 257, RATE, HOP)
    with pytest.raises(ValueError, match="must be finite"):
        R.RoomDetector(np.full(R.N_FEATURES + 1, np.nan), *good[1:], 257, RATE, HOP)
    det = R.RoomDetector(*good, 257, RATE, HOP)
    with pytest.raises(ValueError, match=r"frames must be \(k, 257\) complex"):
        det.band_power(np.zeros((3, 100), np.complex64))
    steep = np.zeros(R.N_FEATURES + 1)
    steep[0] = 1e4                   # a far-off window: 0 or 1, no overflow
    bp = np.abs(np.random.default_rng(0).standard_normal((200, R.N_BANDS)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert R.RoomDetector(steep, *good[1:], 257, RATE, HOP).probability(bp) in (0.0, 1.0)
