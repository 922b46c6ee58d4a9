"""Binaural rendering: binaural room impulse responses (BRIRs) and time-varying convolution.

Geometry: a right-handed room frame with x forward (the camera's optical axis), y to the
LEFT and z up, the listener's head at the camera. A source at our azimuth ``az`` (positive
right), elevation ``el`` and distance ``r`` sits at ``head + r * (cos el cos az, -cos el sin az,
sin el)``.

BRIRs:
- anechoic: the interpolated HRIR delayed by ``r / c`` and scaled by ``1 / r`` (1 m reference);
- room: the pyroomacoustics shoebox image-source model (ISM) gives image positions and wall
  damping up to ``max_order``; each image contributes the HRIR of its direction (the direct
  path interpolated, reflections nearest measured direction), delayed by ``d / c`` and scaled
  by ``damping / d``. Beyond the ISM's order limit a synthetic binaural tail is added: noise
  decaying with the room's Sabine RT60, coherent between the ears below 700 Hz and independent
  above (a simple model of diffuse-field interaural coherence), faded in where the ISM thins
  out and scaled to the ISM's energy density there. This tail is a heuristic, not a measurement.

Moving sources: one BRIR per key time (the video frame times); the output is the sum of each
BRIR's convolution weighted by triangular cross-fades between neighbouring key times, i.e. the
filter is linearly interpolated in time and follows the source smoothly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from .hrtf import HrirSet

SPEED_OF_SOUND = 343.0  # m/s, the value pyroomacoustics uses by default


@dataclass(frozen=True)
class RoomSpec:
    """A shoebox room: ``dims_m`` (3,) length x width x height, ``absorption`` energy
    absorption of all walls in (0, 1), ``head_m`` (3,) listener position, ``max_order`` ISM order."""

    dims_m: tuple
    absorption: float
    head_m: tuple
    max_order: int = 8

    def to_json(self) -> dict:
        return {"dims_m": [round(float(v), 4) for v in self.dims_m],
                "absorption": round(float(self.absorption), 4),
                "head_m": [round(float(v), 4) for v in self.head_m],
                "max_order": int(self.max_order)}


def direction_to_offset(azimuth_deg: float, elevation_deg: float, distance_m: float) -> np.ndarray:
    """Offset ``(3,)`` from the head (x forward, y left, z up) for our azimuth (positive right)."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return distance_m * np.array([np.cos(el) * np.cos(az), -np.cos(el) * np.sin(az), np.sin(el)])


