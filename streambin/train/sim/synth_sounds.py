"""Synthesised source sounds: as many distinct spectra and time structures as training wants.

The train pool has about a hundred Tux Paint stamp sounds and a few hundred recorded ones, and a
model trained on them places sources near the centre through the spectra of the sounds it has
learnt (docs/results.md, "How far a mask model could go"). A synthesised sound is drawn from a
seed alone, so every clip can play a sound no other clip plays. It names no package file, so
nothing kept out can enter through it; held-out (OOD) sets never use it (training device only).

A sound is one of :data:`FAMILIES`, its parameters (the sound's identity) drawn once from the
seed, played as events (a random length each, with random gaps) or as one stationary stretch:

- ``"noise"``: band-limited noise (random low and high cut-offs);
- ``"harmonic"``: a harmonic complex (fundamental 70-1200 Hz, random spectral slope, odd
  partials only for some sounds, vibrato, a glide over each event);
- ``"sweep"``: one to three partials sweeping log-linearly between two random frequencies;
- ``"clicks"``: a jittered train of short decaying noise bursts (2-80 per second).

Every event gets an attack and an exponential decay (or none: a held tone), and the whole sound
goes through a random smooth equaliser of up to +-12 dB (:func:`scene.colour_sound`).
"""

from __future__ import annotations

import numpy as np

FAMILIES = ("noise", "harmonic", "sweep", "clicks")
SOUND_PREFIX = "synth:"  # a SourceSpec.sound of kind "synth" is SOUND_PREFIX + its seed
EQ_MAX_DB = 12.0


def sound_id(seed: int) -> str:
    """The ``SourceSpec.sound`` naming the synthesised sound of ``seed`` (an int in [0, 2**63))."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 63:
        raise ValueError(f"a synthesised sound's seed must be an integer in [0, 2**63), got {seed!r}")
    return f"{SOUND_PREFIX}{int(seed)}"


def seed_of(sound: str) -> int:
    """The seed in a sound id made by :func:`sound_id`; ValueError for anything else."""
    if not isinstance(sound, str) or not sound.startswith(SOUND_PREFIX) or not sound[len(SOUND_PREFIX):].isdigit():
        raise ValueError(f"a synthesised sound id is '{SOUND_PREFIX}<seed>', got {sound!r}")
    seed = int(sound[len(SOUND_PREFIX):])
    sound_id(seed)  # the range check
    return seed


def synth_sound(sound: str, n: int, sample_rate: int) -> np.ndarray:
    """The sound named ``sound`` (:func:`sound_id`) as ``(n,) float32`` at ``sample_rate``, peak
    at most 1 and never all zeros; the same id always gives the same samples."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer number of samples, at least 2, got {n!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an integer of at least 8000 Hz, got {sample_rate!r}")
    rng = np.random.default_rng(seed_of(sound))
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    params = _DRAW[family](rng, sample_rate)
    envelope = {"attack_s": float(rng.uniform(0.002, 0.08)),
                "decay_s": _log_uniform(rng, 0.05, 1.0) if rng.random() < 0.7 else None}
    stationary = rng.random() < 0.2
    x = np.zeros(n, np.float64)
    pos = 0 if stationary else int(rng.uniform(0.0, 0.3) * sample_rate)
    while pos < n:
        m = n - pos if stationary else min(n - pos, max(int(rng.uniform(0.05, 1.5) * sample_rate), 16))
        event = _GENERATE[family](rng, params, m, sample_rate)
        x[pos:pos + m] = event * (1.0 if stationary else _envelope(m, sample_rate, **envelope))
        pos += m + (0 if stationary else int(rng.uniform(0.0, 0.4) * sample_rate))
    if not np.any(x):  # a request shorter than the first event's delay (or its fades): hold the sound
        x = _GENERATE[family](rng, params, n, sample_rate)
    from .scene import colour_sound  # here, not at the top: scene imports this module
    x = colour_sound(x, rng, EQ_MAX_DB, sample_rate).astype(np.float64)
    peak = np.max(np.abs(x))
    if not np.isfinite(peak) or peak <= 0:  # cannot happen with the families above; never return silence
        raise ValueError(f"synthesised sound {sound!r} came out silent or not finite")
    return (x / peak).astype(np.float32)


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw_noise(rng, sr):
    low = _log_uniform(rng, 40.0, 2000.0)
    return {"low": low, "high": _log_uniform(rng, min(2 * low, sr / 2), sr / 2)}


