"""Is the engine at this tree as fast as at another commit? Both timed side by side in one run.

A restructuring must not slow the engine down. This checks out ``--before`` (any git
revision) into a temporary worktree, gives it this tree's built native extension (the C++
sources must be the same at both commits: checked), and then times the same streaming
configurations with each tree's ``benchmarks/engine_bench.py``, alternating before/after
round by round so load on the machine hits both alike. Each row runs in a fresh process.

    python benchmarks/compare_commits.py --before 3472218 --rounds 3 \
        --out benchmarks/results/restructure-ab-cpu-2core.json

Reported per configuration, as medians over the rounds for each tree and their ratio after /
before (< 1: faster now):

- ``rtf``: process() time / audio time with the real networks (``engine_bench.py``);
- ``engine_ms_per_s``: process() time per second of audio with the audio net replaced by one
  fixed output and no camera (each tree's ``benchmarks/full_band.run_engine``, 480-sample
  chunks): the engine's own work (resampling, STFT, network input, masks, ISTFT, FIFO). The networks are the same graphs in both trees and their
  time on a shared 2-core machine varies by +-15 % from run to run, which would hide what a
  restructuring of the engine changes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.engine_bench import ROW_MARKER  # noqa: E402
from benchmarks.machine import machine_description  # noqa: E402

# (label, sample rate, chunk samples, block frames, Spatializer options): the full-band path at
# 48 kHz, the resampling path at 48 kHz, and the model rate.
# The visual net runs synchronously but at 2 frames/s, so the audio path, which a restructuring
# touches, is most of what is timed (at the camera's 30 frames/s it is ~90 % visual net).
CONFIGS = (("48k full band, 10 ms chunks, block 1", 48000, 480, 1, {"full_band": True, "visual_fps": 2.0}),
           ("48k resampling path, 10 ms chunks, block 1", 48000, 480, 1, {"full_band": False, "visual_fps": 2.0}),
           ("16k model rate, 10 ms chunks, block 2", 16000, 160, 2, {"visual_fps": 2.0}))


def _git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def prepare_worktree(revision: str, where: str) -> str:
    """Check ``revision`` out at ``where`` and copy this tree's built ``streambin/_C*.so``."""
    if _git("diff", "--stat", revision, "HEAD", "--", "cpp_ext"):
        raise SystemExit(f"cpp_ext differs between {revision} and HEAD: build the extension at {revision} "
                         "instead of reusing this tree's")
    _git("worktree", "add", "--detach", where, revision)
    libs = glob.glob(os.path.join(ROOT, "streambin", "_C*.so"))
    if not libs:
        raise SystemExit("streambin/_C*.so is not built in this tree (pip install -e . first)")
    for lib in libs:
        shutil.copy2(lib, os.path.join(where, "streambin"))
    return where


def run_row(tree: str, spec: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    res = subprocess.run([sys.executable, os.path.join(tree, "benchmarks", "engine_bench.py"),
                          "--spec", json.dumps(spec)], cwd=tree, env=env, capture_output=True, text=True,
                         timeout=900)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(ROW_MARKER)]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"engine_bench failed in {tree} (rc {res.returncode}): {res.stderr[-2000:]}")
    return json.loads(lines[-1][len(ROW_MARKER):])


# Runs inside either tree (PYTHONPATH): that tree's own engine-alone measure of
# benchmarks/full_band.py (audio net replaced by one fixed output, no camera), 10 s of noise.
_ENGINE_ONLY = """
import sys, json, numpy as np
from benchmarks.full_band import run_engine
rate, block, options = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
options.pop("visual_fps", None)
x = (0.1 * np.random.default_rng(0).standard_normal(rate * 10)).astype(np.float32)
run_engine(x[:rate], rate=rate, fixed_masks=True, block_frames=block, **options)   # warm-up
_, seconds, _ = run_engine(x, rate=rate, fixed_masks=True, block_frames=block, **options)
print("ENGINE_MS_PER_S", seconds * 1e3 / 10)
"""


def engine_only_ms_per_s(tree: str, rate: int, block: int, options: dict) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    res = subprocess.run([sys.executable, "-c", _ENGINE_ONLY, str(rate), str(block), json.dumps(options)],
                         cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("ENGINE_MS_PER_S ")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"engine-only run failed in {tree} (rc {res.returncode}): {res.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare this tree with")
    parser.add_argument("--rounds", type=int, default=3, help="alternating before/after rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per row, seconds (default 10)")
    parser.add_argument("--out", help="write the results JSON here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not args.seconds > 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    tmp = tempfile.mkdtemp(prefix="streambin-before-")
    before_tree = os.path.join(tmp, "tree")
    prepare_worktree(args.before, before_tree)
    trees = {"before": before_tree, "after": ROOT}
    results = []
    try:
        for label, rate, chunk, block, options in CONFIGS:
            spec = {"kind": "stream", "model_path": "default", "backend": "onnxruntime", "device": "cpu",
                    "chunk_samples": chunk, "seconds": args.seconds, "sample_rate": rate,
                    "block_frames": block, "threaded_visual": False, "options": options}
            rtf = {"before": [], "after": []}
            engine = {"before": [], "after": []}
            for r in range(args.rounds):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for name in order:
                    rtf[name].append(run_row(trees[name], spec)["rtf"])
                    engine[name].append(engine_only_ms_per_s(trees[name], rate, block, options))
            med = {k: statistics.median(v) for k, v in rtf.items()}
            med_e = {k: statistics.median(v) for k, v in engine.items()}
            results.append({"config": label, "rtf_before": rtf["before"], "rtf_after": rtf["after"],
                            "median_rtf_before": med["before"], "median_rtf_after": med["after"],
                            "rtf_ratio_after_over_before": med["after"] / med["before"],
                            "engine_ms_per_s_before": engine["before"], "engine_ms_per_s_after": engine["after"],
                            "median_engine_ms_per_s_before": med_e["before"],
                            "median_engine_ms_per_s_after": med_e["after"],
                            "engine_ratio_after_over_before": med_e["after"] / med_e["before"]})
            print(f"{label}: rtf before {med['before']:.4f}, after {med['after']:.4f} "
                  f"(ratio {med['after'] / med['before']:.3f}); engine with the audio net stubbed "
                  f"{med_e['before']:.2f} -> {med_e['after']:.2f} ms/s "
                  f"(ratio {med_e['after'] / med_e['before']:.3f})", flush=True)
    finally:
        _git("worktree", "remove", "--force", before_tree)
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"what": "engine rtf (process() time / audio time, real networks) and engine ms per s of audio with the audio net replaced by a fixed output (benchmarks/full_band.run_engine), this tree vs an earlier commit, alternating rounds",
           "before": _git("rev-parse", args.before), "after": _git("rev-parse", "HEAD"),
           "after_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
           "rounds": args.rounds, "seconds": args.seconds, "machine": machine_description(), "results": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
