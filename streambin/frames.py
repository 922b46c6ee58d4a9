"""Camera frame checks and conversion to the visual network's input.

Accepted frames (documented behaviour, tested):

* ``(H, W, 3)`` uint8 RGB (``color="bgr"`` for OpenCV-style BGR), any H and W >= 1;
* ``(H, W)`` grayscale uint8: replicated to three channels;
* ``(H, W, 4)`` RGBA / BGRA uint8: the alpha channel is dropped;
* ``(H, W, 1)``: treated as grayscale.

Everything else (other dtypes, ranks, empty frames) raises ``ValueError``/``TypeError`` with
the expected layout. Frames may change size between calls: every frame is resized to the
model's visual input size with area interpolation.
"""

from __future__ import annotations

import numpy as np

COLORS = ("rgb", "bgr")


def check_frame(frame, color: str = "rgb") -> np.ndarray:
    """Validate a camera frame without converting it; returns it as ``(H, W)`` or ``(H, W, 3|4)``.

    Raises ``TypeError``/``ValueError`` naming the expected layout (see the module docstring).
    Cheap: no copy, no resize, so a frame the caller will not use can still be rejected.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array (H, W, 3) uint8, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise TypeError(f"frame must be uint8 (H, W, 3) {color.upper()}, got dtype {frame.dtype}; "
                        "convert with np.clip(x * 255, 0, 255).astype(np.uint8) for float images")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise ValueError(f"frame must be (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grayscale uint8, "
                         f"got shape {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must be at least 1x1 pixels, got shape {frame.shape}")
    return frame


def convert_frame(frame: np.ndarray, size_hw, color: str = "rgb") -> np.ndarray:
    """A frame returned by :func:`check_frame` -> ``(H_v, W_v, 3)`` uint8 RGB at ``size_hw``."""
    import cv2

    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    frame = frame[:, :, :3]
    if color == "bgr":
        frame = frame[:, :, ::-1]
    h, w = int(size_hw[0]), int(size_hw[1])
    if frame.shape[:2] != (h, w):
        frame = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)


def prepare_frame(frame, size_hw, color: str = "rgb") -> np.ndarray:
    """Validate a camera frame and return it as ``(H_v, W_v, 3)`` uint8 RGB at ``size_hw``.

    Args:
        frame: camera frame (see the module docstring for the accepted layouts).
        size_hw: ``(H_v, W_v)`` visual input size of the model, in pixels.
        color: channel order of 3/4-channel frames, "rgb" or "bgr".
    """
    return convert_frame(check_frame(frame, color), size_hw, color)
