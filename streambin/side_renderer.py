"""The side rendered from the picture, blended with the model's side mask.

A model of mask kind ``"side"`` predicts the side ``(L - R) / 2`` as a mask ``S`` on the mono
``M``. A bundle may add a second estimate of it: the mono through an average head's mid-to-side
filter ``H(a, f)`` at the azimuths ``a`` where a dense object localiser
(streambin.nets.localiser) sees objects in the camera frame. The engine then plays the side mask

    S'(f, t) = w_model(f) S(f, t) + w_rendered(f) H_frame(f)

per bin ``f`` of the model's STFT, where ``H_frame`` is the filters at the frame's ``peaks``
strongest localiser peaks averaged with weights ``score ** power`` (where the localiser is unsure
which object sounds, the rendered side is drawn in rather than put on the wrong one); ``score`` is
each peak's heat, or, with ``"weigh_peaks_by": "sounding"`` and a localiser that has a sounding
map, that map's probability at the peak (how likely the object there is the one that sounds). The
weights ``w_model`` and ``w_rendered`` were fitted by least squares on train-pool clips with the
model's own streamed output (``python -m export.add_side_renderer`` records where from).

A weight is one per bin, or one per bin and part of the mask: ``(w_in_phase(f), w_quadrature(f))``
scale the mask's real and imaginary parts apart. The real part, in phase with the mono, makes one
ear louder than the other (``|L|^2 - |R|^2 = 4 |M|^2 Re S``); the imaginary part delays one ear
against the other. Where the delay's phase is unsure (low bins, rooms, an unknown head) least
squares shrinks it, and weighed apart it need not shrink the level difference with it.

A table may also hold a room detector (streambin.room_detector) and a second pair of weights:
then the weights follow the probability ``p`` that the scene is in a room, read off the mono's
last two seconds ten times a second, ``w(f) = (1 - p) w_free(f) + p w_room(f)`` (in free field the
rendered side should lead; in a room, whose reverberation the average head's filter does not
have, less so). Each runner keeps its own :class:`streambin.room_detector.RoomTracker`.

Symmetry, as the engine's mirror averaging has it: the localiser's heat map is averaged with
the mirror image's (mirrored back) and each peak's column with its mirror estimate, and the
filter table is antisymmetric (``H(-a) = -H(a)``, stored for ``a >= 0``). So a mirrored frame
gives exactly the negated filter, and a frame that is its own mirror image (uniform grey) gives
peaks in mirror pairs of equal score (weight), all of them kept when the ``peaks``-th ties with
others (a featureless frame's plateau), whose filters cancel: no side.

Bundle files (``config.json`` key ``"side_renderer"``, see streambin.bundle)::

    localiser.onnx       frames (B, H_r, W_r, 3) uint8 RGB -> maps (B, 6 or 7, H_r / 4, W_r / 4) float32
                         (heat logits, box logits, offset x, offset y, box w, box h[, sounding logits])
    side_renderer.npz    azimuths_deg (A,) float32, 0 .. 90 ascending; filters (A, F) complex64
                         (H at those azimuths; F = the model's n_fft // 2 + 1 bins);
                         blend_model (F,) or (2, F) float32; blend_rendered the same shape (in free
                         field, when the arrays below are there; (2, F): the in-phase and the
                         quadrature part's weights);
                         optional, all or none: blend_model_room, blend_rendered_room, shaped as
                         blend_model, float32 (the weights in a room); room_weights (N + 1,), room_feature_mean
                         (N,), room_feature_std (N,) float64 (streambin.room_detector's N features)

The localiser runs on ONNX Runtime's CPU provider whatever the engine's backend: about 1-2 ms
per camera frame and its mirror image (benchmarks/localiser_cost.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from streambin.camera import check_hfov_deg, column_to_azimuth
from streambin.room_detector import RoomDetector, RoomTracker

N_MAPS = 6
SOUNDING_MAP = N_MAPS   # the optional seventh map (streambin.nets.localiser)
WEIGH_PEAKS_BY = ("heat", "sounding")
CELL_PX = 4             # heat-map cell in localiser input pixels
TABLE_KEYS = ("azimuths_deg", "filters", "blend_model", "blend_rendered")
#: a blend that follows the room detector: the weights in a room, and the detector
ROOM_TABLE_KEYS = ("blend_model_room", "blend_rendered_room", "room_weights", "room_feature_mean", "room_feature_std")


class SideRendererError(ValueError):
    """A bundle's side renderer files are missing, corrupt or inconsistent."""


