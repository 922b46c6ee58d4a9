"""Whole clips through the streaming engine: ``streambin.spatialize(audio, sample_rate, frames)``.

The clip is streamed through a :class:`streambin.Spatializer` exactly as a live app would feed
it (10 ms chunks, each camera frame handed over once its timestamp is reached, the visual net
run synchronously), then flushed, and the engine's fixed latency is removed, so the result is
aligned with the input sample for sample. Settings are fixed by the arguments alone (the block
size does not follow the machine's speed as it does live), so the same input and settings give
the same output.

Any sample rate: rates the engine does not run at (e.g. 11025 or 192000 Hz) are resampled with
soxr to the nearest rate it does, and the result back to the input's rate.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from streambin.frames import _is_pil_image, _is_torch_tensor

# Offline there is no real-time deadline, so the block size is a setting, not a measurement:
# one 10 ms frame per audio-net run, the setting the streaming evaluation scores
# (streambin.train.evaluate_streaming) and the live engine's smallest block.
OFFLINE_BLOCK_FRAMES = 1
CHUNK_MS = 10.0


@dataclass
class OfflineResult:
    """``audio``: ``(2, n)`` float32 at ``sample_rate``, aligned with the input; ``stats``: the
    engine's :attr:`Spatializer.stats` after the clip; ``engine_rate``: the rate it ran at."""
    audio: np.ndarray
    sample_rate: int
    engine_rate: int
    stats: dict


def spatialize(audio, sample_rate, frames=None, fps=None, **spatializer_kwargs) -> np.ndarray:
    """Spatialize a whole mono clip with its pictures; returns ``(2, n)`` float32 (left, right).

    Args:
        audio: ``(n,)`` mono samples (``(n, 1)`` / ``(1, n)`` too), n >= 1: a numpy array or a
            torch tensor (CPU or GPU), float (or int16 / int32 PCM, scaled by full scale).
        sample_rate: rate of ``audio`` in Hz, any positive integer; the output has the same rate.
        frames: the pictures, RGB uint8 (every frame may be a numpy array, a PIL image or a torch
            tensor; see streambin.frames for the layouts), given as one of:

            * None: no picture (the model hears the scene with a neutral picture);
            * one frame ``(H, W, 3)``: a still picture for the whole clip;
            * a sequence of frames (a list, or an array / tensor ``(N, H, W, 3)``) with ``fps``:
              frame i shows from ``i / fps`` seconds;
            * an iterable of ``(time_s, frame)`` pairs in time order (may be lazy, e.g. a video
              decoder), without ``fps``.
        fps: frame rate of a frame sequence, frames per second.
        **spatializer_kwargs: settings of :class:`streambin.Spatializer` (model, backend, device,
            lookahead_frames, block_frames (default 1 here), mirror, color, full_band,
            camera_hfov_deg, ...);
            ``sample_rate`` and ``threaded_visual`` are chosen here.

    Returns:
        ``(2, n)`` float32 at ``sample_rate``: ``out[0]`` left, ``out[1]`` right; the same for
        the same input and settings.

    Example::

        import numpy as np, soundfile as sf, streambin
        mono, rate = sf.read("speech.wav", dtype="float32")          # (n,) at any rate
        frames = np.zeros((50, 360, 640, 3), np.uint8)               # 5 s of pictures at 10 fps
        frames[:, 100:200, 500:600] = 255                            # a bright source on the right
        out = streambin.spatialize(mono, rate, frames, fps=10)       # (2, n)
        sf.write("binaural.wav", out.T, rate)
    """
    return run_offline(audio, sample_rate, frames, fps, **spatializer_kwargs).audio


def run_offline(audio, sample_rate, frames=None, fps=None, on_progress: Optional[Callable[[int], None]] = None,
                **spatializer_kwargs) -> OfflineResult:
    """:func:`spatialize` that also returns the engine's stats. ``on_progress(n)`` is called with
    the number of input samples (at ``sample_rate``) done so far."""
    from streambin.spatializer import SUPPORTED_RATES, Spatializer

    rate = _check_rate(sample_rate)
    mono = _mono_float32(audio, rate)
    timed = _timed_frames(frames, fps)
    for name in ("sample_rate", "threaded_visual"):
        if name in spatializer_kwargs:
            raise TypeError(f"spatialize() chooses {name} itself; do not pass it")
    spatializer_kwargs.setdefault("block_frames", OFFLINE_BLOCK_FRAMES)

    engine_rate = _engine_rate(rate, SUPPORTED_RATES)
    x = mono
    if engine_rate != rate:
        import soxr

        x = soxr.resample(mono, rate, engine_rate, quality="HQ").astype(np.float32)
    scale = len(mono) / max(len(x), 1)  # progress in input samples
    report = None if on_progress is None else (lambda done: on_progress(min(len(mono), int(done * scale))))
    sp = Spatializer(sample_rate=engine_rate, threaded_visual=False, **spatializer_kwargs)
    try:
        y = stream(sp, x, timed, on_progress=report)
        stats = sp.stats
    finally:
        sp.close()
    if engine_rate != rate:
        import soxr

        y = soxr.resample(np.ascontiguousarray(y.T), engine_rate, rate, quality="HQ").T
        out = np.zeros((2, len(mono)), np.float32)
        m = min(len(mono), y.shape[1])
        out[:, :m] = y[:, :m]
        y = out
    return OfflineResult(np.ascontiguousarray(y, dtype=np.float32), rate, engine_rate, stats)


