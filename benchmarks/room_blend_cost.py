"""What a blend that follows the room costs the engine per block, beside what it costs without.

Per block of the model's frames (``--block-frames``, 3 by default: 30 ms of audio), a bundle whose
side renderer table carries a room detector (streambin.room_detector) pushes the block's new
frames into the runner's room tracker (band power, then the detector's percentiles over the last
two seconds) and blends with weights interpolated by its probability; a bundle without one blends
with fixed weights. Both are timed here on the bundle's own renderer, alternating, ``--calls`` per
turn and ``--repeats`` turns, beside the audio net's run on the same block (the engine's mirror-
averaged batch of two), the largest part of a block; medians of the per-turn means are reported,
with the ratios and the share of the block's audio duration each takes.

    python benchmarks/room_blend_cost.py --bundle runs/bundle_room [--repeats 15] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_description, write_result  # noqa: E402


def _mean_ms(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="a bundle whose side renderer follows a room detector")
    p.add_argument("--block-frames", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--out", help="results JSON (default benchmarks/results/room-blend-cost-<machine>.json)")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.calls < 1 or a.block_frames < 1:
        p.error("--repeats, --calls and --block-frames must be >= 1")
    from streambin import Spatializer

    rng = np.random.default_rng(0)
    with Spatializer(a.bundle, sample_rate=48000, block_frames=a.block_frames, mirror_average=True) as sp:
        renderer = sp.visual.side_renderer
        if renderer is None or renderer.room_detector is None:
            p.error(f"{a.bundle}: its side renderer has no room detector (see streambin.side_renderer)")
        b, F = a.block_frames, sp.bundle.n_bins
        frame = rng.integers(0, 256, renderer.input_size + (3,), dtype=np.uint8)
        rendered = renderer.rendered_mask(frame)
        masks = rng.standard_normal((1, 2, F, b)).astype(np.float32)
        out = np.empty_like(masks)
        new_frames = (0.1 * (rng.standard_normal((b, F)) + 1j * rng.standard_normal((b, F)))).astype(np.complex64)
        tracker = renderer.room_tracker()
        for _ in range(renderer.room_detector.window_frames // b + 1):   # a full two-second window
            tracker.push(new_frames)
        net_in = np.zeros((1, 2, F, sp.bundle.context_frames), np.float32)
        feature, _ = sp.visual.snapshot()
        steps = {
            "blend, fixed weights": lambda: renderer.blend(masks, rendered, None, out=out),
            "room tracker + blend": lambda: renderer.blend(masks, rendered, tracker.push(new_frames), out=out),
            "audio net (mirror-averaged batch)": lambda: sp.backend.audio(net_in, feature),
        }
        for fn in steps.values():
            _mean_ms(fn, 5)                                                   # warm up
        times = {name: [] for name in steps}
        for _ in range(a.repeats):
            for name, fn in steps.items():
                times[name].append(_mean_ms(fn, a.calls))
        block_ms = 1000.0 * b * sp.bundle.hop / sp.bundle.sample_rate
    med = {name: statistics.median(t) for name, t in times.items()}
    added = med["room tracker + blend"] - med["blend, fixed weights"]
    result = {
        "machine": machine_description(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "bundle": a.bundle, "block_frames": b, "block_ms_of_audio": block_ms, "repeats": a.repeats, "calls": a.calls,
        "median_ms_per_block": med, "per_turn_ms": times,
        "room_detector_added_ms": added,
        "ratio_room_to_fixed_blend": med["room tracker + blend"] / med["blend, fixed weights"],
        "ratio_added_to_audio_net": added / med["audio net (mirror-averaged batch)"],
        "share_of_block_audio": {name: m / block_ms for name, m in med.items()},
    }
    for name, m in med.items():
        print(f"{name:34s} {m:7.3f} ms per block ({m / block_ms:.4f} of the block's {block_ms:.0f} ms of audio)")
    print(f"the room detector adds {added:.3f} ms per block: {result['ratio_added_to_audio_net']:.3f}x the audio net")
    write_result(result, "room-blend-cost", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