def offset_to_direction(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`direction_to_offset` for ``(..., 3)`` offsets -> (az, el, dist)."""
    v = np.asarray(v, dtype=np.float64)
    d = np.linalg.norm(v, axis=-1)
    az = np.rad2deg(np.arctan2(-v[..., 1], v[..., 0]))
    el = np.rad2deg(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return az, el, d


def anechoic_brir(hrirs: HrirSet, azimuth_deg: float, elevation_deg: float,
                  distance_m: float) -> np.ndarray:
    """Free-field BRIR ``(2, delay + n_taps) float32``: HRIR delayed by r/c, gain 1/r."""
    if not distance_m > 0:
        raise ValueError(f"distance_m must be > 0, got {distance_m}")
    delay = int(round(distance_m / SPEED_OF_SOUND * hrirs.sample_rate))
    h = hrirs.interpolate(azimuth_deg, elevation_deg) / distance_m
    return np.pad(h, ((0, 0), (delay, 0))).astype(np.float32)


def binaural_tail(rng: np.random.Generator, n: int, sample_rate: int,
                  crossover_hz: float = 700.0) -> np.ndarray:
    """Unit-variance binaural noise ``(2, n) float32``: coherent below, independent above
    ``crossover_hz`` (diffuse-field interaural coherence falls off above ~ 500-1000 Hz)."""
    sos_lo = butter(4, crossover_hz, "low", fs=sample_rate, output="sos")
    sos_hi = butter(4, crossover_hz, "high", fs=sample_rate, output="sos")
    common, left, right = rng.standard_normal((3, n))
    lo = sosfilt(sos_lo, common)
    out = np.stack([lo + sosfilt(sos_hi, left), lo + sosfilt(sos_hi, right)])
    return (out / out.std(axis=1, keepdims=True)).astype(np.float32)


class RoomModel:
    """BRIRs of one shoebox room for sources anywhere in it.

    Args:
        hrirs: the head's HRIR set.
        room: the room.

    The BRIR extends to ``min(rt60, 1 s)`` after the ISM mixing time.
    """

    def __init__(self, hrirs: HrirSet, room: RoomSpec):
        import pyroomacoustics as pra  # imported here: only room scenes need it

        dims = np.asarray(room.dims_m, dtype=np.float64)
        head = np.asarray(room.head_m, dtype=np.float64)
        if dims.shape != (3,) or np.any(dims <= 0):
            raise ValueError(f"room.dims_m must be 3 positive lengths, got {room.dims_m}")
        if head.shape != (3,) or np.any(head <= 0) or np.any(head >= dims):
            raise ValueError(f"room.head_m {room.head_m} must lie inside the room {room.dims_m}")
        if not 0 < room.absorption < 1:
            raise ValueError(f"room.absorption must be in (0, 1), got {room.absorption}")
        self.hrirs, self.room, self.dims, self.head = hrirs, room, dims, head
        self._pra = pra
        self.rt60_s = self._make_room(head + np.array([1.0, 0.0, 0.0])).rt60_theory()

    def _make_room(self, source_pos):
        pra = self._pra
        r = pra.ShoeBox(self.dims.tolist(), fs=self.hrirs.sample_rate,
                        materials=pra.Material(float(self.room.absorption)),
                        max_order=int(self.room.max_order), air_absorption=False)
        r.add_source(np.asarray(source_pos, dtype=np.float64).tolist())
        r.add_microphone(self.head.tolist())
        return r

    def images(self, source_pos: np.ndarray):
        """Image sources of ``source_pos``: offsets ``(k, 3)`` from the head, amplitude damping
        ``(k,)`` and reflection orders ``(k,)``."""
        src = np.asarray(source_pos, dtype=np.float64)
        if src.shape != (3,) or np.any(src <= 0) or np.any(src >= self.dims):
            raise ValueError(f"source position {src} must lie inside the room {self.dims}")
        r = self._make_room(src)
        r.image_source_model()
        s = r.sources[0]
        vis = np.asarray(r.visibility[0][0], dtype=bool)
        return ((s.images.T - self.head)[vis], np.asarray(s.damping[0])[vis],
                np.asarray(s.orders)[vis])

    def brir(self, source_pos: np.ndarray, tail: np.ndarray | None) -> np.ndarray:
        """BRIR ``(2, n_taps) float32`` for a source at ``source_pos`` (room coordinates, m).

        ``tail`` is the unit binaural noise ``(2, m)`` of :func:`binaural_tail` (fixed per
        source so that BRIRs of a moving source share one tail); ``None`` for ISM only.
        """
        sr = self.hrirs.sample_rate
        off, damp, orders = self.images(source_pos)
        az, el, d = offset_to_direction(off)
        delay = np.round(d / SPEED_OF_SOUND * sr).astype(np.int64)
        gain = damp / d
        n_taps = self.hrirs.n_taps
        max_order_delay = delay[orders == orders.max()].min() if orders.max() > 0 else delay.max()
        t_mix = int(max_order_delay)  # beyond this the ISM is incomplete
        n = int(min(t_mix + self.rt60_s * sr, t_mix + sr)) + n_taps if tail is not None \
            else int(delay.max()) + n_taps
        n = max(n, int(delay.max()) + n_taps)
        out = np.zeros((2, n), dtype=np.float64)
        direct = orders == 0
        h_refl = self.hrirs.hrirs[self.hrirs.nearest(az[~direct], el[~direct])]  # (k, 2, taps)
        rows = delay[~direct, None] + np.arange(n_taps)
        for ear in range(2):
            out[ear] += np.bincount(rows.ravel(), weights=(gain[~direct, None] * h_refl[:, ear]).ravel(),
                                    minlength=n)[:n]
        for i in np.nonzero(direct)[0]:
            out[:, delay[i]: delay[i] + n_taps] += gain[i] * self.hrirs.interpolate(az[i], el[i])
        if tail is not None:
            # Match the tail to the ISM's energy density in the 20 ms before the mixing time.
            w = int(0.02 * sr)
            ref = out[:, max(0, t_mix - w): t_mix]
            level = np.sqrt(np.mean(ref ** 2)) if ref.size else 0.0
            m = n - t_mix
            if tail.shape[0] != 2 or tail.shape[1] < m:
                raise ValueError(f"tail must be (2, >= {m}), got {tail.shape}")
            t = np.arange(m) / sr
            env = level * np.exp(-6.91 * t / self.rt60_s)  # -60 dB after rt60
            fade = np.minimum(1.0, t / 0.03)  # fade in over 30 ms where the ISM thins out
            out[:, t_mix:] += tail[:, :m] * env * fade
        return out.astype(np.float32)


def render_keyframed(x: np.ndarray, brirs: np.ndarray, key_samples: np.ndarray) -> np.ndarray:
    """Convolve mono ``x`` with a BRIR that changes over time.

    Args:
        x: ``(n,) float32`` source signal.
        brirs: ``(K, 2, L) float32`` one BRIR per key time.
        key_samples: ``(K,)`` increasing sample indices of the key times.

    Returns:
        ``(2, n) float32``: ``sum_k w_k(t) (x * brirs[k])(t)``, where ``w_k`` are triangular
        cross-fades between neighbouring key times (constant before the first and after the last
        key time), which sum to one at every sample.
    """
    x = np.asarray(x, dtype=np.float32)
    brirs = np.asarray(brirs, dtype=np.float32)
    key = np.asarray(key_samples, dtype=np.int64).reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"x must be (n,) float32, got shape {x.shape}")
    if brirs.ndim != 3 or brirs.shape[1] != 2 or brirs.shape[0] != key.shape[0]:
        raise ValueError(f"brirs must be (K, 2, L) with K = len(key_samples) = {key.shape[0]}, "
                         f"got {brirs.shape}")
    if key.shape[0] > 1 and np.any(np.diff(key) <= 0):
        raise ValueError("key_samples must be strictly increasing")
    n, (K, _, L) = x.shape[0], brirs.shape
    if K == 1:
        return fftconvolve(x[None], brirs[0], axes=-1)[:, :n].astype(np.float32)
    y = np.zeros((2, n), dtype=np.float64)
    for k in range(K):
        a = 0 if k == 0 else int(np.clip(key[k - 1], 0, n))
        b = n if k == K - 1 else int(np.clip(key[k + 1], 0, n))
        if b <= a:
            continue
        t = np.arange(a, b)
        w = np.ones(b - a)
        if k > 0:
            rise = t < key[k]
            w[rise] = (t[rise] - key[k - 1]) / (key[k] - key[k - 1])
        if k < K - 1:
            fall = t >= key[k]
            w[fall] = (key[k + 1] - t[fall]) / (key[k + 1] - key[k])
        s = max(0, a - L + 1)  # the convolution at t needs x[t-L+1 .. t]
        seg = fftconvolve(x[s:b][None], brirs[k], axes=-1)
        y[:, a:b] += w * seg[:, a - s: b - s]
    return y.astype(np.float32)
