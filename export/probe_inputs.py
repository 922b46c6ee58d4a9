"""Inputs for the parity checks of the exports (:mod:`export.parity`).

- :func:`random_inputs`: uniform frames and standard-normal spectrograms.
- :func:`realistic_inputs`: a real clip and frame from a directory, else :func:`synthetic_audio`
  and :func:`synthetic_frame`, turned into the network's input by :func:`spectrogram_context`.

``fields``: the bundle fields that fix the shapes and the STFT: sample_rate, n_fft, win_length,
hop, context_frames, input_rms, rms_floor and visual_size (H_v, W_v).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from streambin.signal_contract import input_scale

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def _find(root: Path, exts: Iterable[str]) -> Optional[Path]:
    """The first file under ``root`` (sorted, recursive) whose extension is in ``exts``."""
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in exts and path.is_file():
            return path
    return None


def synthetic_audio(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A realistic-ish mono test signal (n,) float32: a decaying harmonic note sequence plus a
    noise burst and a chirp, so the spectrogram has speech/music-like structure."""
    rng = np.random.default_rng(seed)
    n = int(round(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    note_len = 0.25
    for k, f0 in enumerate((220.0, 277.2, 329.6, 440.0, 392.0, 293.7)):
        start = int(k * note_len * sample_rate) % max(n, 1)
        seg = t[: max(0, min(n - start, int(note_len * 2 * sample_rate)))]
        env = np.exp(-seg * 6.0)
        note = sum(np.sin(2 * np.pi * f0 * h * seg) / h for h in range(1, 8) if f0 * h < sample_rate / 2)
        x[start:start + len(seg)] += 0.3 * env * note
    burst = rng.standard_normal(n) * np.exp(-((t - seconds / 2) ** 2) / 0.002)
    chirp = 0.1 * np.sin(2 * np.pi * (200 * t + 1500 * t ** 2 / max(seconds, 1e-3)))
    x = x + 0.2 * burst + chirp
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.5).astype(np.float32)


def synthetic_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A test frame (height, width, 3) uint8 RGB: colour gradients with a bright disc and a
    dark rectangle (edges, flat areas and gradients, like a photo)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1),
                    1.0 - xx / max(width - 1, 1) * 0.5], axis=-1) * 200.0
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.2, 0.8) * width
    r = 0.2 * min(height, width)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (250.0, 220.0, 60.0)
    img[int(0.6 * height):int(0.9 * height), int(0.1 * width):int(0.3 * width)] = 30.0
    img += rng.normal(0.0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def spectrogram_context(mono: np.ndarray, bundle_fields: Dict, offset: int = 0) -> np.ndarray:
    """(2, n_fft//2+1, T) float32 normalised network input from mono (n,) at the model rate.

    Takes ``(T - 1) * hop`` samples from ``offset`` (zero-padded at the end if short), STFT with
    a periodic Hann window centred in the frame (center=True gives T frames), real/imag as two
    channels, scaled by ``input_rms / max(rms(crop), rms_floor)`` (docs/architecture.md).
    """
    import scipy.signal

    n_fft, win, hop = bundle_fields["n_fft"], bundle_fields["win_length"], bundle_fields["hop"]
    t_frames = bundle_fields["context_frames"]
    n = (t_frames - 1) * hop
    crop = np.zeros(n, np.float64)
    seg = mono[offset:offset + n]
    crop[:len(seg)] = seg
    window = np.zeros(n_fft)
    lo = (n_fft - win) // 2
    window[lo:lo + win] = scipy.signal.get_window("hann", win, fftbins=True)  # periodic
    padded = np.pad(crop, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:t_frames]
    spec = np.fft.rfft(frames * window, axis=-1).T  # (bins, T)
    scale = input_scale(crop, bundle_fields["input_rms"], bundle_fields["rms_floor"])
    return (np.stack([spec.real, spec.imag]) * scale).astype(np.float32)


def realistic_inputs(fields: Dict, batch: int, data: Optional[str] = None,
                     seed: int = 0) -> Tuple[np.ndarray, np.ndarray, str]:
    """(frames (B, H, W, 3) uint8, spec (B, 2, bins, T) float32, description).

    With ``data`` (a directory), the first audio file (wav/flac/ogg) and first image found under
    it (sorted, recursive) are used: B crops at different offsets, the image resized to the
    visual size. Without it, :func:`synthetic_audio` / :func:`synthetic_frame`.
    """
    h, w = fields["visual_size"]
    sr = fields["sample_rate"]
    need = (fields["context_frames"] - 1) * fields["hop"]
    if data is not None:
        import cv2
        import soundfile as sf

        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"--data {root}: not a directory")
        apath, ipath = _find(root, AUDIO_EXTS), _find(root, IMAGE_EXTS)
        if apath is None or ipath is None:
            raise FileNotFoundError(f"--data {root}: needs at least one audio file "
                                    f"{AUDIO_EXTS} and one image {IMAGE_EXTS}")
        audio, file_sr = sf.read(str(apath), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if file_sr != sr:
            import soxr

            mono = soxr.resample(mono, file_sr, sr).astype(np.float32)
        img = cv2.imread(str(ipath), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"--data: cannot read image {ipath}")
        img = cv2.cvtColor(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB)
        frames = np.stack([img if b == 0 else img[:, ::-1].copy() for b in range(batch)])
        desc = f"real clip {apath.name} + frame {ipath.name}"
    else:
        mono = synthetic_audio(sr, max(2.0, need / sr * (batch + 1)), seed)
        frames = np.stack([synthetic_frame(h, w, seed + b) for b in range(batch)])
        desc = "synthetic tone mix + gradient frame"
    step = max(1, (len(mono) - need) // max(batch, 1))
    spec = np.stack([spectrogram_context(mono, fields, offset=b * step) for b in range(batch)])
    return frames.astype(np.uint8), spec, desc


def random_inputs(fields: Dict, batch: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(frames uniform uint8 (B, H, W, 3), spec standard-normal * 0.5 float32 (B, 2, bins, T))."""
    rng = np.random.default_rng(seed)
    h, w = fields["visual_size"]
    frames = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    spec = (rng.standard_normal((batch, 2, fields["n_fft"] // 2 + 1, fields["context_frames"]))
            * 0.5).astype(np.float32)
    return frames, spec