def stream(sp, mono: np.ndarray, timed_frames: Iterable[Tuple[float, object]] = (), chunk: int | None = None,
           on_progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Stream ``mono`` ``(n,)`` float32 at ``sp.sample_rate`` through the Spatializer ``sp`` (reset
    first) in chunks of ``chunk`` samples (default 10 ms); of the ``(time_s, frame)`` pairs, the
    newest one whose time has been reached goes with each chunk. Returns ``(2, n)`` float32,
    aligned with ``mono`` (latency removed)."""
    sp.reset()
    rate = sp.sample_rate
    chunk = max(1, int(round(rate * CHUNK_MS / 1e3))) if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 sample, got {chunk}")
    frames = iter(timed_frames)
    out = np.zeros((2, len(mono) + sp.latency_samples + sp.tail_samples), np.float32)
    next_frame = next(frames, None)
    for pos in range(0, len(mono), chunk):
        frame = None
        while next_frame is not None and next_frame[0] <= pos / rate:
            frame = next_frame[1]
            next_frame = next(frames, None)
        piece = mono[pos:pos + chunk]
        out[:, pos:pos + len(piece)] = sp.process(piece, frame)
        if on_progress is not None:
            on_progress(pos + len(piece))
    out[:, len(mono):] = sp.flush()
    return out[:, sp.latency_samples:sp.latency_samples + len(mono)]


# ---------------------------------------------------------------------------- input checks


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real) \
            or not float(sample_rate).is_integer() or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _engine_rate(rate: int, supported) -> int:
    """The rate to run the engine at: ``rate`` itself if supported, else the next supported
    rate above it (the highest for rates beyond them all)."""
    if rate in supported:
        return rate
    above = [r for r in supported if r > rate]
    return min(above) if above else max(supported)


# PCM full scale, as the Spatializer reads int16 / int32 chunks.
_PCM_FULL_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


def _mono_float32(audio, rate: int) -> np.ndarray:
    """``audio`` -> ``(n,)`` float32 (NaN/inf are left to the Spatializer, which replaces them)."""
    if _is_torch_tensor(audio):
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray):
        raise TypeError(f"audio must be a numpy array or torch tensor (n,) float32 at {rate} Hz, "
                        f"got {type(audio).__name__}")
    if audio.ndim > 2 or (audio.ndim == 2 and 1 not in audio.shape):
        raise ValueError(f"audio must be mono, shape (n,), got {audio.shape}; mix it down first, "
                         "e.g. audio.mean(axis=0) for (channels, n)")
    if audio.size < 1:
        raise ValueError("audio is empty: need at least one sample")
    if audio.dtype in _PCM_FULL_SCALE:
        return (audio.reshape(-1).astype(np.float64) / _PCM_FULL_SCALE[audio.dtype]).astype(np.float32)
    if audio.dtype.kind != "f":
        raise TypeError(f"audio must be float (n,) (or int16 / int32 PCM), got dtype {audio.dtype}")
    return np.ascontiguousarray(audio.reshape(-1), dtype=np.float32)


def _is_single_frame(frames) -> bool:
    if _is_pil_image(frames):
        return True
    shape = getattr(frames, "shape", None)
    return shape is not None and len(shape) in (2, 3)


def _timed_frames(frames, fps) -> Iterator[Tuple[float, object]]:
    """Every accepted ``frames`` form -> an iterator of ``(time_s, frame)`` pairs."""
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not np.isfinite(fps)
                            or fps <= 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    if frames is None:
        return iter(())
    if _is_single_frame(frames):
        return iter([(0.0, frames)])
    shape = getattr(frames, "shape", None)
    if shape is not None:  # (N, H, W, 3) array or tensor
        if len(shape) != 4:
            raise ValueError(f"frames as an array must be (N, H, W, 3) with fps (or one (H, W, 3) frame), "
                             f"got shape {tuple(shape)}")
        if fps is None:
            raise ValueError("frames given as an (N, H, W, 3) array need fps (frames per second)")
        return ((i / fps, frames[i]) for i in range(shape[0]))
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Iterable):
        raise TypeError(f"frames must be None, a frame, a sequence of frames with fps, or (time_s, frame) "
                        f"pairs, got {type(frames).__name__}")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return iter(())
    rest = itertools.chain([first], it)
    if isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], numbers.Real):
        if fps is not None:
            raise ValueError("fps is for frames without timestamps; (time_s, frame) pairs carry their own times")
        return _in_time_order(rest)
    if fps is None:
        raise ValueError("a sequence of frames needs fps (frames per second), or give (time_s, frame) pairs")
    return ((i / fps, f) for i, f in enumerate(rest))


def _in_time_order(pairs) -> Iterator[Tuple[float, object]]:
    last = -np.inf
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], numbers.Real)):
            raise ValueError(f"frames: expected (time_s, frame) pairs throughout, got {type(item).__name__}")
        t = float(item[0])
        if not t >= last:
            raise ValueError(f"frames: timestamps must not decrease, got {t} after {last}")
        last = t
        yield t, item[1]