def mirror_averaged_peaks(own: np.ndarray, mirrored: np.ndarray, k: int, sounding: bool = False):
    """The ``k`` strongest peaks of a frame's localiser maps averaged with its mirror image's.

    ``own``, ``mirrored``: ``(6 or 7, gh, gw)`` float32 maps of the frame and of the frame flipped
    left-right. The heat map is ``(sigmoid(own heat) + flip(sigmoid(mirrored heat))) / 2``; a
    peak is a cell equal to the maximum of its 3x3 neighbourhood; its column is the mean of the
    two estimates (cell plus sub-cell offset, each clipped to [0, 1]). Returns ``(columns (n,)
    as fractions of the width, scores (n,))``, strongest first; with ``sounding`` (7 maps) also
    ``(n,)``, the sounding map mirror-averaged the same way, at those peaks.

    ``n`` is ``k`` plus any further peaks whose score equals the ``k``-th's: a frame that is its
    own mirror image has a mirror-symmetric heat map, whose peaks come in pairs of exactly equal
    score, and a featureless one a plateau of equal cells; cutting such a tie at ``k`` would keep
    one side's cells and put a side on a frame that has none.
    """
    gh, gw = own.shape[1:]
    heat = 0.5 * (_sigmoid(own[0]) + _sigmoid(mirrored[0])[:, ::-1])
    padded = np.pad(heat, 1, constant_values=-np.inf)
    neighbourhood = np.lib.stride_tricks.sliding_window_view(padded, (3, 3)).max(axis=(2, 3))
    score = np.where(heat == neighbourhood, heat, 0.0).ravel()
    order = np.argsort(-score, kind="stable")
    n = min(k, order.size)
    if n < order.size and score[order[n - 1]] > 0:   # the k-th peak's ties too (never cells that are no peak)
        n = int(np.searchsorted(-score[order], -score[order[n - 1]], side="right"))
    where = order[:n]
    iy, ix = where // gw, where % gw
    col_own = ix + np.clip(own[2, iy, ix], 0.0, 1.0)
    ix_m = gw - 1 - ix
    col_mirrored = gw - (ix_m + np.clip(mirrored[2, iy, ix_m], 0.0, 1.0))
    cols, scores = (0.5 * (col_own + col_mirrored) / gw).astype(np.float64), score[where].astype(np.float64)
    if not sounding:
        return cols, scores
    at_peaks = 0.5 * (_sigmoid(own[SOUNDING_MAP, iy, ix]) + _sigmoid(mirrored[SOUNDING_MAP, iy, ix_m]))
    return cols, scores, at_peaks


