"""Heads for the scene generator: which head hears a clip, delivered as an :class:`HrirSet`.

A model trained on one head learns that head's interaural cues; drawing the head per clip from
many plausible heads teaches it what heads have in common. Every head is named by a string id,
and the same id always gives the same HRIRs (parameters are drawn from the id alone).

Head ids
--------
``"<base>"``: a measured head as measured (:data:`MEASURED_HEADS`)
    ``kemar``: MIT KEMAR, normal pinna, 710 directions (Debian ``libmysofa1``,
    ``/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa``).
    ``kemar_tub``: a KEMAR 45BA measured at TU Berlin (Wierstorf et al. 2011), horizontal plane;
    ``fabian``: the FABIAN head-and-torso simulator (TU Berlin, Lindau & Weinzierl 2007),
    horizontal plane, minimum phase plus delay, equalised. Both ship with the SoundScape
    Renderer (Debian ``soundscaperenderer-common``, ``/usr/share/ssr/impulse_responses/hrirs``);
    each direction off the horizontal plane takes the measured HRIR of the same lateral angle
    and side (front/back), which keeps ITD and ILD right for reflections from any elevation but
    has no elevation cues. They are scaled to KEMAR's frontal level (below).
``"<base>~p<seed>"``: a measured head with seeded interaural-cue perturbations, within the human range
    ITD scaled by 0.85-1.2 but to at most 0.85 ms at 90 degrees (KEMAR's 0.70 ms becomes
    0.60-0.84 ms; FABIAN's 0.75 ms is scaled by at most 1.13), ILD in dB
    scaled by 0.75-1.3 (per frequency, on the cepstrally smoothed ILD so notches are not
    amplified), and a smooth random colouring per ear over log frequency (common to both ears:
    std 2 dB, at most 4 dB; each ear's own: std 0.7 dB, centred over its knots, at most 1.5 dB).
    The ITD change uses the base's own ITD per direction, so the ITD measured the same way
    (:func:`interaural_cues`) is scaled; the gain filters are minimum phase, so nothing rings
    before the onset. Both scalings are multiplicative per direction, so where the base's ITD
    and broadband ILD rise with azimuth the perturbed head's do too (KEMAR's broadband ILD itself
    peaks near 70 degrees and falls towards 90, the acoustic bright spot; its ITD rises to 90).
``"sphere~s<seed>"``: a rigid spherical head (Brown & Duda 1998)
    Per ear the one-pole/one-zero head-shadow filter and the Woodworth/creeping-wave delay,
    ears offset backwards (ear azimuth 90-100 degrees, elevation -10..0), head radius
    7.5-9.5 cm; plus a shoulder echo (Brown & Duda's delay formula, gain 0.15-0.35, shadowed
    for sources below the shoulders) and in 3 heads of 4 Brown & Duda's pinna echoes with a
    seeded pinna size.

Measured sets from SSR files and spheres come on :func:`direction_grid` (every 5 degrees of
azimuth on rings from -40 to 80 degrees elevation every 10 degrees, and the pole), KEMAR on its
own 710 directions. Every head but MIT KEMAR is scaled so that its frontal power gain, mean
``|H(f)|^2`` over 0-8 kHz, equals KEMAR's (:data:`KEMAR_FRONT_POWER_GAIN`).

Pools (disjoint by id; :func:`head_ids`)
----------------------------------------
========  ===========================================================================
train     ``kemar``, ``kemar_tub``; ``kemar~p<s>`` and ``kemar_tub~p<s>`` for s in 0..999;
          ``sphere~s0`` .. ``sphere~s999``
ood       ``fabian``; ``kemar~p<s>``, ``kemar_tub~p<s>``, ``fabian~p<s>`` for s in 1000..1099;
          ``sphere~s1000`` .. ``sphere~s1099``
========  ===========================================================================
Ids in neither pool (seeds >= 1100, ``fabian~p<s>`` for s < 1000) are valid for experiments.
The OOD pool's only head never seen in any form is FABIAN; its other heads are unseen
identities drawn from the train heads' distributions.

Other measured HRIR sets looked for, none of them a new head: Debian ``libopenal-data``
(``/usr/share/openal/hrtf/default-*.mhr``) is OpenAL Soft's default table, built from MIT
KEMAR (OpenAL Soft's ``MIT_KEMAR.def``; same 19-ring, 1.4 m layout); Debian ``pd-earplug``
ships the MIT KEMAR compact set; ``makehrtf``, ``libmysofa-utils``, ``libspatialaudio0``,
``zita-bls1`` and the PyPI packages ``spaudiopy``, ``sonore``, ``bayesian-listener``,
``omi-audio`` and ``immersive-audio`` ship no HRIRs (some download them, which cannot happen
here). No KU100 dummy-head set was used (the project keeps TH Koeln's KU100 sets out of training).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.fft import next_fast_len

from .assets import DEFAULT_SOFA as KEMAR_SOFA
from .hrtf import HrirSet, _unit_vectors, direction_grid, interaural_cues, load_sofa, load_ssr_wav
from .render import SPEED_OF_SOUND

HEAD_POOLS = ("train", "ood", "all")
HEAD_ID_FORMS = ('"<base>"', '"<base>~p<seed>"', '"sphere~s<seed>"')
TRAIN_SEEDS = range(0, 1000)
OOD_SEEDS = range(1000, 1100)

SSR_HRIR_DIR = Path("/usr/share/ssr/impulse_responses/hrirs")


@dataclass(frozen=True)
class MeasuredHead:
    """A measured HRIR set a head id can name: ``path`` read by ``reader`` ("sofa": full
    sphere; "ssr": horizontal plane, extended to the sphere by lateral angle), its ``pool``,
    ``source`` (what it is and where it comes from, for the sidecar) and ``itd_90_ms``, its
    ITD at +-90 degrees (mean magnitude, :func:`interaural_cues`; a test checks it), which
    bounds the ITD scaling of its perturbations."""

    path: Path
    reader: str
    pool: str
    source: str
    itd_90_ms: float


MEASURED_HEADS = {
    "kemar": MeasuredHead(
        KEMAR_SOFA, "sofa", "train",
        "MIT KEMAR, normal pinna (Gardner & Martin 1994), 710 directions; Debian libmysofa1",
        0.703),
    "kemar_tub": MeasuredHead(
        SSR_HRIR_DIR / "hrirs_kemar.wav", "ssr", "train",
        "KEMAR 45BA measured at TU Berlin (Wierstorf et al. 2011), horizontal plane every "
        "degree, low frequencies corrected; Debian soundscaperenderer-common", 0.693),
    "fabian": MeasuredHead(
        SSR_HRIR_DIR / "hrirs_fabian_min_phase_eq.wav", "ssr", "ood",
        "FABIAN head-and-torso simulator (TU Berlin, Lindau & Weinzierl 2007), horizontal "
        "plane every degree, minimum phase plus delay, equalised; Debian soundscaperenderer-common",
        0.754),
}
# Separate random streams per perturbed base and for spheres (kemar's value fixes its ids).
_SALT = {"kemar": 0x4B50, "kemar_tub": 0x4B54, "fabian": 0x4642, "sphere": 0x5350}
_ID = re.compile(r"^(?:(?P<base>[a-z_]+)(?:~p(?P<pseed>0|[1-9][0-9]*))?|sphere~s(?P<sseed>0|[1-9][0-9]*))$")

# MIT KEMAR's frontal power gain, mean |H(f)|^2 over 0-8 kHz (2.10, i.e. +3.2 dB, both ears):
# every other head is scaled to it so that switching heads does not switch loudness.
KEMAR_FRONT_POWER_GAIN = 2.10

ITD_SCALE_RANGE = (0.85, 1.2)
ITD_90_RANGE_MS = (0.58, 0.85)  # and the scaled ITD at 90 degrees stays in the human range
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



def parse_head_id(head_id: str) -> tuple[str, str | None, int | None]:
    """``(kind, base, seed)`` of a head id: ``("measured", base, None)`` for ``"<base>"``,
    ``("perturbed", base, seed)`` for ``"<base>~p<seed>"``, ``("sphere", None, seed)`` for
    ``"sphere~s<seed>"``; ``base`` is one of :data:`MEASURED_HEADS`. Raises ValueError naming
    the accepted forms."""
    m = _ID.match(head_id) if isinstance(head_id, str) else None
    if m is None or (m["base"] is not None and m["base"] not in MEASURED_HEADS):
        raise ValueError(f"head id must be one of {', '.join(HEAD_ID_FORMS)} with <base> one of "
                         f"{', '.join(MEASURED_HEADS)} and <seed> a non-negative integer without "
                         f"leading zeros, got {head_id!r}")
    if m["sseed"] is not None:
        return "sphere", None, int(m["sseed"])
    if m["pseed"] is not None:
        return "perturbed", m["base"], int(m["pseed"])
    return "measured", m["base"], None


def head_ids(pool: str) -> list[str]:
    """All head ids of ``pool`` ("train", "ood", or "all" for both), in a fixed order."""
    if pool not in HEAD_POOLS:
        raise ValueError(f"pool must be one of {HEAD_POOLS}, got {pool!r}")
    if pool == "all":
        return head_ids("train") + head_ids("ood")
    return (_measured(pool) + [f"{b}~p{s}" for b in _perturbed_bases(pool) for s in _seeds(pool)]
            + [f"sphere~s{s}" for s in _seeds(pool)])


def _measured(pool: str) -> list[str]:
    return [b for b, h in MEASURED_HEADS.items() if h.pool == pool]


def _perturbed_bases(pool: str) -> list[str]:
    # OOD perturbations may start from any measured head, train ones only from train heads.
    return list(MEASURED_HEADS) if pool == "ood" else _measured("train")


def _seeds(pool: str) -> range:
    return OOD_SEEDS if pool == "ood" else TRAIN_SEEDS


def head_pool(head_id: str) -> str | None:
    """``"train"``, ``"ood"``, or ``None`` for a valid id in neither pool (e.g. seed >= 1100)."""
    kind, base, seed = parse_head_id(head_id)
    if kind == "measured":
        return MEASURED_HEADS[base].pool
    for pool in ("train", "ood"):
        if seed in _seeds(pool) and (kind == "sphere" or base in _perturbed_bases(pool)):
            return pool
    return None


def draw_head(rng: np.random.Generator, pool: str, measured_share: float = 0.15,
              sphere_share: float = 0.3) -> str:
    """A head id of ``pool`` drawn with ``rng``: a measured head as measured with
    ``measured_share``, a spherical head with ``sphere_share``, a perturbed measured head
    otherwise (base, then seed, uniformly). Pool "all" always gives ``"kemar"`` without drawing
    (it reproduces the sets made before heads varied)."""
    if pool not in HEAD_POOLS:
        raise ValueError(f"pool must be one of {HEAD_POOLS}, got {pool!r}")
    if not (0 <= measured_share and 0 <= sphere_share and measured_share + sphere_share <= 1):
        raise ValueError("measured_share and sphere_share must be >= 0 with a sum <= 1, got "
                         f"{measured_share} and {sphere_share}")
    if pool == "all":
        return "kemar"
    u = rng.random()
    if u < measured_share:
        measured = _measured(pool)
        return measured[int(rng.integers(len(measured)))]
    seed = int(rng.integers(_seeds(pool).start, _seeds(pool).stop))
    if u >= 1.0 - sphere_share:
        return f"sphere~s{seed}"
    bases = _perturbed_bases(pool)
    return f"{bases[int(rng.integers(len(bases)))]}~p{seed}"


def _perturbation(base: str, seed: int) -> dict:
    rng = np.random.default_rng([_SALT[base], seed])
    itd_90 = MEASURED_HEADS[base].itd_90_ms
    itd = float(rng.uniform(max(ITD_SCALE_RANGE[0], ITD_90_RANGE_MS[0] / itd_90),
                            min(ITD_SCALE_RANGE[1], ITD_90_RANGE_MS[1] / itd_90)))
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
    rng = np.random.default_rng([_SALT["sphere"], seed])
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
    """What a head is, for the sidecar: ``{"id", "kind", "pool", ...}`` with ``"base"`` and
    ``"source"`` for measured and perturbed heads, and the drawn parameters."""
    kind, base, seed = parse_head_id(head_id)
    out = {"id": head_id, "kind": kind, "pool": head_pool(head_id)}
    if kind == "sphere":
        return {**out, "seed": seed, **_sphere_params(seed)}
    out.update(base=base, source=MEASURED_HEADS[base].source)
    return out if kind == "measured" else {**out, "seed": seed, **_perturbation(base, seed)}


def load_head(head_id: str, sample_rate: int) -> HrirSet:
    """The HRIRs of ``head_id`` at ``sample_rate`` Hz on a grid that covers the sphere (KEMAR's
    710 directions, or every 5 degrees of azimuth on rings from -40 to 90 degrees elevation),
    from an in-process LRU cache (the 16 heads used last, plus the measured sets and what their
    perturbations share, per sample rate).

    Returns:
        :class:`HrirSet` (``hrirs (n_dirs, 2, n_taps) float32``); its arrays are read-only
        because the same object is handed to every caller that asks for this head.

    Raises:
        ValueError: bad id (the message names the forms) or sample rate.
        FileNotFoundError: a measured head's file is missing (the message names its package).
    """
    parse_head_id(head_id)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not 8000 <= sample_rate <= 192000:
        raise ValueError(f"sample_rate must be an int in [8000, 192000] Hz, got {sample_rate!r}")
    return _load_head(head_id, int(sample_rate))


def clear_head_cache() -> None:
    """Forget every cached head (and the cached measured sets they were built from)."""
    for f in (_load_head, _measured_head, _basis):
        f.cache_clear()


@lru_cache(maxsize=16)  # 16 heads: ~16 MB at 16 kHz, ~50 MB at 48 kHz
def _load_head(head_id: str, sample_rate: int) -> HrirSet:
    kind, base, seed = parse_head_id(head_id)
    if kind == "measured":
        return _measured_head(base, sample_rate)
    if kind == "sphere":
        return _read_only(sphere_hrirs(sample_rate, **_sphere_params(seed)))
    p = _perturbation(base, seed)
    knots, left, right = _check_perturbation(p["itd_scale"], p["ild_scale"], p["colour_knots_hz"],
                                             p["colour_left_db"], p["colour_right_db"])
    return _read_only(_basis(base, sample_rate).apply(p["itd_scale"], p["ild_scale"], knots, left, right))


@lru_cache(maxsize=6)
def _measured_head(base: str, sample_rate: int) -> HrirSet:
    head = MEASURED_HEADS[base]
    if head.reader == "sofa":
        h = load_sofa(head.path, sample_rate)
    else:
        h = _horizontal_to_sphere(load_ssr_wav(head.path, sample_rate))
        h = HrirSet(h.hrirs * np.float32(np.sqrt(KEMAR_FRONT_POWER_GAIN / _front_power_gain(h))),
                    h.azimuth_deg, h.elevation_deg, sample_rate)
    return _read_only(h)


@lru_cache(maxsize=6)
def _basis(base: str, sample_rate: int) -> _PerturbationBasis:
    return _PerturbationBasis(_measured_head(base, sample_rate))


def _horizontal_to_sphere(h: HrirSet) -> HrirSet:
    """A horizontal-plane set ``h`` on :func:`direction_grid`: each direction takes the measured
    HRIR (nearest measured azimuth) with the same lateral angle on the same side (front or
    back), so ITD and ILD, which follow the lateral angle (cones of confusion), stay right for
    reflections from any elevation; elevation's own spectral cues are not there to keep."""
    az, el = direction_grid()
    a, e = np.deg2rad(az), np.deg2rad(el)
    lateral = np.rad2deg(np.arcsin(np.clip(np.sin(a) * np.cos(e), -1.0, 1.0)))
    front = np.cos(a) * np.cos(e) >= -1e-9
    az_h = np.where(front, lateral, np.where(lateral >= 0, 180.0 - lateral, -180.0 - lateral))
    idx = h.nearest(az_h, np.zeros_like(az_h))
    return HrirSet(h.hrirs[idx], az, el, h.sample_rate)


