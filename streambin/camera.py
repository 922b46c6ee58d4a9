"""The camera geometry every part of streambin shares (DESIGN.md, "Camera").

A pinhole camera with the listener's head at it, facing where it looks. A source at image
column ``u`` of a ``W``-wide frame has azimuth ``atan((u - W/2) / f)`` with focal length
``f = (W/2) / tan(HFOV/2)``; positive azimuths are on the right. The synthetic scenes are
rendered at ``HFOV_DEG`` = 90 degrees (the first training set; later sets draw 60-100). A
bundle's side renderer turns its localiser's columns into azimuths at the ``hfov_deg`` its
section states, unless the app tells the engine its camera's own field of view
(``Spatializer(camera_hfov_deg=...)``).
"""

from __future__ import annotations

import math

import numpy as np

HFOV_DEG = 90.0


def check_hfov_deg(value, name: str = "hfov_deg", kind: str = "horizontal") -> float:
    """``value`` as a float (``kind``: horizontal) field of view in degrees, strictly between 0
    and 180 (a pinhole camera sees less than a half-plane); ValueError naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not 0.0 < value < 180.0:
        raise ValueError(f"{name} must be a {kind} field of view in degrees, a number in (0, 180), got {value!r}")
    return float(value)


def focal_px(width: int, hfov_deg: float = HFOV_DEG) -> float:
    """Focal length in pixels of a ``width``-wide pinhole camera with horizontal FOV ``hfov_deg``."""
    return (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)


def azimuth_to_column(azimuth_deg, width: int, hfov_deg: float = HFOV_DEG):
    """Image column ``u`` of our azimuth (positive right): ``W/2 + f tan(az)``."""
    return width / 2.0 + focal_px(width, hfov_deg) * np.tan(np.deg2rad(azimuth_deg))


def column_to_azimuth(u, width: int, hfov_deg: float = HFOV_DEG):
    """Our azimuth in degrees of image column ``u``: ``atan((u - W/2) / f)``."""
    return np.rad2deg(np.arctan((np.asarray(u, dtype=np.float64) - width / 2.0) / focal_px(width, hfov_deg)))


def hfov_from_diagonal(diagonal_deg: float, width: int, height: int) -> float:
    """The horizontal field of view, in degrees, of a pinhole camera whose data sheet gives the
    diagonal one (webcams usually quote that: 78 degrees diagonal at 16:9 is 70.4 horizontal),
    for frames of ``width`` x ``height`` pixels (the aspect ratio of the mode in use)."""
    diagonal_deg = check_hfov_deg(diagonal_deg, "diagonal_deg", kind="diagonal")
    if isinstance(width, bool) or isinstance(height, bool) or not (width > 0 and height > 0):
        raise ValueError(f"width and height must be positive pixel counts, got {width!r} x {height!r}")
    half = np.tan(np.deg2rad(diagonal_deg) / 2.0) * width / np.hypot(width, height)
    return float(np.rad2deg(2.0 * np.arctan(half)))
