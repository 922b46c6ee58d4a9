"""Is the scene in a room? A detector on the mono's last two seconds.

The side renderer's best blend of the model's side and the rendered one differs between rooms
and free field (in free field the rendered side should lead; in a room it should be drawn in,
the reverberation making the average head's filter too wide). The engine has only the mono to
tell the two apart, so it reads reverberation off the sound: over the last ``WINDOW_S`` seconds
of STFT frames, per octave band from 62.5 Hz (the bins up to the Nyquist frequency, the top band
taking the rest), the level in dB and

- the 1st, 5th, 10th and 25th percentiles of its frame-to-frame change: in free field a sound's
  level can fall as fast as the sound stops; in a room reverberation bounds how fast it decays;
- the 5th, 10th and 25th percentiles of the level below its 90th percentile: how deep the gaps
  between sounds are (reverberation fills them).

None depends on the level. A logistic regression on the standardised features gives the
probability of a room. ``scripts/experiments/room_detector.py`` fits it on train-pool clips;
the weights travel in the bundle's side renderer table (streambin.side_renderer).

Frames are the model's own STFT frames, as the engine's runners compute them
(``(k, n_bins)`` complex at the model's rate and hop), so the detector costs no second analysis.
"""

from __future__ import annotations

import numpy as np

WINDOW_S = 2.0           # seconds of frames the features are read over
MIN_S = 0.25             # fewer seconds heard than this: no estimate (probability 0.5)
UPDATE_S = 0.1           # the estimate is renewed this often (a two-second window moves little faster)
N_BANDS = 7              # octaves from 62.5 Hz; the top one runs to the Nyquist frequency
ORIGIN_HZ = 62.5
DECAY_PERCENTILES = (1, 5, 10, 25)
GAP_PERCENTILES = (5, 10, 25)
N_FEATURES = N_BANDS * (len(DECAY_PERCENTILES) + len(GAP_PERCENTILES))


def octave_band_of_bins(n_bins: int, sample_rate: int) -> np.ndarray:
    """``(n_bins,)`` int in ``[0, N_BANDS)``: the octave band of each bin of an rfft grid at
    ``sample_rate`` (bin k at ``k * sample_rate / (2 * (n_bins - 1))`` Hz); bins below
    ``ORIGIN_HZ`` count to band 0, those above the last band's start to the last band."""
    if n_bins < 2 or sample_rate <= 0:
        raise ValueError(f"need n_bins >= 2 and sample_rate > 0, got {n_bins}, {sample_rate}")
    freqs = np.arange(n_bins) * sample_rate / (2 * (n_bins - 1))
    band = np.floor(np.log2(np.maximum(freqs, ORIGIN_HZ) / ORIGIN_HZ)).astype(int)
    return np.clip(band, 0, N_BANDS - 1)


def octave_summing(n_bins: int, sample_rate: int) -> np.ndarray:
    """``(n_bins, N_BANDS)`` float32 0/1: a frame's bin powers times this are its band powers."""
    summing = np.zeros((n_bins, N_BANDS), np.float32)
    summing[np.arange(n_bins), octave_band_of_bins(n_bins, sample_rate)] = 1.0
    return summing


def features(band_power: np.ndarray) -> np.ndarray:
    """``(N_FEATURES,)`` float64 features of ``band_power (T, N_BANDS)`` (T >= 2 frames, oldest
    first, linear power): the decay percentiles (percentile-major, then band), then the gap ones."""
    bp = np.asarray(band_power, np.float64)
    if bp.ndim != 2 or bp.shape[1] != N_BANDS or bp.shape[0] < 2:
        raise ValueError(f"band_power must be (T >= 2, {N_BANDS}) frames by bands, got {bp.shape}")
    level = 10.0 * np.log10(bp + 1e-12 * max(float(bp.max()), 1e-30))
    decay = percentiles(np.sort(np.diff(level, axis=0), axis=0), DECAY_PERCENTILES)
    ranked = np.sort(level, axis=0)
    # a percentile of (level - its 90th percentile) is the level's percentile minus the 90th
    gaps = percentiles(ranked, GAP_PERCENTILES) - percentiles(ranked, (90,))
    return np.concatenate([decay.ravel(), gaps.ravel()])


def percentiles(ranked: np.ndarray, qs) -> np.ndarray:
    """``(len(qs), d)``: the ``qs`` percentiles of each column of ``ranked (T, d)``, sorted along
    axis 0, as ``np.percentile`` gives them (linear between ranks). The engine calls this ten times
    a second, so one sort serves several percentiles (np.percentile would sort per call)."""
    pos = np.asarray(qs, np.float64) / 100.0 * (ranked.shape[0] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, ranked.shape[0] - 1)
    frac = (pos - lo)[:, None]
    return ranked[lo] + frac * (ranked[hi] - ranked[lo])


