"""The visual feature the audio network is conditioned on, kept up to date per camera frame.

The visual network runs once per camera frame it is given (the Spatializer gives it at most
``visual_fps`` frames per audio second), never per audio block; its output is cached. Before
the first frame arrives, the *neutral feature* is used: the network's output for a uniform
mid-grey frame (every pixel 128), i.e. "a picture with nothing in it".

With ``mirror_average`` the network sees each frame and its left-right mirror image as one
batch of two, and the feature is both outputs stacked, ``(2, *feature_shape)``: the block
runners then run the audio net on both and average (streambin.signal_contract).

With a side renderer (streambin.side_renderer), each frame also gives the rendered part of the
side mask, computed beside the feature from the same frame at the renderer's own input size; a
feature and its rendered mask are swapped in together (:meth:`VisualFeature.snapshot`). The
neutral rendered mask is the grey frame's (zero: the renderer is mirror-symmetric).

Two modes:

* synchronous (default): :meth:`VisualFeature.submit` runs the network at once; the next
  audio block uses the new feature. Deterministic.
* threaded: a worker thread runs the network; :meth:`submit` only hands the frame over and
  returns. If a frame is still waiting when a newer one arrives, the older one is dropped
  (counted in ``dropped``): only the newest picture matters. The audio path always reads the
  latest finished feature without waiting.
"""

from __future__ import annotations

import threading
import time

import numpy as np


class VisualFeature:
    def __init__(self, backend, size_hw, threaded: bool = False, mirror_average: bool = False,
                 side_renderer=None):
        self._backend = backend
        self.mirror_average = bool(mirror_average)
        self.side_renderer = side_renderer
        grey = np.full((int(size_hw[0]), int(size_hw[1]), 3), 128, np.uint8)
        self.neutral = self._features(grey)
        self.neutral_rendered = None
        if side_renderer is not None:
            self.neutral_rendered = side_renderer.rendered_mask(np.full(side_renderer.input_size + (3,), 128, np.uint8))
            side_renderer.last_peaks = None   # no camera frame seen yet
        # (feature, rendered mask or None), replaced as one so that readers see a matching pair
        self._state = (self.neutral.copy(), self.neutral_rendered)
        self._lock = threading.Lock()
        self.runs = 0
        self.dropped = 0
        self.last_ms = 0.0
        self.total_ms = 0.0
        self._threaded = threaded
        self._pending = None
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name="streambin-visual", daemon=True)
            self._thread.start()

    @property
    def threaded(self) -> bool:
        """Whether the network runs on a worker thread."""
        return self._threaded

    @property
    def current(self) -> np.ndarray:
        """The latest finished feature, ``feature_shape`` float32 (``(2, *feature_shape)`` with
        mirror averaging; do not modify)."""
        return self._state[0]

    @property
    def batch(self) -> np.ndarray:
        """The latest feature as the audio net's feature input: ``(1, *feature_shape)``, or
        ``(2, *feature_shape)`` (own, mirrored) with mirror averaging (do not modify)."""
        return self.snapshot()[0]

    def snapshot(self):
        """``(batch, rendered)``: :attr:`batch` and the rendered side mask of the same frame
        (``(2, F, 1)`` float32, streambin.side_renderer; None without a side renderer)."""
        feature, rendered = self._state  # read once: the worker thread may replace it
        return (feature if self.mirror_average else feature[None]), rendered

    def reset(self) -> None:
        """Back to the neutral feature; the counters (runs, dropped, times) start from zero."""
        with self._lock:
            self._pending = None
            self._state = (self.neutral.copy(), self.neutral_rendered)
            if self.side_renderer is not None:
                self.side_renderer.last_peaks = None
            self.runs, self.dropped, self.last_ms, self.total_ms = 0, 0, 0.0, 0.0

    def _features(self, frame: np.ndarray) -> np.ndarray:
        """``(H_v, W_v, 3)`` uint8 -> the feature (``(2, *feature_shape)`` with mirror averaging:
        the frame's, then its mirror image's)."""
        if self.mirror_average:
            return np.ascontiguousarray(self._backend.visual(np.stack([frame, frame[:, ::-1]])))
        return np.ascontiguousarray(self._backend.visual(frame[None])[0])

    def _run(self, frames) -> tuple:
        frame, renderer_frame = frames
        t0 = time.perf_counter()
        feature = self._features(frame)
        rendered = None if self.side_renderer is None else self.side_renderer.rendered_mask(renderer_frame)
        ms = (time.perf_counter() - t0) * 1e3
        self.runs += 1
        self.last_ms = ms
        self.total_ms += ms
        return feature, rendered

    def submit(self, frame: np.ndarray, renderer_frame: np.ndarray = None) -> None:
        """Hand over a prepared ``(H_v, W_v, 3)`` uint8 RGB frame, and with a side renderer the
        same frame at its input size (``(H_r, W_r, 3)`` uint8 RGB)."""
        if (renderer_frame is None) != (self.side_renderer is None):
            raise ValueError("renderer_frame must be given exactly when there is a side renderer")
        frames = (frame, renderer_frame)
        if not self._threaded:
            self._state = self._run(frames)
            return
        with self._lock:
            if self._pending is not None:
                self.dropped += 1
            self._pending = frames
            self._wake.notify()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Threaded mode: block until every submitted frame has been processed (for tests)."""
        deadline = time.monotonic() + timeout
        while self._threaded and time.monotonic() < deadline:
            with self._lock:
                if self._pending is None and not getattr(self, "_busy", False):
                    return
            time.sleep(0.001)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                frame, self._pending = self._pending, None
                self._busy = True
            state = self._run(frame)
            with self._lock:
                self._state = state
                self._busy = False

    def close(self) -> None:
        """Stop the worker thread (threaded mode); safe to call more than once."""
        if self._thread is not None:
            with self._lock:
                self._stop = True
                self._wake.notify()
            if self._thread is not threading.current_thread():  # a finaliser may run on the worker
                self._thread.join(timeout=5)
            self._thread = None
