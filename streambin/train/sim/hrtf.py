"""Measured head-related impulse responses (HRIRs): SOFA and SSR reading, resampling, direction
lookup, interaural cues.

Convention (the project's, as in docs/architecture.md): OUR azimuth is in degrees, 0 straight ahead, **positive to the
listener's right**, in (-180, 180]; elevation positive up. SOFA ``SimpleFreeFieldHRIR`` files
(e.g. MIT KEMAR) count azimuth counter-clockwise seen from above, i.e. positive to the LEFT, so
``ours = -sofa``. Channel 0 is the left ear, channel 1 the right ear (checked from the file's
ReceiverPosition: the left ear has y > 0 in SOFA's right-handed frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from scipy.spatial import cKDTree


def wrap_deg(a):
    """Wrap angles in degrees to (-180, 180]."""
    a = np.asarray(a, dtype=np.float64)
    w = np.mod(a + 180.0, 360.0) - 180.0
    return np.where(w == -180.0, 180.0, w)


@dataclass
class HrirSet:
    """A set of HRIRs on a sphere of directions.

    Attributes:
        hrirs: ``(n_dirs, 2, n_taps) float32`` left/right impulse responses at ``sample_rate``.
        azimuth_deg: ``(n_dirs,)`` our azimuth (positive right), in (-180, 180].
        elevation_deg: ``(n_dirs,)`` elevation, positive up.
        sample_rate: Hz.
    """

    hrirs: np.ndarray
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    sample_rate: int

    def __post_init__(self):
        h = np.asarray(self.hrirs, dtype=np.float32)
        if h.ndim != 3 or h.shape[1] != 2 or h.shape[0] < 1:
            raise ValueError(f"hrirs must be (n_dirs, 2, n_taps) float32, got shape {h.shape}")
        az = wrap_deg(self.azimuth_deg).reshape(-1)
        el = np.asarray(self.elevation_deg, dtype=np.float64).reshape(-1)
        if az.shape[0] != h.shape[0] or el.shape[0] != h.shape[0]:
            raise ValueError(f"azimuth_deg and elevation_deg must be ({h.shape[0]},), got "
                             f"{az.shape} and {el.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        self.hrirs, self.azimuth_deg, self.elevation_deg = h, az, el
        self.sample_rate = int(self.sample_rate)
        # Elevation rings for bilinear interpolation; unit vectors for nearest-direction lookup.
        self._rings = []
        for e in np.unique(np.round(el, 6)):
            idx = np.nonzero(np.isclose(el, e, atol=1e-6))[0]
            order = np.argsort(az[idx])
            self._rings.append((float(e), idx[order], az[idx][order]))
        self._tree = cKDTree(_unit_vectors(az, el))

    @property
    def n_taps(self) -> int:
        return int(self.hrirs.shape[2])

    def nearest(self, azimuth_deg, elevation_deg) -> np.ndarray:
        """Indices ``(k,) int64`` of the measured directions nearest (great circle) to each query."""
        q = _unit_vectors(np.atleast_1d(azimuth_deg), np.atleast_1d(elevation_deg))
        # On the unit sphere the smallest chord is the smallest great-circle angle.
        return np.asarray(self._tree.query(q)[1], dtype=np.int64).reshape(-1)

    def interpolate(self, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """HRIR ``(2, n_taps) float32`` for one direction, bilinear between the two nearest
        elevation rings and, within each ring, the two nearest azimuths (circularly).

        Elevations outside the measured range are clamped to the nearest ring (KEMAR stops at
        -40 degrees).
        """
        if not (np.isfinite(azimuth_deg) and np.isfinite(elevation_deg)):
            raise ValueError(f"direction must be finite, got ({azimuth_deg}, {elevation_deg})")
        els = np.array([r[0] for r in self._rings])
        e = float(np.clip(elevation_deg, els[0], els[-1]))
        j = int(np.searchsorted(els, e))
        if j < len(els) and np.isclose(els[j], e):
            parts = [(j, 1.0)]
        else:
            w = (e - els[j - 1]) / (els[j] - els[j - 1])
            parts = [(j - 1, 1.0 - w), (j, w)]
        out = np.zeros((2, self.n_taps), dtype=np.float64)
        for ring, weight in parts:
            out += weight * self._ring_interp(ring, float(wrap_deg(azimuth_deg)))
        return out.astype(np.float32)

    def _ring_interp(self, ring: int, az: float) -> np.ndarray:
        _, idx, azs = self._rings[ring]
        if len(idx) == 1:
            return self.hrirs[idx[0]].astype(np.float64)
        k = int(np.searchsorted(azs, az))
        lo, hi = (k - 1) % len(azs), k % len(azs)
        a0, a1 = azs[lo], azs[hi]
        span = (a1 - a0) % 360.0 or 360.0
        w = ((az - a0) % 360.0) / span
        return (1.0 - w) * self.hrirs[idx[lo]] + w * self.hrirs[idx[hi]]


def direction_grid(azimuth_step_deg: float = 5.0, elevation_min_deg: float = -40.0,
                   elevation_max_deg: float = 90.0, elevation_step_deg: float = 10.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Directions on elevation rings: ``(azimuth_deg (k,), elevation_deg (k,))`` float64.

    Each ring has azimuths every ``azimuth_step_deg`` all around, (-180, 180]; a ring at +-90
    degrees is a single direction (the pole). The defaults cover what KEMAR covers (-40..90).
    """
    if not 0 < azimuth_step_deg <= 90 or not 0 < elevation_step_deg <= 90:
        raise ValueError(f"azimuth_step_deg and elevation_step_deg must be in (0, 90], got "
                         f"{azimuth_step_deg} and {elevation_step_deg}")
    if not -90 <= elevation_min_deg <= elevation_max_deg <= 90:
        raise ValueError("need -90 <= elevation_min_deg <= elevation_max_deg <= 90, got "
                         f"{elevation_min_deg}, {elevation_max_deg}")
    ring = wrap_deg(np.arange(0.0, 360.0, azimuth_step_deg))
    az, el = [], []
    for e in np.arange(elevation_min_deg, elevation_max_deg + 1e-9, elevation_step_deg):
        a = np.zeros(1) if abs(abs(e) - 90.0) < 1e-9 else ring
        az.append(a)
        el.append(np.full(a.shape, float(e)))
    return np.concatenate(az), np.concatenate(el)


