"""Which engine settings make the default model real-time on 2 CPU cores? Side by side, one run.

Run: ``python benchmarks/engine_settings.py`` (about 5 minutes on 2 cores).

The shipped default model on ONNX Runtime CPU at 48 kHz, camera frames at 30 fps, the visual net
on its worker thread (live use), a fixed block of 2 frames (the automatic choice depends on a
speed probe, which would make the rows differ in more than the setting; rows 6-7 set their own),
each configuration in a
fresh process (benchmarks.latency
.run_child), cumulative from ONNX Runtime's own defaults to streambin's:

1. ``ort-defaults``: intra-op threads spin between runs (ONNX Runtime's default), visual net on
   every camera frame (``visual_fps=None``), 2 intra-op threads per session;
2. ``no-spin``: idle intra-op threads sleep (``allow_spinning=False``);
3. ``no-spin+10fps``: plus the visual net capped at 10 runs per audio second (streambin's
   default, the training frame rate);
4. ``no-spin+10fps+1thread``: plus one intra-op thread per session;

and then what mirror averaging (``Spatializer(mirror_average=True)``, both networks twice) costs
on top of streambin's plain settings (3.):

5. ``mirror-average``: at the same block of 2 frames;
6. ``mirror-average+block3``: at 3 frames, its default block (10 ms more latency);
7. ``mirror-average+block3+1thread``: the same with one intra-op thread per session.

Rows 1-4 run with ``mirror_average=False``, whatever the bundle asks for.

``--models default,runs/bundle_x`` runs every configuration for each model ("default", "paper"
or a bundle directory, as ``benchmarks/latency.py --model``), to compare models side by side in
one run; rows carry the model's label in ``model``.

Per configuration and chunk size: real-time factor of the whole engine (``rtf_total``: process()
calls plus the visual worker, per audio second), per-block p99 against the block's audio
duration, per-call p99, and each one's ratio to the first configuration run of the first model
(``ratio_to_first``). Writes ``<results-dir>/engine-settings-<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.latency import RESULTS_DIR, prepare_model, run_child  # noqa: E402
from benchmarks.machine import machine_description, machine_slug  # noqa: E402

#: label -> Spatializer keyword arguments (see the module docstring); "block_frames" replaces
#: the run's block for that row
CONFIGS = {
    "ort-defaults": {"visual_fps": None, "backend_options": {"allow_spinning": True}, "mirror_average": False},
    "no-spin": {"visual_fps": None, "mirror_average": False},
    "no-spin+10fps": {"mirror_average": False},
    "no-spin+10fps+1thread": {"num_threads": 1, "mirror_average": False},
    "mirror-average": {"mirror_average": True},
    "mirror-average+block3": {"mirror_average": True, "block_frames": 3},
    "mirror-average+block3+1thread": {"mirror_average": True, "block_frames": 3, "num_threads": 1},
}
FIELDS = ("rtf_total", "block_ms_p99", "p99_ms")


def run(chunks, seconds: float, block_frames, fps: float, configs=CONFIGS, log=print,
        models=("default",)) -> dict:
    prepared = [prepare_model(m) for m in models]
    rows = []
    for model in prepared:
        for label, config in configs.items():
            options = dict(config)
            block = options.pop("block_frames", block_frames)
            for chunk in chunks:
                spec = {"kind": "stream", "model_path": model["path"], "model_label": model["label"],
                        "backend": "onnxruntime", "device": "cpu", "chunk_samples": int(chunk),
                        "seconds": seconds, "threaded_visual": True, "fps": fps, "block_frames": block,
                        "options": options}
                log(f"{model['label']:<16} {label:<24} chunk {chunk:>5} ...", end=" ", flush=True)
                row = run_child(spec)
                row.update(config=label, model=model["label"])
                rows.append(row)
                if row.get("error") or row.get("skipped"):
                    log(row.get("error") or row.get("skipped"))
                else:
                    log(f"rtf_total {row['rtf_total']:.3f}, block p99 {row['block_ms_p99']:.2f} / "
                        f"{row['block_budget_ms']:.0f} ms, call p99 {row['p99_ms']:.2f} ms")
    first = (prepared[0]["label"], next(iter(configs)))
    base = {r["chunk_samples"]: r for r in rows if (r["model"], r["config"]) == first and not r.get("error")}
    for r in rows:
        b = base.get(r["chunk_samples"])
        if b is not None and not r.get("error"):
            r["ratio_to_first"] = {k: r[k] / b[k] for k in FIELDS if b.get(k)}
    return {"model": prepared[0], "models": prepared, "rows": rows}


def format_table(rows) -> str:
    lines = [f"{'model':<16}{'config':<24}{'chunk':>6}{'rtf_total':>11}{'x base':>8}{'block p99':>11}{'budget':>8}"
             f"{'call p99':>10}{'vis runs':>9}{'blk':>4}"]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r.get('model', ''):<16}{r['config']:<24}{r['chunk_samples']:>6}  ERROR {r['error']}")
            continue
        ratio = r.get("ratio_to_first", {}).get("rtf_total")
        lines.append(f"{r.get('model', ''):<16}{r['config']:<24}{r['chunk_samples']:>6}{r['rtf_total']:>11.3f}"
                     f"{'' if ratio is None else f'{ratio:.2f}':>8}{r['block_ms_p99']:>11.2f}"
                     f"{r['block_budget_ms']:>8.1f}{r['p99_ms']:>10.2f}{r['visual_runs']:>9}{r['block_frames']:>4}")
    lines.append("rtf_total = (process() time + visual worker time) / audio time; block p99 = p99 wall time of "
                 "one audio-net block (STFT ring .. ISTFT, resampling) vs its audio duration (budget); "
                 "call p99 = p99 of process() calls")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", default="256,1024", help="comma list of chunk sizes at 48 kHz (default 256,1024)")
    p.add_argument("--seconds", type=float, default=10.0, help="audio seconds per row (default 10)")
    p.add_argument("--block-frames", type=int, default=2,
                   help="engine block size, the same for every configuration (default 2: 56 ms at 48 kHz)")
    p.add_argument("--fps", type=float, default=30.0, help="camera frame rate (default 30)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="comma list of the configurations to run, in the module docstring's order (default all; "
                        "ratios are to the first one given)")
    p.add_argument("--models", default="default",
                   help="comma list of models, each 'default', 'paper' or a bundle directory (default: default)")
    p.add_argument("--results-dir", default=RESULTS_DIR)
    a = p.parse_args(argv)
    names = [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONFIGS]
    if not names or unknown:
        p.error(f"--configs must name some of {', '.join(CONFIGS)}; unknown: {', '.join(unknown) or '(none given)'}")
    try:
        chunks = [int(c) for c in a.chunks.split(",") if c.strip()]
    except ValueError:
        p.error(f"--chunks must be a comma list of integers, got {a.chunks!r}")
    if not chunks or min(chunks) < 1 or not a.seconds > 0 or not a.fps > 0:
        p.error("--chunks must be positive, --seconds and --fps > 0")
    machine = machine_description()
    t0 = time.perf_counter()
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if not models:
        p.error("--models must name at least one model")
    result = run(chunks, a.seconds, a.block_frames, a.fps, configs={c: CONFIGS[c] for c in names}, models=models)
    result.update(machine=machine, command="python benchmarks/engine_settings.py " + " ".join(argv or sys.argv[1:]),
                  seconds=a.seconds, camera_fps=a.fps, wall_s=time.perf_counter() - t0)
    print()
    print(format_table(result["rows"]))
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"engine-settings-{machine_slug(machine)}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
