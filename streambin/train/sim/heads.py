"""Heads for the scene generator: which head hears a clip, delivered as an :class:`HrirSet`.

A model trained on one head learns that head's interaural cues; drawing the head per clip from
many plausible heads teaches it what heads have in common. Every head is named by a string id,
and the same id always gives the same HRIRs (parameters are drawn from the id alone).

Head ids
--------
``"kemar"``
    MIT KEMAR, normal pinna, as measured (Debian ``libmysofa1``,
    ``/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa``).
``"kemar~p<seed>"``
    KEMAR with seeded interaural-cue perturbations, within the human range:
    ITD scaled by 0.85-1.2 (KEMAR's 0.70 ms at 90 degrees becomes 0.60-0.84 ms), ILD in dB
    scaled by 0.75-1.3 (per frequency, on the cepstrally smoothed ILD so notches are not
    amplified), and a smooth random colouring per ear over log frequency (common to both ears:
    std 2 dB, at most 4 dB; each ear's own: std 0.7 dB, centred over its knots, at most 1.5 dB).
    All three are applied in one pass as minimum-phase filters and fractional delays, so
    nothing rings before the onset. Both cue scalings are multiplicative and direction-wise, so
    where KEMAR's ITD and broadband ILD are monotonic in azimuth the perturbed head's are too.
    (KEMAR's broadband ILD itself peaks near 70 degrees and falls towards 90, the acoustic
    bright spot; its ITD rises all the way to 90.)
``"sphere~s<seed>"``
    A rigid spherical head (Brown & Duda 1998): per ear the one-pole/one-zero head-shadow
    filter and the Woodworth/creeping-wave delay, ears offset backwards (ear azimuth 90-100
    degrees, elevation -10..0), head radius 7.5-9.5 cm; plus a shoulder echo (Brown & Duda's
    delay formula, gain 0.15-0.35, shadowed for sources below the shoulders) and in 3 heads of
    4 Brown & Duda's pinna echoes with a seeded pinna size. Directions every 5 degrees of
    azimuth on rings from -40 to 80 degrees elevation every 10 degrees, and the pole.
    Scaled so its frontal power gain over 0-8 kHz equals KEMAR's.

Pools (disjoint by id; :func:`head_ids`)
----------------------------------------
========  ===========================================================================
train     ``kemar``, ``kemar~p0`` .. ``kemar~p999``, ``sphere~s0`` .. ``sphere~s999``
ood       ``kemar~p1000`` .. ``kemar~p1099``, ``sphere~s1000`` .. ``sphere~s1099``
========  ===========================================================================
Seeds 1100 and above are valid ids in neither pool (for experiments). OOD heads are unseen
identities drawn from the same parameter distributions as the train heads.

Other measured HRIR sets looked for (none is a new head, so the OOD pool has no further
measured head): Debian ``libopenal-data`` (``/usr/share/openal/hrtf/default-*.mhr``) is
OpenAL Soft's default table, built from MIT KEMAR (same 19-ring 1.4 m layout as its
``MIT_KEMAR.def``); Debian ``pd-earplug`` ships the MIT KEMAR compact set; ``makehrtf``,
``libmysofa-utils``, ``zita-bls1`` and the PyPI packages ``spaudiopy``, ``sonore``,
``bayesian-listener``, ``omi-audio``, ``immersive-audio`` and ``pyroomacoustics`` ship no
HRIRs (they download them on demand, which cannot happen here).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .assets import DEFAULT_SOFA as KEMAR_SOFA
from .hrtf import HrirSet, _unit_vectors, direction_grid, interaural_cues, load_sofa

SPEED_OF_SOUND = 343.0  # m/s, as in render.py

HEAD_POOLS = ("train", "ood", "all")
HEAD_ID_FORMS = ('"kemar"', '"kemar~p<seed>"', '"sphere~s<seed>"')
TRAIN_SEEDS = range(0, 1000)
OOD_SEEDS = range(1000, 1100)

# KEMAR's frontal power gain, mean |H(f)|^2 over 0-8 kHz (2.10, i.e. +3.2 dB, both ears):
# sphere heads are scaled to it so that switching heads does not switch loudness.
KEMAR_FRONT_POWER_GAIN = 2.10

ITD_SCALE_RANGE = (0.85, 1.2)
ILD_SCALE_RANGE = (0.75, 1.3)
COLOUR_KNOTS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
COLOUR_COMMON_DB = (2.0, 4.0)  # (std, clip) of the colouring both ears share
COLOUR_EAR_DB = (0.7, 1.5)  # (std, clip) of each ear's own colouring
ILD_SMOOTH_S = 0.001  # keep ILD structure coarser than 1 kHz (cepstral lifter at 1 ms)

SPHERE_RADIUS_RANGE_M = (0.075, 0.095)
SPHERE_EAR_AZIMUTH_RANGE_DEG = (90.0, 100.0)
SPHERE_EAR_ELEVATION_RANGE_DEG = (-10.0, 0.0)
SPHERE_SHOULDER_GAIN_RANGE = (0.15, 0.35)
SPHERE_PINNA_SHARE = 0.75
SPHERE_PINNA_SCALE_RANGE = (0.85, 1.15)
# Brown & Duda (1998) pinna events: reflection coefficients and delay coefficients A, B
# (samples at 44.1 kHz) and D, for tau_k = A_k cos(theta / 2) sin(D_k (90 - phi)) + B_k.
PINNA_RHO = (0.5, -1.0, 0.5, -0.25, 0.25)
PINNA_A = (1.0, 5.0, 5.0, 5.0, 5.0)
PINNA_B = (2.0, 4.0, 7.0, 11.0, 13.0)
PINNA_D = (1.0, 0.5, 0.5, 0.5, 0.5)
SPHERE_LENGTH_S = 0.005  # HRIR length: onset 1 ms + delays <= 0.6 ms + echoes <= 1.2 ms + decay
SPHERE_ONSET_S = 0.001

_ID = re.compile(r"^(kemar|kemar~p(0|[1-9][0-9]*)|sphere~s(0|[1-9][0-9]*))$")
_SALT = {"kemar~p": 0x4B50, "sphere~s": 0x5350}  # separate random streams per kind


def parse_head_id(head_id: str) -> tuple[str, int | None]:
    """``(kind, seed)`` of a head id: ``("kemar", None)``, ``("kemar~p", seed)`` or
    ``("sphere~s", seed)``. Raises ValueError naming the accepted forms."""
    m = _ID.match(head_id) if isinstance(head_id, str) else None
    if m is None:
        raise ValueError(f"head id must be one of {', '.join(HEAD_ID_FORMS)} with <seed> a "
                         f"non-negative integer without leading zeros, got {head_id!r}")
    if head_id == "kemar":
        return "kemar", None
    kind, seed = head_id.split("~")
    return kind + "~" + seed[0], int(seed[1:])


def head_ids(pool: str) -> list[str]:
    """All head ids of ``pool`` ("train", "ood", or "all" for both), in a fixed order."""
    if pool not in HEAD_POOLS:
        raise ValueError(f"pool must be one of {HEAD_POOLS}, got {pool!r}")
    if pool == "all":
        return head_ids("train") + head_ids("ood")
    seeds = TRAIN_SEEDS if pool == "train" else OOD_SEEDS
    ids = ["kemar"] if pool == "train" else []
    return ids + [f"kemar~p{s}" for s in seeds] + [f"sphere~s{s}" for s in seeds]


def head_pool(head_id: str) -> str | None:
    """``"train"``, ``"ood"``, or ``None`` for a valid id in neither pool (seed >= 1100)."""
    kind, seed = parse_head_id(head_id)
    if seed is None or seed in TRAIN_SEEDS:
        return "train"
    return "ood" if seed in OOD_SEEDS else None


def draw_head(rng: np.random.Generator, pool: str, kemar_share: float = 0.15,
              sphere_share: float = 0.3) -> str:
    """A head id of ``pool`` drawn with ``rng``: unperturbed KEMAR with ``kemar_share`` (train
    and "all" only), a spherical head with ``sphere_share``, a perturbed KEMAR otherwise."""
    if pool not in HEAD_POOLS:
        raise ValueError(f"pool must be one of {HEAD_POOLS}, got {pool!r}")
    if not (0 <= kemar_share and 0 <= sphere_share and kemar_share + sphere_share <= 1):
        raise ValueError("kemar_share and sphere_share must be >= 0 with a sum <= 1, got "
                         f"{kemar_share} and {sphere_share}")
    u = rng.random()
    seeds = OOD_SEEDS if pool == "ood" else TRAIN_SEEDS
    if pool == "all":
        seeds = range(TRAIN_SEEDS.start, OOD_SEEDS.stop)
    if pool != "ood" and u < kemar_share:
        return "kemar"
    seed = int(rng.integers(seeds.start, seeds.stop))
    return f"sphere~s{seed}" if u >= 1.0 - sphere_share else f"kemar~p{seed}"


def _perturbation(seed: int) -> dict:
    rng = np.random.default_rng([_SALT["kemar~p"], seed])
    itd = float(rng.uniform(*ITD_SCALE_RANGE))
    ild = float(rng.uniform(*ILD_SCALE_RANGE))
    n = len(COLOUR_KNOTS_HZ)
    common = np.clip(rng.normal(0.0, COLOUR_COMMON_DB[0], n), -COLOUR_COMMON_DB[1], COLOUR_COMMON_DB[1])
    ears = rng.normal(0.0, COLOUR_EAR_DB[0], (2, n))
    ears -= ears.mean(axis=1, keepdims=True)  # no overall level difference between the ears
    ears = np.clip(ears, -COLOUR_EAR_DB[1], COLOUR_EAR_DB[1])
    r = lambda v: [round(float(x), 3) for x in v]  # noqa: E731 - sidecar-friendly rounding
    return {"itd_scale": round(itd, 4), "ild_scale": round(ild, 4),
            "colour_knots_hz": list(COLOUR_KNOTS_HZ),
            "colour_left_db": r(common + ears[0]), "colour_right_db": r(common + ears[1])}


def _sphere_params(seed: int) -> dict:
    rng = np.random.default_rng([_SALT["sphere~s"], seed])
    radius = rng.uniform(*SPHERE_RADIUS_RANGE_M)
    ear_az = rng.uniform(*SPHERE_EAR_AZIMUTH_RANGE_DEG)
    ear_el = rng.uniform(*SPHERE_EAR_ELEVATION_RANGE_DEG)
    shoulder = rng.uniform(*SPHERE_SHOULDER_GAIN_RANGE)
    has_pinna = rng.random() < SPHERE_PINNA_SHARE
    pinna = rng.uniform(*SPHERE_PINNA_SCALE_RANGE)
    return {"radius_m": round(float(radius), 5), "ear_azimuth_deg": round(float(ear_az), 3),
            "ear_elevation_deg": round(float(ear_el), 3),
            "shoulder_echo_gain": round(float(shoulder), 4),
            "pinna_scale": round(float(pinna), 4) if has_pinna else None}


def describe_head(head_id: str) -> dict:
    """What a head is, for the sidecar: ``{"id", "kind", "pool", ...parameters}``."""
    kind, seed = parse_head_id(head_id)
    out = {"id": head_id, "pool": head_pool(head_id)}
    if kind == "kemar":
        return {**out, "kind": "kemar", "source": f"MIT KEMAR normal pinna ({KEMAR_SOFA.name}, "
                                                   "Debian libmysofa1)"}
    if kind == "kemar~p":
        return {**out, "kind": "kemar_perturbed", "seed": seed, **_perturbation(seed)}
    return {**out, "kind": "sphere", "seed": seed, **_sphere_params(seed)}


def load_head(head_id: str, sample_rate: int, sofa_path: str | Path = KEMAR_SOFA) -> HrirSet:
    """The HRIRs of ``head_id`` at ``sample_rate`` Hz, from an in-process LRU cache (the 16
    heads used last, plus KEMAR and what its perturbations share, per sample rate).

    Returns:
        :class:`HrirSet` (``hrirs (n_dirs, 2, n_taps) float32``); its arrays are read-only
        because the same object is handed to every caller that asks for this head.

    Raises:
        ValueError: bad id (the message names the forms) or sample rate.
        FileNotFoundError: KEMAR-based ids without the SOFA file (Debian ``libmysofa1``).
    """
    parse_head_id(head_id)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not 8000 <= sample_rate <= 192000:
        raise ValueError(f"sample_rate must be an int in [8000, 192000] Hz, got {sample_rate!r}")
    return _load_head(head_id, int(sample_rate), str(sofa_path))


def clear_head_cache() -> None:
    """Forget every cached head (and the cached KEMAR it was built from)."""
    for f in (_load_head, _kemar, _kemar_basis):
        f.cache_clear()


@lru_cache(maxsize=16)  # 16 heads: ~16 MB at 16 kHz, ~50 MB at 48 kHz
def _load_head(head_id: str, sample_rate: int, sofa_path: str) -> HrirSet:
    kind, seed = parse_head_id(head_id)
    if kind == "kemar":
        return _kemar(sample_rate, sofa_path)
    if kind == "kemar~p":
        p = _perturbation(seed)
        knots, left, right = _check_perturbation(p["itd_scale"], p["ild_scale"], p["colour_knots_hz"],
                                                 p["colour_left_db"], p["colour_right_db"])
        basis = _kemar_basis(sample_rate, sofa_path)
        return _read_only(basis.apply(p["itd_scale"], p["ild_scale"], knots, left, right))
    return _read_only(sphere_hrirs(sample_rate, **_sphere_params(seed)))


@lru_cache(maxsize=4)
def _kemar(sample_rate: int, sofa_path: str) -> HrirSet:
    return _read_only(load_sofa(sofa_path, sample_rate))


@lru_cache(maxsize=4)
def _kemar_basis(sample_rate: int, sofa_path: str) -> _PerturbationBasis:
    return _PerturbationBasis(_kemar(sample_rate, sofa_path))


def _read_only(h: HrirSet) -> HrirSet:
    for a in (h.hrirs, h.azimuth_deg, h.elevation_deg):
        a.flags.writeable = False
    return h


def _fold_cepstrum(c: np.ndarray, n_fft: int) -> np.ndarray:
    """Real cepstrum ``(..., n_fft)`` folded onto positive quefrencies: its rfft is the log
    spectrum of the minimum-phase filter with the same magnitude (homomorphic method)."""
    out = c.copy()
    out[..., 1:n_fft // 2] *= 2.0
    out[..., n_fft // 2 + 1:] = 0.0
    return out


class _PerturbationBasis:
    """What every perturbation of one base head shares, computed once per base (then each
    perturbation costs one complex exponential and one inverse FFT).

    ``spec (d, 2, f)`` the base spectra; ``ild_log (d, f)`` the log spectrum of the minimum-phase
    filter whose log magnitude is the base's smoothed ILD (ln|R| - ln|L|); ``itd_s (d,)``;
    ``freqs (f,)`` Hz.
    """

    def __init__(self, base: HrirSet):
        self.base = base
        sr, n_taps = base.sample_rate, base.n_taps
        self.n_fft = n_fft = 1 << int(np.ceil(np.log2(2 * n_taps)))
        self.freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
        self.spec = np.fft.rfft(base.hrirs, n_fft, axis=-1).astype(np.complex64)
        mag = np.abs(self.spec)
        logmag = np.log(mag + 1e-6 * mag.max())
        # Smooth the ILD by keeping its cepstrum below ILD_SMOOTH_S (notches are not cues to scale).
        cep = np.fft.irfft(logmag[:, 1] - logmag[:, 0], n_fft, axis=-1)
        lifter = max(1, int(round(ILD_SMOOTH_S * sr)))
        cep[:, lifter + 1: n_fft - lifter] = 0.0
        self.ild_log = np.fft.rfft(_fold_cepstrum(cep, n_fft), axis=-1).astype(np.complex64)
        self.itd_s = interaural_cues(base.hrirs, sr)[0]

    def colour_log(self, knots_hz: np.ndarray, gains_db: np.ndarray) -> np.ndarray:
        """Minimum-phase log spectra ``(2, f)`` of the per-ear colouring curves ``(2, k)`` dB."""
        f_log = np.log(np.maximum(self.freqs, knots_hz[0]))
        ln = np.stack([np.interp(f_log, np.log(knots_hz), g) for g in gains_db]) * (np.log(10) / 20)
        return np.fft.rfft(_fold_cepstrum(np.fft.irfft(ln, self.n_fft, axis=-1), self.n_fft), axis=-1)

    def apply(self, itd_scale: float, ild_scale: float, knots_hz, left_db, right_db) -> HrirSet:
        # Per ear the filter is exp(colour +- (ild_scale - 1)/2 * ild +- j w delta/2): the right
        # ear gets louder and earlier by what the left ear loses, so ITD and ILD scale as asked.
        half = (0.5 * (ild_scale - 1.0) * self.ild_log
                + 1j * np.pi * self.freqs * ((itd_scale - 1.0) * self.itd_s)[:, None])
        e = np.exp(half.astype(np.complex64))  # (d, f)
        colour = np.exp(self.colour_log(knots_hz, np.stack([left_db, right_db]))).astype(np.complex64)
        out = np.empty_like(self.spec)
        np.divide(self.spec[:, 0], e, out=out[:, 0])
        np.multiply(self.spec[:, 1], e, out=out[:, 1])
        out *= colour
        h = np.fft.irfft(out, self.n_fft, axis=-1)[..., :self.base.n_taps]
        # The right-ear advance (<= 0.07 ms) wraps a fraction of a sample of the silent
        # pre-onset to the end of the buffer; truncating to n_taps drops it.
        return HrirSet(h.astype(np.float32), self.base.azimuth_deg, self.base.elevation_deg,
                       self.base.sample_rate)


def perturb_hrirs(base: HrirSet, itd_scale: float, ild_scale: float,
                  colour_knots_hz, colour_left_db, colour_right_db) -> HrirSet:
    """``base`` with its ITD scaled by ``itd_scale``, its (smoothed, per-frequency) ILD in dB
    scaled by ``ild_scale``, and each ear coloured by the piecewise-linear-in-log-frequency
    gain curve ``colour_*_db`` at ``colour_knots_hz`` (held constant beyond the end knots).

    Returns an :class:`HrirSet` on ``base``'s directions with ``base.n_taps`` taps. The ITD is
    changed by delaying the ears by ``+- (itd_scale - 1) * itd / 2``, with ``itd`` the base's
    own ITD in that direction (:func:`interaural_cues`), so the ITD measured the same way is
    scaled; the gain filters are minimum phase, so nothing rings before the onset.
    """
    knots, left, right = _check_perturbation(itd_scale, ild_scale, colour_knots_hz,
                                             colour_left_db, colour_right_db)
    return _PerturbationBasis(base).apply(itd_scale, ild_scale, knots, left, right)


def _check_perturbation(itd_scale, ild_scale, knots_hz, left_db, right_db):
    if not (0.5 <= itd_scale <= 2.0 and 0.0 <= ild_scale <= 2.0):
        raise ValueError(f"need itd_scale in [0.5, 2] and ild_scale in [0, 2], got {itd_scale}, "
                         f"{ild_scale}")
    knots = np.asarray(knots_hz, dtype=np.float64)
    left, right = np.asarray(left_db, dtype=np.float64), np.asarray(right_db, dtype=np.float64)
    if knots.ndim != 1 or len(knots) < 2 or np.any(np.diff(knots) <= 0) or knots[0] <= 0 \
            or left.shape != knots.shape or right.shape != knots.shape:
        raise ValueError("colour_knots_hz must be (k >= 2,) increasing positive Hz and "
                         f"colour_left_db, colour_right_db (k,) dB; got shapes {knots.shape}, "
                         f"{left.shape}, {right.shape}")
    return knots, left, right


def sphere_hrirs(sample_rate: int, radius_m: float, ear_azimuth_deg: float,
                 ear_elevation_deg: float, shoulder_echo_gain: float,
                 pinna_scale: float | None) -> HrirSet:
    """HRIRs of a rigid spherical head (Brown & Duda 1998 structural model), on
    :func:`direction_grid` ``(az step 5, el -40..90 step 10)``; ``(n_dirs, 2, n_taps)`` with
    ``n_taps = round(5 ms * sample_rate)``.

    Per ear, with ``theta`` the angle between the source and that ear's axis:
    head shadow ``(1 + j alpha(theta) w / 2w0) / (1 + j w / 2w0)``, ``w0 = c / radius``,
    ``alpha = 1.05 + 0.95 cos(theta / 150 deg * 180 deg)``; delay ``-radius/c cos(theta)`` in
    front of the ear and ``radius/c (theta - pi/2)`` behind it (Woodworth's creeping wave);
    a shoulder echo of the same ear; and, with ``pinna_scale`` not None, Brown & Duda's five
    pinna echoes with their delays scaled by ``pinna_scale``.
    """
    if not (0.05 <= radius_m <= 0.12 and 80 <= ear_azimuth_deg <= 110
            and -30 <= ear_elevation_deg <= 30 and 0 <= shoulder_echo_gain < 1
            and (pinna_scale is None or 0.5 <= pinna_scale <= 2)):
        raise ValueError("need radius_m in [0.05, 0.12], ear_azimuth_deg in [80, 110], "
                         "ear_elevation_deg in [-30, 30], shoulder_echo_gain in [0, 1), "
                         "pinna_scale None or in [0.5, 2]; got "
                         f"{radius_m}, {ear_azimuth_deg}, {ear_elevation_deg}, "
                         f"{shoulder_echo_gain}, {pinna_scale}")
    az, el = direction_grid()
    n_taps = int(round(SPHERE_LENGTH_S * sample_rate))
    n_fft = 1 << int(np.ceil(np.log2(2 * n_taps)))
    f_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    w = (2 * np.pi * f_hz).astype(np.float32)  # rad/s, (f,)
    src = _unit_vectors(az, el)  # (d, 3), x forward, y left, z up
    ears = _unit_vectors(np.array([-ear_azimuth_deg, ear_azimuth_deg]),
                         np.array([ear_elevation_deg, ear_elevation_deg]))  # left, right
    theta = np.arccos(np.clip(src @ ears.T, -1.0, 1.0))  # (d, 2)
    a_c = radius_m / SPEED_OF_SOUND
    alpha = (1.05 + 0.95 * np.cos(theta / np.deg2rad(150.0) * np.pi)).astype(np.float32)
    x = (w * (0.5 * a_c)).astype(np.float32)  # w / 2w0
    spec = (1 + 1j * alpha[..., None] * x) / (1 + 1j * x)  # head shadow, (d, 2, f) complex64
    delay = SPHERE_ONSET_S + np.where(theta < np.pi / 2, -a_c * np.cos(theta),
                                      a_c * (theta - np.pi / 2))
    spec *= np.exp(-1j * (delay.astype(np.float32)[..., None] * w))
    # Shoulder echo (Brown & Duda's delay formula in ms, with their azimuth taken as the lateral
    # angle so that front and back match); the torso shadows it for sources below the
    # shoulders (fade out from 0 to -30 degrees elevation).
    lat = np.rad2deg(np.abs(np.arcsin(np.sin(np.deg2rad(az)) * np.cos(np.deg2rad(el)))))
    t_sh = 1.2e-3 * (180 - lat) / 180 * (1 - 0.00004 * ((el - 80) * 180 / (180 + lat)) ** 2)
    g_sh = shoulder_echo_gain * np.clip(1 + el / 30.0, 0.0, 1.0)
    echoes = 1 + g_sh.astype(np.float32)[:, None] * np.exp(-1j * (t_sh.astype(np.float32)[:, None] * w))
    if pinna_scale is not None:
        # Brown & Duda's pinna events; cos(theta / 2) is even in azimuth, so both ears get the
        # same events (a monaural, front/back and elevation cue) and phi is the elevation.
        cos_half = np.cos(np.deg2rad(az) / 2)
        pinna = np.ones_like(echoes)
        for rho, A, B, D in zip(PINNA_RHO, PINNA_A, PINNA_B, PINNA_D):
            tau = pinna_scale * (A * cos_half * np.sin(np.deg2rad(D * (90 - el))) + B) / 44100
            pinna += np.float32(rho) * np.exp(-1j * (tau.astype(np.float32)[:, None] * w))
        echoes *= pinna
    spec *= echoes[:, None]
    # Taper the top 10 % of the band so the fractional delays do not ring (band-limited onset).
    taper = np.clip((0.5 * sample_rate - f_hz) / (0.05 * sample_rate), 0.0, 1.0)
    spec *= (np.sin(0.5 * np.pi * taper) ** 2).astype(np.float32)
    front = spec[np.argmin(np.abs(az) + np.abs(el))]  # (2, f)
    band = f_hz <= 8000.0
    spec *= np.float32(np.sqrt(KEMAR_FRONT_POWER_GAIN / np.mean(np.abs(front[:, band]) ** 2)))
    hrirs = np.fft.irfft(spec, n_fft, axis=-1)[..., :n_taps]
    return HrirSet(hrirs.astype(np.float32), az, el, int(sample_rate))