def interaural_cues(hrirs: np.ndarray, sample_rate: int, lowpass_hz: float = 1500.0,
                    upsample: int = 16):
    """Broadband interaural cues of HRIR pairs ``(..., 2, n_taps)`` (left, right) at ``sample_rate``.

    Returns:
        ``(itd_s, ild_db)``, each of shape ``hrirs.shape[:-2]`` (floats for one pair):
        ``itd_s`` how much EARLIER the right ear hears than the left, in seconds (positive for a
        source on the right), from the peak of the cross-correlation of the two ears' responses
        low-passed at ``lowpass_hz`` (where the auditory system uses the ITD), resolved to
        ``1 / upsample`` of a sample; ``ild_db`` the right-to-left ratio of broadband energy in
        dB (positive for a source on the right).
    """
    h = np.asarray(hrirs, dtype=np.float64)
    if h.ndim < 2 or h.shape[-2] != 2 or h.shape[-1] < 8:
        raise ValueError(f"hrirs must be (..., 2, n_taps >= 8), got shape {h.shape}")
    if not 0 < lowpass_hz < sample_rate / 2:
        raise ValueError(f"lowpass_hz must be in (0, sample_rate / 2), got {lowpass_hz}")
    if not (isinstance(upsample, (int, np.integer)) and upsample >= 1):
        raise ValueError(f"upsample must be an int >= 1, got {upsample!r}")
    energy = np.sum(h ** 2, axis=-1)
    if np.any(energy <= 0):
        raise ValueError("hrirs has a silent ear")
    n = 2 * h.shape[-1]
    spec = np.fft.rfft(h, n, axis=-1)
    # 4th-order Butterworth magnitude, applied forward and backward (zero phase, |H|^2).
    spec *= 1.0 / (1.0 + (np.fft.rfftfreq(n, 1.0 / sample_rate) / lowpass_hz) ** 8)
    # Zero-padding the cross-spectrum interpolates the correlation to 1/upsample of a sample.
    cc = np.fft.irfft(spec[..., 0, :] * np.conj(spec[..., 1, :]), n * upsample, axis=-1)
    k = np.argmax(cc, axis=-1)
    lag = np.where(k < cc.shape[-1] // 2, k, k - cc.shape[-1])  # > 0: the left ear lags
    itd = lag / upsample / sample_rate
    ild = 10 * np.log10(energy[..., 1] / energy[..., 0])
    if h.ndim == 2:
        return float(itd), float(ild)
    return itd, ild


def _unit_vectors(az_deg, el_deg) -> np.ndarray:
    """``(k, 3)`` unit vectors (x forward, y LEFT, z up) for our azimuth (positive right)."""
    az = np.deg2rad(np.asarray(az_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(el_deg, dtype=np.float64))
    return np.stack([np.cos(el) * np.cos(az), -np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def load_sofa(path: str | Path, sample_rate: int = 16000) -> HrirSet:
    """Read a ``SimpleFreeFieldHRIR`` SOFA file and resample its HRIRs to ``sample_rate``.

    Returns:
        :class:`HrirSet` with ``hrirs (n_dirs, 2, n_taps)`` at ``sample_rate`` and azimuths
        converted to our convention (positive to the right).

    Raises:
        FileNotFoundError: if the file is missing (the message names the Debian package).
        ValueError: if the file is not a 2-receiver spherical-coordinate HRIR set.
    """
    import sofar  # imported here: only the generator needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SOFA file {path} not found (MIT KEMAR ships in the Debian "
                                "package 'libmysofa1')")
    s = sofar.read_sofa(str(path), verbose=False)
    ir = np.asarray(s.Data_IR, dtype=np.float64)
    if ir.ndim != 3 or ir.shape[1] != 2:
        raise ValueError(f"{path}: Data_IR must be (n_dirs, 2, n_taps), got {ir.shape}")
    if "spherical" not in str(s.SourcePosition_Type).lower():
        raise ValueError(f"{path}: SourcePosition_Type must be spherical, got {s.SourcePosition_Type}")
    sr_in = float(np.asarray(s.Data_SamplingRate).reshape(-1)[0])
    pos = np.asarray(s.SourcePosition, dtype=np.float64).reshape(-1, 3)
    rec = np.asarray(s.ReceiverPosition, dtype=np.float64).reshape(2, -1)
    if rec[0, 1] < rec[1, 1]:  # receiver 0 is the right ear in this file: swap to left/right
        ir = ir[:, ::-1]
    return HrirSet(resample_hrirs(ir, sr_in, sample_rate), wrap_deg(-pos[:, 0]), pos[:, 1],
                   int(sample_rate))


def resample_hrirs(ir: np.ndarray, sr_in: float, sample_rate: int) -> np.ndarray:
    """``(n_dirs, 2, n_taps)`` impulse responses at ``sr_in`` -> ``(n_dirs, 2, m) float32`` at
    ``sample_rate`` (soxr HQ), keeping each response's gain."""
    ir = np.asarray(ir, dtype=np.float64)
    if sr_in != sample_rate:
        n_dirs, _, n_taps = ir.shape
        flat = ir.reshape(n_dirs * 2, n_taps).T  # (n_taps, channels): soxr resamples axis 0
        flat = soxr.resample(flat, sr_in, sample_rate, quality="HQ")
        # An impulse response's gain is the SUM of its taps: keep it across the rate change.
        ir = (flat.T * (sr_in / sample_rate)).reshape(n_dirs, 2, -1)
    return ir.astype(np.float32)


def load_ssr_wav(path: str | Path, sample_rate: int = 16000) -> HrirSet:
    """Read a horizontal-plane HRIR set in the SoundScape Renderer's WAV layout (Debian
    ``soundscaperenderer-common``, ``/usr/share/ssr/impulse_responses/hrirs/``) and resample it.

    The layout: 720 channels, one (left, right) pair per degree of azimuth from 0 to 359,
    counter-clockwise seen from above (positive to the LEFT, as in SOFA; checked from the ITD:
    at 90 degrees the left ear leads), so ``ours = -ssr``.

    Returns:
        :class:`HrirSet` with 360 directions at elevation 0.
    """
    import soundfile as sf  # imported here: only the generator needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HRIR file {path} not found (the SoundScape Renderer's HRIRs ship "
                                "in the Debian package 'soundscaperenderer-common')")
    x, sr_in = sf.read(str(path), dtype="float64", always_2d=True)  # (n_taps, 720)
    if x.shape[1] != 720:
        raise ValueError(f"{path}: expected 720 channels (360 azimuths x 2 ears), got {x.shape[1]}")
    ir = x.T.reshape(360, 2, -1)
    ssr_az = np.arange(360.0)
    return HrirSet(resample_hrirs(ir, sr_in, sample_rate), wrap_deg(-ssr_az), np.zeros(360),
                   int(sample_rate))
