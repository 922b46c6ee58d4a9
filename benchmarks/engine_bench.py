"""Streaming-engine measurements: one Spatializer configuration, timed per ``process()`` call.

Each measurement is meant to run in a fresh process, so that the peak resident memory it
reports belongs to that configuration alone; ``benchmarks/latency.py`` starts one per row::

    python benchmarks/engine_bench.py --spec '{"kind": "stream", "model_path": "...", ...}'

The last stdout line is ``BENCH_ROW <json row>``.

Input (the same for every row, seeded): a speech-like mono signal at the device rate
(:func:`speech_like`) and camera frames at 30 fps (:class:`MovingPatchCamera`, 480x640 RGB with a
bright patch moving across a textured background). Frames are handed over with the first chunk
whose start time has reached the frame's timestamp, as ``streambin.cli`` does.

Measured per row (``kind="stream"``): wall time of every ``process()`` call (p50/p95/p99/max),
real-time factor, the engine's fixed latency, the stage split of ``Spatializer.stats`` and the
process's peak RSS. Chunks are fed back to back (not paced to real time), after a warm-up
second that is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SAMPLE_RATE = 48000
CHUNK_SIZES = (128, 256, 512, 1024)
CAMERA_FPS = 30.0
CAMERA_HW = (480, 640)
STAGES = ("resample_in", "stft", "audio_net", "mask_istft", "resample_out", "visual")
ROW_MARKER = "BENCH_ROW "
#: Keys every measured row carries (skipped rows carry them too, as null).
ROW_KEYS = ("backend", "device", "model", "chunk_samples", "sample_rate", "p50_ms", "p95_ms",
            "p99_ms", "max_ms", "rtf", "algorithmic_latency_ms", "end_to_end_latency_ms",
            "peak_mem_mb")


# ----------------------------------------------------------------------------- input


def speech_like(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A speech-like test signal, ``(n,)`` float32 at ``sample_rate``, ``n = round(seconds * rate)``.

    Syllables of 120-300 ms at about 4 per second: voiced ones are harmonic series of an f0
    gliding within 100-220 Hz with a 1/k spectral tilt, unvoiced ones are high-passed noise
    bursts; short pauses between words; -55 dBFS background noise. RMS about 0.05 (-26 dBFS).
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an int >= 8000 Hz, got {sample_rate!r}")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = rng.standard_normal(n) * 10 ** (-55 / 20)
    pos = 0
    while pos < n:
        dur = int(rng.uniform(0.12, 0.30) * sample_rate)
        seg_n = min(dur, n - pos)
        t = np.arange(seg_n) / sample_rate
        env = np.sin(np.pi * np.arange(seg_n) / max(dur, 1)) ** 2
        if rng.random() < 0.75:  # voiced: gliding f0, harmonics up to 4 kHz
            f0 = rng.uniform(100, 220) * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-9))
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            seg = sum(np.sin(k * phase) / k for k in range(1, int(4000 // f0.max()) + 1))
        else:  # unvoiced: first difference of noise (tilted to high frequencies)
            seg = np.diff(rng.standard_normal(seg_n + 1)) * 0.5
        out[pos:pos + seg_n] += 0.08 * env * seg
        pos += dur
        if rng.random() < 0.25:  # pause between words
            pos += int(rng.uniform(0.05, 0.25) * sample_rate)
    return np.clip(out, -1, 1).astype(np.float32)


class MovingPatchCamera:
    """Synthetic camera: ``frame(i)`` is ``(H, W, 3)`` uint8 RGB, a fixed random texture with a
    bright square that sweeps left to right and back every 4 s (frame ``i`` is at time ``i / fps``).
    """

    def __init__(self, height: int = CAMERA_HW[0], width: int = CAMERA_HW[1], fps: float = CAMERA_FPS,
                 seed: int = 0):
        if height < 16 or width < 16:
            raise ValueError(f"frame size must be at least 16x16 pixels, got {height}x{width}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.height, self.width, self.fps = int(height), int(width), float(fps)
        rng = np.random.default_rng(seed)
        coarse = rng.integers(30, 140, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        self._background = np.ascontiguousarray(coarse.repeat(8, 0).repeat(8, 1)[:height, :width])
        self._size = max(4, height // 5)

    def frame(self, index: int) -> np.ndarray:
        t = index / self.fps
        sweep = 1 - abs((t / 2.0) % 2 - 1)  # 0 -> 1 -> 0 every 4 s
        x0 = int(sweep * (self.width - self._size))
        y0 = (self.height - self._size) // 2
        img = self._background.copy()
        img[y0:y0 + self._size, x0:x0 + self._size] = (250, 240, 200)
        return img


# ----------------------------------------------------------------------------- helpers


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this process image only
    (``ru_maxrss`` would also count the parent's memory at fork time, which exec keeps).
    Elsewhere: ``ru_maxrss`` (KiB on Linux/BSD, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def distribution(ms: np.ndarray) -> dict:
    """p50/p95/p99/max/mean of per-chunk times (ms), plus the box-plot statistics plot.py draws
    (quartiles, whiskers at p1/p99, max as the only flier)."""
    ms = np.asarray(ms, np.float64)
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError(f"ms must be a non-empty 1-D array of times, got shape {ms.shape}")
    q = {p: float(np.percentile(ms, p)) for p in (1, 25, 50, 75, 95, 99)}
    return {"p50_ms": q[50], "p95_ms": q[95], "p99_ms": q[99], "max_ms": float(ms.max()),
            "mean_ms": float(ms.mean()),
            "box": {"whislo": q[1], "q1": q[25], "med": q[50], "q3": q[75], "whishi": q[99],
                    "fliers": [float(ms.max())]}}


def empty_row(**fields) -> dict:
    """A row with every :data:`ROW_KEYS` entry (None unless given) plus ``fields``."""
    row = dict.fromkeys(ROW_KEYS)
    row.update(reference=False)
    row.update(fields)
    return row


def _threads(sp) -> int | None:
    n = getattr(sp.backend, "intra_op_num_threads", None)
    if n is None and sp.backend.name == "torch":
        import torch

        n = torch.get_num_threads()
    return n


def _model_info(bundle) -> dict:
    m = bundle.config.get("model", {})
    return {"arch": bundle.arch, "ngf": m.get("ngf"), "visual_size": list(bundle.visual_size),
            "mask_kind": bundle.mask_kind, "path": str(bundle.path)}


# ----------------------------------------------------------------------------- measurements


def measure_stream(model_path, backend: str, device: str, chunk_samples: int, seconds: float,
                   sample_rate: int = SAMPLE_RATE, threaded_visual: bool = True, warmup_s: float = 1.0,
                   model_label: str | None = None, fps: float = CAMERA_FPS, block_frames: int | None = None,
                   seed: int = 0, options: dict | None = None) -> dict:
    """Stream ``seconds`` of speech-like audio + camera frames at ``fps`` through a Spatializer in
    chunks of ``chunk_samples`` samples at ``sample_rate`` and time every ``process()`` call.

    ``block_frames``: the engine's block size (None: its automatic choice). ``options``: more
    Spatializer keyword arguments (e.g. ``visual_fps``, ``num_threads``, ``backend_options``),
    recorded in the row.

    Returns a row: :data:`ROW_KEYS` plus ``mean_ms``, ``rtf`` (process() time / audio time),
    ``rtf_total`` (plus the visual worker's time in threaded mode), ``ms_per_audio_s``
    (= 1000 * rtf_total), ``stage_ms_per_s`` (ms of
    each stage per second of audio), block statistics and the ``box`` statistics for the plot.
    """
    from streambin.spatializer import Spatializer

    if not isinstance(chunk_samples, (int, np.integer)) or chunk_samples < 1:
        raise ValueError(f"chunk_samples must be a positive int, got {chunk_samples!r}")
    if not seconds > 0 or warmup_s < 0:
        raise ValueError(f"seconds must be > 0 and warmup_s >= 0, got {seconds!r}, {warmup_s!r}")
    rss_before = peak_rss_mb()
    t_open = time.perf_counter()
    options = dict(options or {})
    sp = Spatializer(str(model_path), backend=backend, device=device, sample_rate=sample_rate,
                     threaded_visual=threaded_visual, block_frames=block_frames, **options)
    open_s = time.perf_counter() - t_open
    try:
        if sp.backend.device != device:  # e.g. ONNX Runtime fell back to CPU
            return empty_row(backend=backend, device=device, model=model_label or str(model_path),
                             chunk_samples=int(chunk_samples), sample_rate=sample_rate,
                             skipped=f"{backend} ran on {sp.backend.device}, not {device} (fallback)")
        camera = MovingPatchCamera(fps=fps, seed=seed)

        def run(x):
            """Feed x chunk by chunk with the camera's frames; returns per-chunk ms."""
            times = np.empty(math.ceil(len(x) / chunk_samples))
            k = 0
            for i, pos in enumerate(range(0, len(x), chunk_samples)):
                frame = None
                while k / fps <= pos / sample_rate:  # newest frame whose time has come
                    frame = camera.frame(k)
                    k += 1
                piece = x[pos:pos + chunk_samples]
                t0 = time.perf_counter_ns()
                sp.process(piece, frame)
                times[i] = (time.perf_counter_ns() - t0) / 1e6
            return times

        if warmup_s > 0:
            run(speech_like(warmup_s, sample_rate, seed + 1))
        sp.visual.wait_idle()
        sp.reset()  # stage timers, block times and counters start from zero
        v_runs0, v_ms0, v_drop0 = sp.visual.runs, sp.visual.total_ms, sp.visual.dropped
        x = speech_like(seconds, sample_rate, seed)
        times = run(x)
        sp.visual.wait_idle()
        st = sp.stats
        visual_ms = sp.visual.total_ms - v_ms0
        duration = len(x) / sample_rate
        chunk_ms = 1e3 * chunk_samples / sample_rate
        stage = dict(st["stage_ms"], visual=visual_ms)
        rtf = times.sum() / 1e3 / duration
        row = empty_row(
            kind="stream", backend=backend, device=sp.backend.device, model=model_label or str(model_path),
            model_info=_model_info(sp.bundle), chunk_samples=int(chunk_samples), chunk_ms=chunk_ms,
            sample_rate=sample_rate, seconds=duration, n_chunks=int(len(times)),
            **distribution(times),
            rtf=float(rtf),
            rtf_total=float(rtf + (visual_ms / 1e3 / duration if threaded_visual else 0.0)),
            # whole-engine compute per second of audio (visual worker included), as the
            # offline/reference rows count it
            ms_per_audio_s=float(1e3 * (rtf + (visual_ms / 1e3 / duration if threaded_visual else 0.0))),
            deadline_misses=int((times > chunk_ms).sum()),
            algorithmic_latency_ms=float(sp.latency_ms),
            end_to_end_latency_ms=float(sp.latency_ms + chunk_ms),
            peak_mem_mb=peak_rss_mb(), mem_before_engine_mb=rss_before,
            stage_ms_per_s={k: float(stage[k] / duration) for k in STAGES},
            block_frames=st["block_frames"], blocks=st["blocks"], block_ms_p99=st["block_ms_p99"],
            block_ms_max=st["block_ms_max"], block_budget_ms=st["block_budget_ms"],
            visual="threaded" if threaded_visual else "sync", visual_runs=sp.visual.runs - v_runs0,
            frames_dropped=sp.visual.dropped - v_drop0, frames_skipped=st["frames_skipped"], camera_fps=fps,
            visual_fps=sp.visual_fps, underrun_samples=st["underrun_samples"],
            threads=_threads(sp), allow_spinning=getattr(sp.backend, "allow_spinning", None), open_s=open_s,
            options=options,
        )
        return row
    finally:
        sp.close()


def measure_offline(model_path, backend: str, device: str, seconds: float, sample_rate: int = SAMPLE_RATE,
                    model_label: str | None = None, fps: float = CAMERA_FPS, seed: int = 0) -> dict:
    """streambin's offline mode on a whole clip: the same engine fed one video frame's worth of
    audio per ``process()`` call (``sample_rate / fps`` samples: 1600 at 48 kHz and 30 fps) with the visual net run
    synchronously, then ``flush()``; this is what ``python -m streambin spatialize`` does minus
    the file I/O. Returns a row with ``kind="offline"``; its latency fields are the engine's
    fixed delay, but the result of a file is only complete at the end of the file.
    """
    from streambin.spatializer import Spatializer

    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    piece = int(round(sample_rate / fps))
    sp = Spatializer(str(model_path), backend=backend, device=device, sample_rate=sample_rate,
                     threaded_visual=False)
    try:
        camera = MovingPatchCamera(fps=fps, seed=seed)
        warm = speech_like(0.5, sample_rate, seed + 1)
        for i, pos in enumerate(range(0, len(warm), piece)):
            sp.process(warm[pos:pos + piece], camera.frame(i))
        sp.reset()
        v_runs0, v_ms0 = sp.visual.runs, sp.visual.total_ms
        x = speech_like(seconds, sample_rate, seed)
        frames = [camera.frame(i) for i in range(math.ceil(len(x) / piece))]  # decoded beforehand
        times = np.empty(len(frames))
        t_start = time.perf_counter()
        for i, pos in enumerate(range(0, len(x), piece)):
            t0 = time.perf_counter_ns()
            sp.process(x[pos:pos + piece], frames[i])
            times[i] = (time.perf_counter_ns() - t0) / 1e6
        sp.flush()
        total = time.perf_counter() - t_start
        duration = len(x) / sample_rate
        st = sp.stats
        return empty_row(
            kind="offline", backend=backend, device=sp.backend.device, model=model_label or str(model_path),
            model_info=_model_info(sp.bundle), chunk_samples=piece, chunk_ms=1e3 * piece / sample_rate,
            sample_rate=sample_rate, seconds=duration, n_chunks=len(times), **distribution(times),
            rtf=float(total / duration), rtf_total=float(total / duration),
            ms_per_audio_s=float(1e3 * total / duration),
            algorithmic_latency_ms=float(sp.latency_ms), end_to_end_latency_ms=None,
            peak_mem_mb=peak_rss_mb(),
            stage_ms_per_s={k: float(v / duration) for k, v in dict(st["stage_ms"], visual=sp.visual.total_ms - v_ms0).items()},
            block_frames=st["block_frames"], blocks=st["blocks"], visual="sync", visual_runs=sp.visual.runs - v_runs0,
            camera_fps=fps, threads=_threads(sp),
            method=f"streambin offline: Spatializer.process per video frame ({piece} samples) on a whole clip, "
                   "then flush(); the CLI path without file I/O",
            note="offline: the output file is complete when the input file has been read; "
                 "algorithmic_latency_ms is the engine's fixed delay (removed by the CLI)",
        )
    finally:
        sp.close()


def run_spec(spec: dict) -> dict:
    """Run one measurement described by ``spec`` (``kind`` "stream", "offline" or "papers");
    a backend that cannot run here gives a row with ``skipped`` set to the reason."""
    from streambin.backends import BackendUnavailable

    kind = spec.get("kind")
    common = dict(backend=spec.get("backend", "torch"), device=spec.get("device"), model=spec.get("model_label"),
                  chunk_samples=spec.get("chunk_samples"), sample_rate=spec.get("sample_rate", SAMPLE_RATE))
    try:
        if kind == "stream":
            return measure_stream(spec["model_path"], spec["backend"], spec["device"], int(spec["chunk_samples"]),
                                  float(spec["seconds"]), int(spec.get("sample_rate", SAMPLE_RATE)),
                                  bool(spec.get("threaded_visual", True)), float(spec.get("warmup_s", 1.0)),
                                  spec.get("model_label"), float(spec.get("fps", CAMERA_FPS)),
                                  spec.get("block_frames"), options=spec.get("options"))
        if kind == "offline":
            return measure_offline(spec["model_path"], spec["backend"], spec["device"], float(spec["seconds"]),
                                   int(spec.get("sample_rate", SAMPLE_RATE)), spec.get("model_label"),
                                   float(spec.get("fps", CAMERA_FPS)))
        if kind == "papers":
            from benchmarks import reference_bench

            return reference_bench.measure_papers_offline(
                spec["weights_path"], spec["device"], float(spec["seconds"]),
                int(spec.get("sample_rate", SAMPLE_RATE)), model_label=spec.get("model_label"),
                batch_size=int(spec.get("batch_size", reference_bench.BATCH_SIZE)))
    except BackendUnavailable as exc:
        return empty_row(**common, kind=kind, skipped=str(exc))
    raise ValueError(f"spec['kind'] must be 'stream', 'offline' or 'papers', got {kind!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="JSON object describing one measurement (see run_spec)")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as exc:
        parser.error(f"--spec is not valid JSON: {exc}")
    if not isinstance(spec, dict):
        parser.error("--spec must be a JSON object")
    row = run_spec(spec)
    sys.stdout.flush()
    print(ROW_MARKER + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
