"""The live demo's preview: where the model hears the sound, drawn under the camera picture.

* :class:`LevelHistory` turns the binaural output into an interaural level difference (ILD)
  per ~50 ms window, ``10 log10(E_right / E_left)`` dB (positive: louder in the right ear).
* :func:`render_overlay` draws the picture with a meter strip below it: the horizontal axis is
  the ILD from ``-range_db`` (left edge: left ear louder) to ``+range_db`` (right edge), the
  same left/right as the picture, so a source on the right of the picture should pull the
  trace to the right; time scrolls downwards (newest window on top, older windows fade). The
  current value is printed and marked by a bar.
* :func:`display_available` and :class:`PreviewWindow` decide whether a window can be shown at
  all (no DISPLAY/WAYLAND_DISPLAY on Linux, or an OpenCV built without GUI support such as
  ``opencv-python-headless``) and fail soft: the demo then runs without preview.

* With a side renderer (streambin.side_renderer), the objects its localiser found in the latest
  camera frame are marked on the picture: a vertical line at each peak's azimuth, as thick and
  bright as the peak's weight in the rendered side, labelled with that weight.

The model's own visual net exposes no attention map, so no heat map is drawn.
"""

from __future__ import annotations

import os
import sys
from collections import deque

import numpy as np

NO_DISPLAY_MESSAGE = "no display: running without preview (--no-preview to silence this)"


class LevelHistory:
    """ILD of the output per window, for the meter.

    ``push((2, n))`` (worker thread) accumulates the energy of each ear; every ``window``
    samples one value ``10 log10(E_right / E_left)`` in dB is appended to ``values`` (0.0 for a
    silent window). ``values`` is a bounded deque, safe to copy from another thread.

    Args:
        sample_rate: rate of the pushed audio, Hz (> 0).
        window_ms: window length in ms (> 0), ~50 ms by default.
        history: number of windows kept.
    """

    def __init__(self, sample_rate: int, window_ms: float = 50.0, history: int = 200):
        if sample_rate <= 0 or window_ms <= 0 or history < 1:
            raise ValueError(f"sample_rate and window_ms must be > 0 and history >= 1, "
                             f"got {sample_rate}, {window_ms}, {history}")
        self.window = max(1, int(round(sample_rate * window_ms / 1e3)))
        self.values = deque(maxlen=int(history))
        self._e = np.zeros(2)
        self._n = 0

    def push(self, y: np.ndarray) -> None:
        """Add ``(2, n)`` float32 output samples (left, right)."""
        if y.ndim != 2 or y.shape[0] != 2:
            raise ValueError(f"LevelHistory.push expects (2, n) left/right samples, got shape {y.shape}")
        pos, n = 0, y.shape[1]
        while pos < n:
            take = min(n - pos, self.window - self._n)
            seg = y[:, pos:pos + take].astype(np.float64)
            self._e += np.einsum("ij,ij->i", seg, seg)
            self._n += take
            pos += take
            if self._n == self.window:
                left, right = self._e
                if left + right > 1e-12 * self.window:  # below ~-120 dBFS: no side to show
                    self.values.append(float(10 * np.log10((right + 1e-20) / (left + 1e-20))))
                else:
                    self.values.append(0.0)
                self._e[:] = 0
                self._n = 0


