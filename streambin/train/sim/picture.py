"""What a webcam adds to a picture, and how a cut-out sits in it.

Three jobs, each a pure function of its parameters (all randomness is drawn by the caller into
plain dicts, so a scene's sidecar can record them and frames are reproducible):

- :func:`procedural_background`: a random texture (coloured multi-scale noise, optional stripes
  or a gradient), a minority of backgrounds so the visual net cannot rely on photographs alone;
- :func:`soften_cutout`: a cut-out made less "pasted": feathered alpha edge, colours pulled
  towards the background's, optional defocus; :func:`draw_shadow` a soft contact shadow;
- :func:`sample_camera` / :func:`apply_camera`: per-clip colour gains, exposure, gamma, blur,
  sensor noise, low resolution and JPEG compression, i.e. what webcams deliver.
"""
from __future__ import annotations

import cv2
import numpy as np


def procedural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(height, width, 3) uint8`` RGB texture drawn from ``rng``."""
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}, {width}")
    img = np.zeros((height, width, 3), np.float32)
    for octave in range(int(rng.integers(2, 5))):
        cells = 2 ** (octave + 1)
        small = rng.random((cells, 2 * cells, 3)).astype(np.float32)
        img += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) / (octave + 1)
    img -= img.min()
    img /= max(float(img.max()), 1e-6)
    base = rng.random(3).astype(np.float32)
    img = 0.5 * img + 0.5 * base
    kind = rng.random()
    if kind < 0.3:  # stripes at a random angle and period
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(8, 60)
        s = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
        img = img * (0.6 + 0.4 * s[..., None])
    elif kind < 0.6:  # vertical gradient (sky/floor-like)
        g = np.linspace(rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.2), height, dtype=np.float32)
        img = img * g[:, None, None]
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def soften_cutout(rgba: np.ndarray, feather_px: float, harmonise: float, defocus_px: float,
                  background_mean: np.ndarray) -> np.ndarray:
    """A softened copy of an ``(h, w, 4) uint8`` RGBA cut-out.

    Args:
        feather_px: Gaussian sigma of the alpha edge (0: hard edge).
        harmonise: 0..1, how far the cut-out's mean colour moves towards ``background_mean``.
        defocus_px: Gaussian sigma of the colour blur (0: sharp).
        background_mean: ``(3,)`` mean RGB of the background around the object.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"rgba must be (h, w, 4) uint8, got {rgba.shape} {rgba.dtype}")
    out = rgba.astype(np.float32)
    a = out[:, :, 3]
    if harmonise > 0:
        m = a > 0
        if m.any():
            mean = out[:, :, :3][m].mean(axis=0)
            out[:, :, :3] += harmonise * (np.asarray(background_mean, np.float32) - mean)
    if defocus_px > 0:
        out[:, :, :3] = cv2.GaussianBlur(out[:, :, :3], (0, 0), defocus_px)
    if feather_px > 0:
        out[:, :, 3] = cv2.GaussianBlur(a, (0, 0), feather_px)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_shadow(frame: np.ndarray, box: tuple, opacity: float) -> None:
    """Darken, in place, a soft ellipse under the bottom of ``box`` = (x0, y0, x1, y1) (unclipped
    pixels) of ``frame`` ``(H, W, 3) uint8``: the object's contact shadow on the ground."""
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, float(y1)
    ax, ay = max((x1 - x0) * 0.55, 2.0), max((y1 - y0) * 0.08, 1.5)
    pad = int(3 * ay + ax)
    bx0, by0 = max(int(cx - pad), 0), max(int(cy - pad), 0)
    bx1, by1 = min(int(cx + pad) + 1, W), min(int(cy + pad) + 1, H)
    if bx1 <= bx0 or by1 <= by0:
        return
    yy, xx = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    d = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
    shade = 1.0 - opacity * np.exp(-d)
    roi = frame[by0:by1, bx0:bx1].astype(np.float32)
    frame[by0:by1, bx0:bx1] = np.clip(roi * shade[..., None] + 0.5, 0, 255).astype(np.uint8)


def sample_camera(rng: np.random.Generator) -> dict:
    """Per-clip webcam parameters (JSON-able): colour gains, exposure, gamma, blur, noise,
    downscale, JPEG quality and the seed of the sensor noise."""
    return {
        "gains": [round(float(g), 4) for g in rng.uniform(0.85, 1.15, 3)],
        "exposure": round(float(rng.uniform(0.6, 1.4)), 4),
        "gamma": round(float(rng.uniform(0.8, 1.25)), 4),
        "blur_px": round(float(rng.uniform(0.3, 1.5)), 4) if rng.random() < 0.3 else 0.0,
        "noise": round(float(rng.uniform(1.0, 8.0)), 4) if rng.random() < 0.5 else 0.0,
        "downscale": round(float(rng.uniform(0.3, 0.8)), 4) if rng.random() < 0.3 else 1.0,
        "jpeg_quality": int(rng.integers(25, 90)) if rng.random() < 0.5 else 0,
        "noise_seed": int(rng.integers(2 ** 31)),
    }


def apply_camera(frame: np.ndarray, cam: dict, frame_index: int) -> np.ndarray:
    """``frame`` ``(H, W, 3) uint8`` RGB as the camera ``cam`` (from :func:`sample_camera`)
    delivers it; the sensor noise of frame ``frame_index`` is reproducible."""
    H, W = frame.shape[:2]
    x = frame.astype(np.float32) / 255.0
    x = x * np.asarray(cam["gains"], np.float32) * float(cam["exposure"])
    x = np.clip(x, 0, 1) ** (1.0 / float(cam["gamma"]))
    if cam["blur_px"] > 0:
        x = cv2.GaussianBlur(x, (0, 0), float(cam["blur_px"]))
    if cam["downscale"] < 1.0:
        w, h = max(2, int(W * cam["downscale"])), max(2, int(H * cam["downscale"]))
        x = cv2.resize(cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA), (W, H),
                       interpolation=cv2.INTER_LINEAR)
    if cam["noise"] > 0:
        noise = np.random.default_rng([int(cam["noise_seed"]), int(frame_index)]).standard_normal(x.shape)
        x = x + noise.astype(np.float32) * (float(cam["noise"]) / 255.0)
    out = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    if cam["jpeg_quality"]:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(cam["jpeg_quality"])])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