def _draw_harmonic(rng, sr):
    return {"f0": _log_uniform(rng, 70.0, 1200.0), "slope": float(rng.uniform(0.5, 2.0)),
            "odd_only": bool(rng.random() < 0.3), "glide": _log_uniform(rng, 0.7, 1.4),
            "vibrato_depth": float(rng.uniform(0.0, 0.03)), "vibrato_hz": float(rng.uniform(4.0, 7.0))}


def _draw_sweep(rng, sr):
    return {"f_start": _log_uniform(rng, 100.0, 0.45 * sr), "f_end": _log_uniform(rng, 100.0, 0.45 * sr),
            "partials": int(rng.integers(1, 4))}


def _draw_clicks(rng, sr):
    return {"rate": _log_uniform(rng, 2.0, 80.0), "click_s": float(rng.uniform(0.001, 0.005)),
            "jitter": float(rng.uniform(0.0, 0.5))}


def _noise(rng, p, m, sr):
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1.0 / sr)
    spec[(f < p["low"]) | (f > p["high"])] = 0.0
    x = np.fft.irfft(spec, n=m)
    return x if np.any(x) else rng.standard_normal(m)  # a very short event can lose its whole band


def _harmonic(rng, p, m, sr):
    t = np.arange(m) / sr
    glide = p["glide"] ** (t / max(t[-1], 1.0 / sr))
    f0 = p["f0"] * glide * (1.0 + p["vibrato_depth"] * np.sin(2 * np.pi * p["vibrato_hz"] * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = np.zeros(m)
    top = f0.max()
    for k in range(1, int(0.45 * sr / top) + 1):
        if p["odd_only"] and k % 2 == 0:
            continue
        x += k ** -p["slope"] * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return x


def _sweep(rng, p, m, sr):
    t = np.arange(m) / sr
    f = p["f_start"] * (p["f_end"] / p["f_start"]) ** (t / max(t[-1], 1.0 / sr))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.zeros(m)
    for k in range(1, p["partials"] + 1):
        if k * f.max() < 0.45 * sr:
            x += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    return x if np.any(x) else np.sin(phase)


def _clicks(rng, p, m, sr):
    x = np.zeros(m)
    width = max(int(p["click_s"] * sr), 2)
    click_env = np.exp(-np.arange(width) / (width / 4.0))
    period = sr / p["rate"]
    pos = float(rng.uniform(0, min(period, m - 1)))
    while pos < m:
        i = int(pos)
        piece = rng.standard_normal(width) * click_env
        x[i:i + width] += piece[:m - i]
        pos += period * (1.0 + p["jitter"] * rng.uniform(-1.0, 1.0))
    return x


def _envelope(m: int, sr: int, attack_s: float, decay_s: float | None) -> np.ndarray:
    t = np.arange(m) / sr
    env = np.minimum(t / attack_s, 1.0)
    if decay_s is not None:
        env = env * np.exp(-np.maximum(t - attack_s, 0.0) / decay_s)
    fade = min(m, int(0.005 * sr))  # 5 ms fade-out: no click where an event is cut
    if fade > 1:
        env[-fade:] *= np.linspace(1.0, 0.0, fade)
    return env


_DRAW = {"noise": _draw_noise, "harmonic": _draw_harmonic, "sweep": _draw_sweep, "clicks": _draw_clicks}
_GENERATE = {"noise": _noise, "harmonic": _harmonic, "sweep": _sweep, "clicks": _clicks}