def render_overlay(frame_bgr, ild_db, range_db: float = 12.0, width: int = 640, strip_height: int = 120,
                   status: str = "", peaks=None, hfov_deg: float = 90.0, mirror: bool = False):
    """Picture + ILD meter strip (+ the side renderer's peaks).

    Args:
        frame_bgr: ``(H, W, 3)`` uint8 BGR camera picture, or None (a grey canvas is drawn).
        ild_db: sequence of ILD values in dB, oldest first (``LevelHistory.values``).
        range_db: ILD at the strip's edges, dB (> 0).
        width: output width in pixels; the picture is scaled to it.
        strip_height: height of the meter strip in pixels.
        status: one line of text drawn on the picture (e.g. underrun/overrun counters).
        peaks: ``(azimuths (k,) degrees, weights (k,))`` of the side renderer's latest frame
            (``SideRenderer.last_peaks``), or None.
        hfov_deg: the field of view the renderer assumed (its azimuth -> column).
        mirror: the engine flipped the camera picture (``Spatializer(mirror=True)``); the picture
            is drawn as the camera gives it, so the markers are flipped to match.

    Returns:
        ``(h + strip_height, width, 3)`` uint8 BGR image.
    """
    import cv2

    if range_db <= 0 or width < 16 or strip_height < 16:
        raise ValueError(f"range_db must be > 0, width and strip_height >= 16, got {range_db}, {width}, "
                         f"{strip_height}")
    if frame_bgr is None:
        picture = np.full((width // 2, width, 3), 64, np.uint8)
    else:
        if not (isinstance(frame_bgr, np.ndarray) and frame_bgr.dtype == np.uint8 and frame_bgr.ndim == 3
                and frame_bgr.shape[2] == 3):
            raise ValueError("frame_bgr must be (H, W, 3) uint8 BGR or None")
        h = max(1, int(round(frame_bgr.shape[0] * width / frame_bgr.shape[1])))
        picture = cv2.resize(frame_bgr, (width, h), interpolation=cv2.INTER_AREA)
    if peaks is not None:
        _draw_peaks(picture, peaks, hfov_deg, mirror)
    if status:
        (tw, th), _ = cv2.getTextSize(status, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(picture, (0, 0), (tw + 12, th + 12), (0, 0, 0), -1)
        cv2.putText(picture, status, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    strip = np.full((strip_height, width, 3), 24, np.uint8)
    centre = width // 2
    cv2.line(strip, (centre, 0), (centre, strip_height - 1), (90, 90, 90), 1)

    def x_of(db):
        return int(round(centre + np.clip(db, -range_db, range_db) / range_db * (width / 2 - 2)))

    values = list(ild_db)
    top = 26  # rows above: the current-value bar (rows 2-8) and its text
    rows = strip_height - top
    recent = values[-rows:][::-1]  # newest first, one pixel row per window
    for i in range(1, len(recent)):
        shade = int(255 - 180 * i / rows)
        cv2.line(strip, (x_of(recent[i - 1]), top + i - 1), (x_of(recent[i]), top + i), (0, shade, shade), 1)
    if values:
        now = values[-1]
        cv2.rectangle(strip, (min(centre, x_of(now)), 2), (max(centre, x_of(now)), 8), (0, 220, 255), -1)
        side = "R" if now > 0.5 else "L" if now < -0.5 else "centre"
        cv2.putText(strip, f"ILD {now:+.1f} dB ({side})", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(strip, f"L -{range_db:g} dB", (4, strip_height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(strip, f"+{range_db:g} dB R", (width - 70, strip_height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                (200, 200, 200), 1, cv2.LINE_AA)
    return np.concatenate([picture, strip], axis=0)


MAX_PEAK_MARKERS = 8


def _draw_peaks(picture: np.ndarray, peaks, hfov_deg: float, mirror: bool) -> None:
    """Mark each ``(azimuth, weight)`` of ``peaks`` on ``picture`` (BGR, changed in place)."""
    import cv2

    from streambin.camera import azimuth_to_column

    azimuths, weights = (np.asarray(p, np.float64).ravel() for p in peaks)
    if azimuths.shape != weights.shape:
        raise ValueError(f"peaks must be (azimuths (k,), weights (k,)), got {azimuths.shape} and {weights.shape}")
    h, w = picture.shape[:2]
    # the strongest drawn last, on top; at most MAX_PEAK_MARKERS (a featureless frame's plateau
    # hands over every cell of it, each with a tiny weight)
    ranked = sorted(zip(azimuths, weights), key=lambda p: p[1])[-MAX_PEAK_MARKERS:]
    for rank, (az, weight) in enumerate(ranked):
        if not (np.isfinite(az) and np.isfinite(weight)):
            continue
        lift = 16 * (len(ranked) - 1 - rank)    # labels stacked by rank, the strongest lowest
        u = float(azimuth_to_column(az, w, hfov_deg))
        u = w - u if mirror else u
        x = int(round(min(max(u, 0.0), w - 1.0)))
        strength = float(np.clip(weight, 0.0, 1.0))
        colour = (0, int(80 + 175 * strength), 255)           # orange to yellow with the weight
        cv2.line(picture, (x, 0), (x, h - 1), colour, 1 + int(round(4 * strength)), cv2.LINE_AA)
        label = f"{weight:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        tx = min(max(x + 4, 0), w - tw - 2)
        cv2.rectangle(picture, (tx - 2, h - th - 8 - lift), (tx + tw + 2, h - 2 - lift), (0, 0, 0), -1)
        cv2.putText(picture, label, (tx, h - 5 - lift), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)


def display_available() -> bool:
    """False on Linux/BSD without an X11 or Wayland display (DISPLAY / WAYLAND_DISPLAY unset)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class PreviewWindow:
    """An OpenCV window; ``open()`` returns False (with the reason in ``reason``) when none can be shown."""

    def __init__(self, title: str = "streambin demo"):
        self.title = title
        self.reason = ""
        self.is_open = False

    def open(self) -> bool:
        if not display_available():
            self.reason = "DISPLAY / WAYLAND_DISPLAY is not set"
            return False
        import cv2

        try:
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE)
        except cv2.error as exc:  # e.g. opencv-python-headless: no GUI backend compiled in
            self.reason = f"OpenCV cannot open a window ({str(exc).splitlines()[0][:120]})"
            return False
        self.is_open = True
        return True

    def show(self, image: np.ndarray) -> bool:
        """Show a BGR image; returns False when the user asked to quit (q, Esc, window closed)."""
        import cv2

        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return False
        except cv2.error:
            pass
        return True

    def close(self) -> None:
        if self.is_open:
            import cv2

            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass
            self.is_open = False
