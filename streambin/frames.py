"""Camera frame checks and conversion to the visual network's input.

Accepted frames (documented behaviour, tested):

* ``(H, W, 3)`` uint8 RGB (``color="bgr"`` for OpenCV-style BGR), any H and W >= 1;
* ``(H, W)`` grayscale uint8: replicated to three channels;
* ``(H, W, 4)`` RGBA / BGRA uint8: the alpha channel is dropped;
* ``(H, W, 1)``: treated as grayscale;
* a PIL image (any mode; converted to RGB);
* a CPU or GPU torch tensor: uint8 ``(H, W, 3)`` as above, or torchvision's layout, float
  ``(3, H, W)`` / ``(1, H, W)`` in [0, 1] (scaled to uint8). Torch is never imported here:
  tensors are recognised by their type.

Everything else (other dtypes, ranks, empty frames) raises ``ValueError``/``TypeError`` with
the expected layout. Frames may change size between calls: every frame is resized to the
model's visual input size with area interpolation.
"""

from __future__ import annotations

import numpy as np

COLORS = ("rgb", "bgr")


def _is_torch_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _is_pil_image(x) -> bool:
    return type(x).__module__.split(".")[0] == "PIL" and hasattr(x, "convert") and hasattr(x, "mode")


def as_array(frame):
    """A PIL image or torch tensor -> numpy frame (see the module docstring); anything else as is."""
    if _is_pil_image(frame):
        return np.asarray(frame if frame.mode in ("RGB", "L", "RGBA") else frame.convert("RGB"))
    if _is_torch_tensor(frame):
        x = frame.detach().cpu().numpy()
        if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[2] not in (1, 3, 4):  # torchvision (C, H, W)
            x = x.transpose(1, 2, 0)
        if x.dtype.kind == "f":
            if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
                raise ValueError("a float torch frame must hold values in [0, 1] (torchvision's layout, "
                                 f"(3, H, W)); got values in [{x.min():g}, {x.max():g}]")
            x = np.round(x * 255.0).astype(np.uint8)
        return x
    return frame


def check_frame(frame, color: str = "rgb") -> np.ndarray:
    """Validate a camera frame without converting it; returns it as ``(H, W)`` or ``(H, W, 3|4)``.

    Raises ``TypeError``/``ValueError`` naming the expected layout (see the module docstring).
    Cheap for numpy frames: no copy, no resize, so a frame the caller will not use can still be
    rejected (PIL images and torch tensors are converted to numpy first).
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    frame = as_array(frame)
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array (H, W, 3) uint8 (or a PIL image or torch tensor), "
                        f"got {type(frame).__name__}")
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


def convert_frame(frame: np.ndarray, size_hw, color: str = "rgb", mirror: bool = False) -> np.ndarray:
    """A frame returned by :func:`check_frame` -> ``(H_v, W_v, 3)`` uint8 RGB at ``size_hw``.

    ``mirror``: flip left-right first. Front (selfie) cameras deliver a mirror image, in which a
    source on the user's right appears on the left; flipping restores the scene as the listener
    faces it.
    """
    import cv2

    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    frame = frame[:, :, :3]
    if color == "bgr":
        frame = frame[:, :, ::-1]
    if mirror:
        frame = frame[:, ::-1]
    h, w = int(size_hw[0]), int(size_hw[1])
    if frame.shape[:2] != (h, w):
        frame = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)

