"""What a blend that follows the room costs the engine per block, beside what it costs without.

Per block of the model's frames (``--block-frames``, 3 by default: 30 ms of audio), a bundle whose
side renderer table carries a room detector (streambin.room_detector) pushes the block's new
frames into the runner's room tracker (band power, then the detector's percentiles over the last
two seconds) and blends with weights interpolated by its probability; a bundle without one blends
with fixed weights. Both are timed here on the bundle's own renderer, each after the audio net's
run on the block (the engine's mirror-averaged batch of two, the largest part of a block), and the
net alone beside them, alternating, ``--calls`` per turn and ``--repeats`` turns; medians of the
per-turn means are reported, the detector's cost as the difference of the first two, with the
ratios and the share of the block's audio duration each takes. Then the whole engine, with the
bundle and with a copy without the detector (its free-field weights everywhere), alternating:
the audio-net stage per block as ``stats`` reports it.

    python benchmarks/room_blend_cost.py --bundle runs/bundle_room [--repeats 15] [--calls 200] \
        [--engine-seconds 10] [--engine-repeats 5]
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


def _engine_ab(bundle: str, block_frames: int, seconds: float, repeats: int, threaded: bool = False) -> dict:
    """The engine's audio-net stage per block (``stats["stage_ms"]["audio_net"]``: the net, mirror
    averaging, side gain, blend and detector) streaming ``seconds`` of noise at 48 kHz in 1024-sample
    chunks with a camera frame every fifth chunk, with ``bundle`` and with a copy whose table keeps
    only its free-field weights (no detector), alternating, ``repeats`` times each; the visual net
    runs in the calling thread so that no second thread's timing mixes in (``threaded``: on its own
    thread, as the engine runs by default: the two nets' threads then share the cores)."""
    import shutil
    import tempfile

    from streambin import Spatializer
    from streambin.train.fit_side_blend import apply

    rng = np.random.default_rng(1)
    mono = (0.1 * rng.standard_normal(int(seconds * 48000))).astype(np.float32)
    frame = rng.integers(0, 256, (224, 448, 3), dtype=np.uint8)
    per_block = {"room": [], "no room": []}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "no_room"
        shutil.copytree(bundle, plain)
        with np.load(plain / "side_renderer.npz") as z:
            free = {"blend_model": z["blend_model"].tolist(), "blend_rendered": z["blend_rendered"].tolist()}
        apply(plain, {**free, "data": "the free-field weights of " + str(bundle), "split": "-", "clips": 0,
                      "side_residual": {}}, None)
        kw = dict(sample_rate=48000, block_frames=block_frames, mirror_average=True, threaded_visual=threaded)
        with Spatializer(bundle, **kw) as room, Spatializer(plain, **kw) as no_room:
            for _ in range(repeats):
                for name, sp in (("room", room), ("no room", no_room)):
                    sp.reset()
                    for i in range(0, len(mono), 1024):
                        sp.process(mono[i:i + 1024], frame if (i // 1024) % 5 == 0 else None)
                    per_block[name].append(sp.stats["stage_ms"]["audio_net"] / sp.stats["blocks"])
    return {"seconds": seconds, "repeats": repeats, "threaded_visual": threaded, "per_repeat": per_block,
            "median": {k: statistics.median(v) for k, v in per_block.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="a bundle whose side renderer follows a room detector")
    p.add_argument("--block-frames", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--engine-seconds", type=float, default=10.0, help="audio streamed per engine run")
    p.add_argument("--engine-repeats", type=int, default=5,
                   help="engine runs with and without the detector, alternating (0: skip)")
    p.add_argument("--engine-threaded", action="store_true",
                   help="run the visual nets on their own thread in the engine runs (the engine's default)")
    p.add_argument("--out", help="results JSON (default benchmarks/results/room-blend-cost-<machine>.json)")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.calls < 1 or a.block_frames < 1 or a.engine_repeats < 0 or not a.engine_seconds > 0:
        p.error("--repeats, --calls and --block-frames must be >= 1, --engine-repeats >= 0, --engine-seconds > 0")
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
        # The model's frames of 8 s of noise bursts in a decaying tail (a room), cycled block by
        # block: the detector sorts what it is given, so frames that repeat would flatter it.
        from streambin import dsp

        rate, n = sp.bundle.sample_rate, 8 * sp.bundle.sample_rate
        bursts = rng.standard_normal(n) * ((np.arange(n) % (rate * 3 // 10)) < rate // 10)
        tail = rng.standard_normal(rate // 2) * 10 ** (-6 * np.arange(rate // 2) / rate)
        audio = (0.1 * np.convolve(bursts, tail)[:n] / np.abs(bursts).max()).astype(np.float32)
        frames = dsp.StreamingSTFT(sp.bundle.n_fft, sp.bundle.win_length, sp.bundle.hop).push(audio)
        blocks = [frames[i:i + b] for i in range(0, len(frames) - b + 1, b)]
        turn = {"i": 0}

        def next_block():
            turn["i"] = (turn["i"] + 1) % len(blocks)
            return blocks[turn["i"]]

        tracker = renderer.room_tracker()
        for _ in range(renderer.room_detector.window_frames // b + 1):   # a full two-second window
            tracker.push(next_block())
        net_in = np.zeros((1, 2, F, sp.bundle.context_frames), np.float32)
        feature, _ = sp.visual.snapshot()
        # Each step runs after the audio net, as in a block (the net's run leaves the caches cold
        # for what follows: alone, the detector times at half what it costs in the engine).
        steps = {
            "audio net + blend, fixed weights": lambda: (sp.backend.audio(net_in, feature), next_block(),
                                                         renderer.blend(masks, rendered, None, out=out)),
            "audio net + room tracker + blend": lambda: (sp.backend.audio(net_in, feature), renderer.blend(
                masks, rendered, tracker.push(next_block()), out=out)),
            "audio net alone (mirror-averaged batch)": lambda: sp.backend.audio(net_in, feature),
        }
        for fn in steps.values():
            _mean_ms(fn, 5)                                                   # warm up
        times = {name: [] for name in steps}
        for _ in range(a.repeats):
            for name, fn in steps.items():
                times[name].append(_mean_ms(fn, a.calls))
        block_ms = 1000.0 * b * sp.bundle.hop / sp.bundle.sample_rate
    med = {name: statistics.median(t) for name, t in times.items()}
    added = med["audio net + room tracker + blend"] - med["audio net + blend, fixed weights"]
    engine = (_engine_ab(a.bundle, a.block_frames, a.engine_seconds, a.engine_repeats, a.engine_threaded)
              if a.engine_repeats else None)
    result = {
        "machine": machine_description(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "bundle": a.bundle, "block_frames": b, "block_ms_of_audio": block_ms, "repeats": a.repeats, "calls": a.calls,
        "median_ms_per_block": med, "per_turn_ms": times,
        "room_detector_added_ms": added,
        "ratio_room_to_fixed": med["audio net + room tracker + blend"] / med["audio net + blend, fixed weights"],
        "ratio_added_to_audio_net": added / med["audio net alone (mirror-averaged batch)"],
        "share_of_block_audio": {name: m / block_ms for name, m in med.items()},
        "engine_audio_net_stage_ms_per_block": engine,
    }
    for name, m in med.items():
        print(f"{name:40s} {m:7.3f} ms per block ({m / block_ms:.4f} of the block's {block_ms:.0f} ms of audio)")
    print(f"the room detector adds {added:.3f} ms per block: {result['ratio_added_to_audio_net']:.3f}x the audio net")
    if engine:
        print(f"whole engine, audio-net stage per block (median of {a.engine_repeats}): with the detector "
              f"{engine['median']['room']:.3f} ms, without {engine['median']['no room']:.3f} ms "
              f"({engine['median']['room'] / engine['median']['no room']:.3f}x)")
    write_result(result, "room-blend-cost", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
