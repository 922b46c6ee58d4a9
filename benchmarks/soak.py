"""Soak: a long stream through one Spatializer, unpaced, watching memory, block times and counters.

Default model and settings at 48 kHz (ONNX Runtime on the CPU where no GPU), 10 ms chunks of
speech-like noise (-26 dBFS RMS, short pauses) with a new 640x480 camera frame at 30 fps (the
engine's 10 fps cap skips two of three), as fast as the machine runs it. Per simulated minute:
resident memory (RSS, /proc/self/statm), p99 and max of that minute's block times, threads.
Then the counters (underruns, frames, visual runs). Memory growth is RSS at the end minus RSS
after the first minute (warm-up: allocator pools, ONNX Runtime arenas).

Also, side by side in the same run: seconds of compute per second of audio for the same noise at
its normal level and scaled to denormal floats (1e-39 x), the latter with the engine's flush of
tiny input samples (the default) and with it switched off, alternated three times (median).

    python benchmarks/soak.py [--minutes 60] [--out benchmarks/results/soak-<machine>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import machine_description, write_result  # noqa: E402
from streambin.spatializer import Spatializer  # noqa: E402

RATE = 48000
CHUNK = 480          # 10 ms
CAMERA_FPS = 30


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise in 150-400 ms bursts with pauses, RMS about 0.05, float32 at RATE."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = rng.standard_normal(n).astype(np.float32) * 0.07
    env = np.repeat(rng.random(n // 4800 + 1) < 0.75, 4800)[:n].astype(np.float32)
    return x * env


def soak(minutes: float, seed: int = 0) -> dict:
    sp = Spatializer(sample_rate=RATE)
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    minute = speechlike(60.0, seed)               # one minute of audio, reused (no input allocation)
    per_minute = []
    k = 0                                         # camera frames handed over so far
    t_start = time.perf_counter()
    for m in range(int(np.ceil(minutes))):
        sp._timing.block_ms.clear()                      # this minute's block times only
        t0 = time.perf_counter()
        n = len(minute) if m < int(minutes) else int((minutes - int(minutes)) * len(minute))
        for pos in range(0, n - CHUNK + 1, CHUNK):
            now = m * 60.0 + pos / RATE
            f = None
            while k / CAMERA_FPS <= now:
                f, k = frames[k % len(frames)], k + 1
            y = sp.process(minute[pos:pos + CHUNK], f)
        assert np.isfinite(y).all()
        s = sp.stats
        per_minute.append({"minute": m + 1, "rss_mb": round(rss_mb(), 1), "wall_s": round(time.perf_counter() - t0, 2),
                           "block_ms_p99": round(s["block_ms_p99"], 3), "block_ms_max": round(s["block_ms_max"], 3),
                           "threads": threading.active_count()})
        print(json.dumps(per_minute[-1]), flush=True)
    wall = time.perf_counter() - t_start
    s = sp.stats
    sp.close()
    audio_s = s["samples_in"] / RATE
    after_warmup = per_minute[0]["rss_mb"]
    return {
        "settings": {"sample_rate": RATE, "chunk_samples": CHUNK, "camera_fps": CAMERA_FPS, "frame": [480, 640, 3],
                     "backend": s["backend"], "device": s["device"], "block_frames": s["block_frames"],
                     "lookahead_frames": s["lookahead_frames"], "latency_ms": s["latency_ms"],
                     "visual_fps_cap": sp.visual_fps},
        "audio_s": audio_s, "wall_s": round(wall, 1), "rtf": round(wall / audio_s, 3),
        "rss_growth_after_first_minute_mb": round(per_minute[-1]["rss_mb"] - after_warmup, 1),
        "rss_max_mb": max(p["rss_mb"] for p in per_minute),
        "block_ms_p99_worst_minute": max(p["block_ms_p99"] for p in per_minute),
        "block_budget_ms": s["block_budget_ms"],
        "counters": {k_: s[k_] for k_ in ("blocks", "underrun_samples", "nonfinite_samples", "clipped_samples",
                                          "frames_received", "frames_skipped", "frames_dropped", "visual_runs")},
        "per_minute": per_minute,
    }


def denormal_speed(seconds: float = 5.0, repeats: int = 3) -> dict:
    """Compute seconds per audio second: normal-level input, denormal input (flushed to zero, the
    engine's default) and denormal input with the flush switched off, alternated."""
    import streambin.spatializer as engine

    sp = Spatializer(sample_rate=RATE)
    x = speechlike(seconds, 1)
    tiny = (x.astype(np.float64) * 1e-39).astype(np.float32)
    assert np.count_nonzero(tiny) and np.abs(tiny).max() < np.finfo(np.float32).tiny
    cases = {"normal": (x, engine.FLUSH_BELOW), "denormal": (tiny, engine.FLUSH_BELOW),
             "denormal_flush_off": (tiny, 0.0)}
    times = {k: [] for k in cases}
    flush_below = engine.FLUSH_BELOW
    try:
        for _ in range(repeats):
            for name, (sig, threshold) in cases.items():
                engine.FLUSH_BELOW = threshold
                sp.reset()
                t0 = time.perf_counter()
                for pos in range(0, len(sig), CHUNK):
                    sp.process(sig[pos:pos + CHUNK])
                times[name].append((time.perf_counter() - t0) / seconds)
    finally:
        engine.FLUSH_BELOW = flush_below
        sp.close()
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"s_per_audio_s": {k: round(v, 4) for k, v in med.items()},
            "denormal_over_normal": round(med["denormal"] / med["normal"], 3),
            "denormal_flush_off_over_normal": round(med["denormal_flush_off"] / med["normal"], 3),
            "runs": {k: [round(t, 4) for t in v] for k, v in times.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated minutes of audio (default 60)")
    ap.add_argument("--out", default=None, help="result JSON (default benchmarks/results/soak-<machine>.json)")
    args = ap.parse_args(argv)
    if not args.minutes > 0:
        ap.error(f"--minutes must be > 0, got {args.minutes}")
    machine = machine_description()
    load_before = os.getloadavg()
    result = {"machine": machine, "minutes": args.minutes, "soak": soak(args.minutes),
              "denormal_input": denormal_speed()}
    # Other work on the same cores inflates block times (not memory): record the load around the run.
    result["load_average_1min"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    print(json.dumps({k: v for k, v in result["soak"].items() if k != "per_minute"}, indent=1))
    print("denormal input:", json.dumps(result["denormal_input"]))
    write_result(result, "soak", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