def interpolate_rows(grid: np.ndarray, table: np.ndarray, azimuths) -> np.ndarray:
    """``(k, F)`` rows of ``table (A, F)`` at ``azimuths (k,)`` degrees, linear between the rows of
    the equally spaced ``grid (A,)`` (clamped to its ends)."""
    a = np.clip(np.asarray(azimuths, np.float64), grid[0], grid[-1])
    pos = (a - grid[0]) / (grid[1] - grid[0])
    lo = np.minimum(np.floor(pos).astype(int), grid.size - 2)
    w = (pos - lo)[:, None]
    return (1 - w) * table[lo] + w * table[lo + 1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


class SideRenderer:
    """A bundle's side renderer: the localiser session, the filter table and the blend weights.

    ``graph``, ``table``: the bundle's localiser.onnx and side_renderer.npz; ``section``: the
    config's ``"side_renderer"`` object (validated by streambin.bundle); ``n_bins``,
    ``sample_rate``, ``hop``: the model's STFT grid, which the table must match (the room
    detector reads frames on it); ``num_threads``: the localiser session's threads.
    """

    def __init__(self, graph: Path, table: Path, section: Dict, n_bins: int, sample_rate: int, hop: int,
                 num_threads: int = 1):
        self.input_size = (int(section["input"]["height"]), int(section["input"]["width"]))
        self.peaks, self.power = int(section["peaks"]), float(section["power"])
        #: the field of view the bundle's weights were fitted at (its section's ``hfov_deg``)
        self.section_hfov_deg = float(section["hfov_deg"])
        self.hfov_deg = self.section_hfov_deg
        #: what each peak's weight is raised from: its heat, or the sounding map at it
        self.weigh_peaks_by = str(section.get("weigh_peaks_by", "heat"))
        if self.weigh_peaks_by not in WEIGH_PEAKS_BY:
            raise SideRendererError(f"weigh_peaks_by must be one of {WEIGH_PEAKS_BY}, got {self.weigh_peaks_by!r}")
        self._by_sounding = self.weigh_peaks_by == "sounding"
        t = load_table(Path(table), n_bins, sample_rate, hop)
        self.grid = t.grid
        # Rows for -90 .. 90 degrees from the antisymmetric half the file stores.
        self._grid_full = np.concatenate([-self.grid[:0:-1], self.grid])
        self._filters_full = np.concatenate([-t.filters[:0:-1], t.filters]).astype(np.complex128)
        #: the room detector the weights follow, or None (one pair of weights everywhere)
        self.room_detector: Optional[RoomDetector] = t.room_detector
        self.set_blend(t.w_model, t.w_rendered, t.w_model_room, t.w_rendered_room)
        self._session = _localiser_session(Path(graph), self.input_size, num_threads, sounding=self._by_sounding)
        self.nonfinite_frames = 0   # frames whose localiser output was not finite (rendered as no side)
        #: ``(azimuths (n,) degrees, weights (n,))`` of the latest frame rendered (see :meth:`azimuths`), or None
        self.last_peaks = None

    @property
    def hfov_deg(self) -> float:
        """The horizontal field of view, in degrees, the peaks' columns become azimuths at: the
        section's unless set (a camera's own, streambin.camera.check_hfov_deg); a new value takes
        effect from the next frame rendered."""
        return self._hfov_deg

    @hfov_deg.setter
    def hfov_deg(self, value: float) -> None:
        self._hfov_deg = check_hfov_deg(value, "hfov_deg")

    @classmethod
    def of_bundle(cls, bundle, num_threads: int = 1) -> "SideRenderer":
        """The side renderer of a loaded :class:`streambin.bundle.Bundle` that has one."""
        sec = bundle.side_renderer
        if sec is None:
            raise SideRendererError(f"{bundle.path}: the bundle has no side renderer")
        return cls(sec["graph"], sec["table"], sec, bundle.n_bins, bundle.sample_rate, bundle.hop, num_threads)

    def set_blend(self, w_model: np.ndarray, w_rendered: np.ndarray, w_model_room: Optional[np.ndarray] = None,
                  w_rendered_room: Optional[np.ndarray] = None) -> None:
        """Replace the blend weights, each ``(F,)`` (one per bin) or ``(2, F)`` (per bin for the mask's
        in-phase and quadrature parts) finite floats: ``w_model``, ``w_rendered`` in free field and
        ``w_model_room``, ``w_rendered_room`` in a room (None: the same; only with a room detector
        may they differ). Takes effect from the next block blended.

        Held as ``(2, F, 1)`` float32 whatever the form (read them there): a weight per bin is the
        same for both parts."""
        F = self._filters_full.shape[1]
        w = [np.asarray(x, np.float64) for x in (w_model, w_rendered)]
        w += [w[0] if w_model_room is None else np.asarray(w_model_room, np.float64),
              w[1] if w_rendered_room is None else np.asarray(w_rendered_room, np.float64)]
        if any(x.shape not in ((F,), (2, F)) or not np.isfinite(x).all() for x in w):
            raise ValueError(f"blend weights must be ({F},) or (2, {F}) arrays of finite floats, got "
                             f"{[x.shape for x in w]}")
        w = [np.broadcast_to(x, (2, F)) for x in w]
        if self.room_detector is None and not (np.array_equal(w[0], w[2]) and np.array_equal(w[1], w[3])):
            raise ValueError("room weights differ from the free-field ones but this table has no room detector")
        # (2, F, 1) float32: the mask's real and imaginary parts, broadcast over a block's frames
        self.w_model, self.w_rendered, self.w_model_room, self.w_rendered_room = (
            np.ascontiguousarray(x[:, :, None], np.float32) for x in w)
        # blend()'s scratch: no allocation per block; the weights at ``_p_now`` are kept until the
        # room tracker's estimate changes (ten times a second, against a block every 30 ms)
        self._w_model_now = self.w_model.copy()
        self._w_rendered_now = self.w_rendered.copy()
        self._p_now: Optional[np.float32] = None
        self._rendered_now = np.zeros((2, F, 1), np.float32)

    def room_tracker(self) -> Optional[RoomTracker]:
        """A new stream's room tracker (None without a room detector): push it every block's new
        frames and pass what it returns to :meth:`blend`."""
        return None if self.room_detector is None else self.room_detector.tracker()

    def azimuths(self, frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(azimuths (n,) degrees, weights (n,) summing to 1)`` of a ``(H_r, W_r, 3)`` uint8 RGB
        frame at :attr:`input_size`: its ``peaks`` strongest peaks (``n`` more where the last ties
        with others, see :func:`mirror_averaged_peaks`)."""
        if frame.shape != self.input_size + (3,) or frame.dtype != np.uint8:
            raise ValueError(f"the side renderer takes ({self.input_size[0]}, {self.input_size[1]}, 3) uint8 RGB "
                             f"frames, got {frame.shape} {frame.dtype}")
        maps = self._session.run(None, {"frames": np.stack([frame, frame[:, ::-1]])})[0]
        found = mirror_averaged_peaks(maps[0], maps[1], self.peaks, sounding=self._by_sounding)
        cols, scores = found[0], found[-1]
        width = self.input_size[1]
        azimuths = column_to_azimuth(cols * width, width, self.hfov_deg)
        weights = np.maximum(scores, 1e-12) ** self.power
        return azimuths, weights / weights.sum()

    def filter_at(self, azimuths: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``(F,)`` complex128: the filters at ``azimuths (k,)`` degrees (linear between table
        rows, clamped to +-90) averaged with ``weights (k,)``."""
        return np.asarray(weights, np.float64) @ interpolate_rows(self._grid_full, self._filters_full, azimuths)

    def rendered_mask(self, frame: np.ndarray) -> np.ndarray:
        """``(2, F, 1)`` float32 (real, imaginary): ``H_frame``, the side mask the frame renders
        (before the blend weighs it) for every STFT frame until the next camera frame (zero,
        counted in :attr:`nonfinite_frames`, if the localiser's output was not finite)."""
        azimuths, weights = self.azimuths(frame)
        self.last_peaks = (azimuths, weights)   # one tuple, replaced whole: read from other threads
        if np.isfinite(azimuths).all() and np.isfinite(weights).all():
            h = self.filter_at(azimuths, weights)
        else:  # a localiser gone wrong renders no side rather than NaNs
            self.nonfinite_frames += 1
            h = np.zeros(self._filters_full.shape[1], complex)
        return np.stack([h.real, h.imag]).astype(np.float32)[:, :, None]

    def blend(self, masks: np.ndarray, rendered: np.ndarray, room_probability: Optional[float] = None,
              out: Optional[np.ndarray] = None) -> np.ndarray:
        """The played side mask ``w_model * masks + w_rendered * rendered``.

        ``masks``: ``(1, 2, F, b)`` float32 side mask (real, imaginary) of the block's frames;
        ``rendered``: ``(2, F, 1)`` from :meth:`rendered_mask`; ``room_probability``: in [0, 1]
        from this stream's :meth:`room_tracker` (None: free field's weights); ``out``: optional
        destination of ``masks``' shape. Returns ``(1, 2, F, b)`` float32. Not for two streams at
        once (the weights of the moment are kept in scratch arrays).
        """
        if out is None:
            out = np.empty_like(masks)
        w_model, w_rendered = self.w_model, self.w_rendered
        if room_probability is not None and self.room_detector is not None:
            p = np.float32(min(max(float(room_probability), 0.0), 1.0))
            w_model, w_rendered = self._w_model_now, self._w_rendered_now
            if p != self._p_now:
                for now, free, room in ((w_model, self.w_model, self.w_model_room),
                                        (w_rendered, self.w_rendered, self.w_rendered_room)):
                    np.subtract(room, free, out=now)        # free + p (room - free)
                    np.multiply(now, p, out=now)
                    np.add(now, free, out=now)
                self._p_now = p
        np.multiply(masks, w_model, out=out)
        np.multiply(rendered, w_rendered, out=self._rendered_now)
        np.add(out, self._rendered_now, out=out)
        return out


class Table(NamedTuple):
    """A side renderer table's contents, checked (:func:`load_table`)."""

    grid: np.ndarray                 # (A,) float64 degrees, 0 .. 90
    filters: np.ndarray              # (A, F) complex
    w_model: np.ndarray              # (F,) or (2, F) free field's weights (everywhere without a detector)
    w_rendered: np.ndarray
    w_model_room: Optional[np.ndarray]      # as w_model, in a room, or None
    w_rendered_room: Optional[np.ndarray]
    room_detector: Optional[RoomDetector]


def load_table(path: Path, n_bins: int, sample_rate: int, hop: int) -> Table:
    """Read and check a side renderer table for a model of ``n_bins`` STFT bins at ``sample_rate``
    with ``hop`` (the room detector's grid); raises :class:`SideRendererError` naming what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in TABLE_KEYS if k not in z.files]
            if missing:
                raise SideRendererError(f"{path}: missing arrays {missing} (expected {list(TABLE_KEYS)})")
            room_present = [k for k in ROOM_TABLE_KEYS if k in z.files]
            if room_present and len(room_present) != len(ROOM_TABLE_KEYS):
                raise SideRendererError(f"{path}: a room-dependent blend needs all of {list(ROOM_TABLE_KEYS)}, got "
                                        f"only {room_present}")
            grid = np.asarray(z["azimuths_deg"], np.float64)
            filters = np.asarray(z["filters"])
            w_model, w_rendered = np.asarray(z["blend_model"]), np.asarray(z["blend_rendered"])
            room = {k: np.asarray(z[k]) for k in room_present}
    except SideRendererError:
        raise
    except Exception as e:  # a truncated or foreign file: say which, not numpy's internals
        raise SideRendererError(f"{path}: not a readable side renderer table ({type(e).__name__}: {e})") from None
    steps = np.diff(grid)
    if (grid.ndim != 1 or grid.size < 2 or grid[0] != 0.0 or not np.isclose(grid[-1], 90.0)
            or not np.allclose(steps, steps[0]) or not steps[0] > 0):
        raise SideRendererError(f"{path}: azimuths_deg must run from 0 to 90 degrees in equal steps, "
                                f"got {grid.size} values from {grid.min() if grid.size else None}")
    if filters.shape != (grid.size, n_bins) or filters.dtype.kind != "c":
        raise SideRendererError(f"{path}: filters must be ({grid.size}, {n_bins}) complex (azimuths by the model's "
                                f"bins), got {filters.shape} {filters.dtype}")
    weights = {"blend_model": w_model, "blend_rendered": w_rendered}
    weights.update({k: room[k] for k in ("blend_model_room", "blend_rendered_room") if k in room})
    for name, w in weights.items():
        if w.shape not in ((n_bins,), (2, n_bins)) or w.dtype.kind != "f" or w.shape != w_model.shape:
            raise SideRendererError(f"{path}: {name} must be ({n_bins},) or (2, {n_bins}) float (one weight per bin, "
                                    f"or per part of the mask and bin), all of them one shape; got {w.shape} "
                                    f"{w.dtype} where blend_model is {w_model.shape}")
    if not all(np.isfinite(x).all() for x in (filters, *weights.values())):
        raise SideRendererError(f"{path}: the table holds NaN or infinite values")
    if np.abs(filters[0]).max() > 1e-6:
        raise SideRendererError(f"{path}: the filter at 0 degrees must be zero (the table is antisymmetric)")
    detector = None
    if room:
        try:
            detector = RoomDetector(room["room_weights"], room["room_feature_mean"], room["room_feature_std"],
                                    n_bins, sample_rate, hop)
        except ValueError as e:
            raise SideRendererError(f"{path}: {e}") from None
    return Table(grid, filters, w_model, w_rendered, room.get("blend_model_room"), room.get("blend_rendered_room"),
                 detector)


def _localiser_session(path: Path, size_hw: Tuple[int, int], num_threads: int, sounding: bool = False):
    """An ONNX Runtime session of the localiser graph, checked on a probe: ``(2, 6 or 7, ...)``
    float32 maps (7, with the sounding map, when ``sounding``)."""
    import onnxruntime as ort

    from streambin.backends.onnxruntime_backend import session_options

    try:
        session = ort.InferenceSession(str(path), session_options(num_threads), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise SideRendererError(f"{path}: ONNX Runtime cannot load the localiser graph ({type(e).__name__}: "
                                f"{e})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != ["frames"] or inputs[0].type != "tensor(uint8)" or len(outputs) != 1:
        raise SideRendererError(f"{path}: the localiser graph must take one uint8 input 'frames' (B, H, W, 3) and "
                                f"return one output, got inputs {[(i.name, i.type) for i in inputs]}")
    probe = np.full((2, size_hw[0], size_hw[1], 3), 128, np.uint8)
    maps = session.run(None, {"frames": probe})[0]
    n_maps = (SOUNDING_MAP + 1,) if sounding else (N_MAPS, SOUNDING_MAP + 1)
    grid = (size_hw[0] // CELL_PX, size_hw[1] // CELL_PX)
    if maps.ndim != 4 or maps.shape[0] != 2 or maps.shape[1] not in n_maps or maps.shape[2:] != grid \
            or maps.dtype != np.float32:
        raise SideRendererError(f"{path}: the localiser graph must return (2, {' or '.join(map(str, n_maps))}, "
                                f"{grid[0]}, {grid[1]}) float32 maps for {size_hw} frames"
                                f"{' (weighing peaks by the sounding map needs its seventh map)' if sounding else ''}, "
                                f"got {maps.shape} {maps.dtype}")
    return session