class RoomDetector:
    """A fitted detector on one STFT grid.

    ``weights (N_FEATURES + 1,)`` (bias last), ``feature_mean``, ``feature_std`` ``(N_FEATURES,)``
    (std > 0): the logistic regression on standardised :func:`features`; ``n_bins``,
    ``sample_rate``, ``hop``: the grid of the frames it is given.
    """

    def __init__(self, weights, feature_mean, feature_std, n_bins: int, sample_rate: int, hop: int):
        self.weights = np.asarray(weights, np.float64)
        self.mean = np.asarray(feature_mean, np.float64)
        self.std = np.asarray(feature_std, np.float64)
        check_arrays(self.weights, self.mean, self.std)
        if hop <= 0:
            raise ValueError(f"hop must be a positive number of samples, got {hop}")
        self.n_bins = int(n_bins)
        self.window_frames = int(round(WINDOW_S * sample_rate / hop))
        self.min_frames = max(2, int(round(MIN_S * sample_rate / hop)))
        self.update_frames = max(1, int(round(UPDATE_S * sample_rate / hop)))
        self._summing = octave_summing(n_bins, sample_rate)   # band power as one matrix product

    def band_power(self, frames: np.ndarray) -> np.ndarray:
        """``(k, N_BANDS)`` float32 power per band of ``frames (k, n_bins)`` complex."""
        if frames.ndim != 2 or frames.shape[1] != self.n_bins:
            raise ValueError(f"frames must be (k, {self.n_bins}) complex, got {frames.shape}")
        return (frames.real ** 2 + frames.imag ** 2).astype(np.float32) @ self._summing

    def probability(self, band_power: np.ndarray) -> float:
        """The probability of a room from ``band_power (k, N_BANDS)``, the last ``k`` frames (the
        last :attr:`window_frames` of them are read); 0.5 with fewer than :attr:`min_frames`
        frames or none with sound."""
        bp = band_power[-self.window_frames:]
        if bp.shape[0] < self.min_frames or not float(bp.max()) > 0.0:
            return 0.5
        z = (features(bp) - self.mean) / self.std
        # the logistic function as tanh: no overflow for a far-off window
        return float(0.5 * (1.0 + np.tanh(0.5 * (z @ self.weights[:-1] + self.weights[-1]))))

    def tracker(self) -> "RoomTracker":
        return RoomTracker(self)


class RoomTracker:
    """One stream's detector state: the band power of its last frames. ``push`` each block's new
    frames; it returns the probability of a room over the frames heard up to the last multiple of
    ``detector.update_frames`` (at most the last two seconds of them), renewed only when a push
    passes such a multiple: the estimate costs a block nothing most of the time, and does not
    depend on how the frames were split into pushes. ``reset`` starts a new stream."""

    def __init__(self, detector: RoomDetector):
        self.detector = detector
        # The last window plus one update's frames: an estimate ends up to update_frames - 1
        # frames before the newest. Rows i and i + size hold the same frame, so the last
        # ``size`` frames are always one contiguous slice.
        self._size = detector.window_frames + detector.update_frames
        self._ring = np.zeros((2 * self._size, N_BANDS), np.float32)
        self.reset()

    def reset(self) -> None:
        self._ring[:] = 0
        self._head = 0
        self.frames_heard = 0
        self.probability = 0.5

    def push(self, frames: np.ndarray) -> float:
        """``frames (k, n_bins)`` complex, the stream's next STFT frames; returns the probability."""
        det, size = self.detector, self._size
        for row in det.band_power(frames)[-size:]:
            self._ring[self._head] = self._ring[self._head + size] = row
            self._head = (self._head + 1) % size
        before = self.frames_heard
        self.frames_heard += len(frames)
        mark = self.frames_heard - self.frames_heard % det.update_frames
        if mark > before:        # passed a multiple: estimate over the frames up to it
            end = self._head + size - (self.frames_heard - mark)   # ring row just after frame ``mark``
            seen = min(mark, det.window_frames)
            self.probability = det.probability(self._ring[end - seen:end])
        return self.probability


def check_arrays(weights: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Raise ValueError unless the three arrays are a detector's (shapes, finite, std > 0)."""
    if weights.shape != (N_FEATURES + 1,) or mean.shape != (N_FEATURES,) or std.shape != (N_FEATURES,):
        raise ValueError(f"a room detector needs weights ({N_FEATURES + 1},) and feature mean and std "
                         f"({N_FEATURES},), got {weights.shape}, {mean.shape}, {std.shape}")
    if not (np.isfinite(weights).all() and np.isfinite(mean).all() and np.isfinite(std).all()) or not (std > 0).all():
        raise ValueError("a room detector's weights and feature mean must be finite and its feature std positive")


def probability_track(detector: RoomDetector, frames: np.ndarray, ends) -> np.ndarray:
    """Offline: ``(len(ends),)`` the probability after each of ``ends`` (frame counts) of a
    stream's ``frames (N, n_bins)``, as a :class:`RoomTracker` fed those frames gives it (the
    estimate at the last multiple of ``detector.update_frames``)."""
    bp = detector.band_power(frames)
    U = detector.update_frames
    return np.array([detector.probability(bp[:max(int(e), 0) // U * U]) for e in ends])