def _front_power_gain(h: HrirSet) -> float:
    """Mean ``|H(f)|^2`` over 0-8 kHz of the frontal HRIR pair, both ears."""
    i = int(np.argmin(np.abs(h.azimuth_deg) + np.abs(h.elevation_deg)))
    n_fft = 4 * h.n_taps
    spec = np.fft.rfft(h.hrirs[i].astype(np.float64), n_fft, axis=-1)
    band = np.fft.rfftfreq(n_fft, 1.0 / h.sample_rate) <= 8000.0
    return float(np.mean(np.abs(spec[:, band]) ** 2))


def _read_only(h: HrirSet) -> HrirSet:
    for a in (h.hrirs, h.azimuth_deg, h.elevation_deg):
        a.flags.writeable = False
    return h


def _cexp(log_mag: np.ndarray | None, phase: np.ndarray) -> np.ndarray:
    """``exp(log_mag + j phase)`` as complex64 from float32 cos/sin (numpy's complex exp is
    several times slower, and these are the bulk of building a head)."""
    out = np.empty(phase.shape, dtype=np.complex64)
    out.real, out.imag = np.cos(phase), np.sin(phase)
    if log_mag is not None:
        out *= np.exp(log_mag)
    return out


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
        self.n_fft = n_fft = next_fast_len(2 * n_taps, real=True)
        self.freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
        self.spec = np.fft.rfft(base.hrirs, n_fft, axis=-1).astype(np.complex64)
        mag = np.abs(self.spec)
        logmag = np.log(mag + 1e-6 * mag.max())
        # Smooth the ILD by keeping its cepstrum below ILD_SMOOTH_S (notches are not cues to scale).
        cep = np.fft.irfft(logmag[:, 1] - logmag[:, 0], n_fft, axis=-1)
        lifter = max(1, int(round(ILD_SMOOTH_S * sr)))
        cep[:, lifter + 1: n_fft - lifter] = 0.0
        self.ild_log = np.fft.rfft(_fold_cepstrum(cep, n_fft), axis=-1).astype(np.complex64)
        # The base's ITD per direction to ~4 microseconds (a scaling by at most 20 % moves that
        # error by < 1 microsecond); finer would cost seconds at 48 kHz.
        self.itd_s = interaural_cues(base.hrirs, sr, upsample=int(np.ceil(1.0 / (sr * 4e-6))))[0]

    def colour_log(self, knots_hz: np.ndarray, gains_db: np.ndarray) -> np.ndarray:
        """Minimum-phase log spectra ``(2, f)`` of the per-ear colouring curves ``(2, k)`` dB."""
        f_log = np.log(np.maximum(self.freqs, knots_hz[0]))
        ln = np.stack([np.interp(f_log, np.log(knots_hz), g) for g in gains_db]) * (np.log(10) / 20)
        return np.fft.rfft(_fold_cepstrum(np.fft.irfft(ln, self.n_fft, axis=-1), self.n_fft), axis=-1)

    def apply(self, itd_scale: float, ild_scale: float, knots_hz, left_db, right_db) -> HrirSet:
        # Per ear the filter is exp(colour +- (ild_scale - 1)/2 * ild +- j w delta/2): the right
        # ear gets louder and earlier by what the left ear loses, so ITD and ILD scale as asked.
        k = np.float32(0.5 * (ild_scale - 1.0))
        e = _cexp(k * self.ild_log.real, k * self.ild_log.imag
                  + np.float32(np.pi) * self.freqs.astype(np.float32)
                  * ((itd_scale - 1.0) * self.itd_s).astype(np.float32)[:, None])  # (d, f)
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
    n_fft = next_fast_len(2 * n_taps, real=True)
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
    spec *= _cexp(None, -(delay.astype(np.float32)[..., None] * w))
    # Shoulder echo (Brown & Duda's delay formula in ms, with their azimuth taken as the lateral
    # angle so that front and back match); the torso shadows it for sources below the
    # shoulders (fade out from 0 to -30 degrees elevation).
    lat = np.rad2deg(np.abs(np.arcsin(np.sin(np.deg2rad(az)) * np.cos(np.deg2rad(el)))))
    t_sh = 1.2e-3 * (180 - lat) / 180 * (1 - 0.00004 * ((el - 80) * 180 / (180 + lat)) ** 2)
    g_sh = shoulder_echo_gain * np.clip(1 + el / 30.0, 0.0, 1.0)
    echoes = 1 + g_sh.astype(np.float32)[:, None] * _cexp(None, -(t_sh.astype(np.float32)[:, None] * w))
    if pinna_scale is not None:
        # Brown & Duda's pinna events; cos(theta / 2) is even in azimuth, so both ears get the
        # same events (a monaural, front/back and elevation cue) and phi is the elevation.
        cos_half = np.cos(np.deg2rad(az) / 2)
        pinna = np.ones_like(echoes)
        for rho, A, B, D in zip(PINNA_RHO, PINNA_A, PINNA_B, PINNA_D):
            tau = pinna_scale * (A * cos_half * np.sin(np.deg2rad(D * (90 - el))) + B) / 44100
            pinna += np.float32(rho) * _cexp(None, -(tau.astype(np.float32)[:, None] * w))
        echoes *= pinna
    spec *= echoes[:, None]
    # Taper the top 10 % of the band so the fractional delays do not ring (band-limited onset).
    taper = np.clip((0.5 * sample_rate - f_hz) / (0.05 * sample_rate), 0.0, 1.0)
    spec *= (np.sin(0.5 * np.pi * taper) ** 2).astype(np.float32)
    h = HrirSet(np.fft.irfft(spec, n_fft, axis=-1)[..., :n_taps].astype(np.float32), az, el,
                int(sample_rate))
    h.hrirs *= np.float32(np.sqrt(KEMAR_FRONT_POWER_GAIN / _front_power_gain(h)))
    return h

