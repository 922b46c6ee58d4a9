"""streambin latency benchmark: is the engine fast enough for your app, and what does it beat?

Run: ``python benchmarks/latency.py`` (about 15 minutes on 2 cores; ``--quick`` for a short run).

All in one run, side by side:

* **Streaming engine** (:mod:`benchmarks.engine_bench`): for each backend (ONNX Runtime CPU and
  CUDA, TensorRT, torch CPU and CUDA; the unavailable ones get a row that says why) and chunk
  sizes 128, 256, 512, 1024 samples at 48 kHz, a ``Spatializer`` is fed speech-like audio and
  30 fps camera frames; per-chunk ``process()`` time p50/p95/p99/max, real-time factor,
  algorithmic latency (``latency_ms``), end-to-end latency (algorithmic + one chunk), peak RSS
  and the stage split (ms per second of audio). The visual net runs on its worker thread
  (``threaded_visual=True``, as in live use) unless ``--visual sync``.
* **What users have today** (:mod:`benchmarks.reference_bench`): the papers' offline PyTorch
  inference (0.63 s windows every 0.1 s over the whole clip) on the same model and clip, rows
  marked ``"reference": true``; and streambin's own offline mode (whole clip through the engine).
* **Models**: the shipped default (``streambin/models/default``; if it is not there, a stand-in
  from ``configs/cpu_small.yaml`` with random weights) and the paper-sized network (ngf 64,
  224x448 frames, random weights). Timing does not depend on the weights. Benchmark bundles are
  exported once into ``benchmarks/.cache/``.
* **DSP chain** (:mod:`benchmarks.dsp_chain`): the per-hop STFT -> mask -> ISTFT chain through
  streambin._C against torch and numpy, written to ``dsp.json`` (``--dsp-only`` runs just that).

Every engine/reference row runs in a fresh Python process so that its peak memory is its own.
Output: a table on stdout, ``<results>/latency-<machine>.json`` ({"machine", "command", "rows"}),
``<results>/latency-<machine>.png`` and PASS/FAIL lines against the project's goals.
Use ``taskset -c 0,1 python benchmarks/latency.py`` to measure "2 CPU cores" on a bigger machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import dsp_chain  # noqa: E402
from benchmarks.machine import machine_description, machine_slug  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
CACHE_DIR = os.path.join(BENCH_DIR, ".cache")
ENGINE_SCRIPT = os.path.join(BENCH_DIR, "engine_bench.py")

#: name -> (Spatializer backend, device)
BACKENDS = {
    "onnxruntime-cpu": ("onnxruntime", "cpu"),
    "onnxruntime-cuda": ("onnxruntime", "cuda"),
    "tensorrt": ("tensorrt", "cuda"),
    "torch-cpu": ("torch", "cpu"),
    "torch-cuda": ("torch", "cuda"),
}
#: --backend shorthands
BACKEND_GROUPS = {"all": tuple(BACKENDS), "onnxruntime": ("onnxruntime-cpu", "onnxruntime-cuda"),
                  "torch": ("torch-cpu", "torch-cuda"), "cpu": ("onnxruntime-cpu", "torch-cpu"),
                  "cuda": ("onnxruntime-cuda", "tensorrt", "torch-cuda")}
#: benchmark models built from a training config when needed (random weights)
MODEL_CONFIGS = {"default": "configs/cpu_small.yaml", "paper": "configs/mono2binaural_paper.yaml"}
CHUNKS = (128, 256, 512, 1024)
QUICK_CHUNKS = (256, 1024)
GOAL_CPU = {"rtf": 0.5, "algorithmic_latency_ms": 60.0}
GOAL_GPU_BLOCK_MS = 2.0
REFERENCE_FPS = 10.0  # frame rate of the offline rows (the papers pre-extract frames at 10 fps)


# ----------------------------------------------------------------------------- DSP chain (first version)


def run_dsp(n_hops: int, out_path: str) -> dict:
    worst = dsp_chain.check_agreement()
    rows = [dsp_chain.time_chain(name, n_hops=n_hops) for name in dsp_chain.IMPLEMENTATIONS]
    by = {r["impl"]: r for r in rows}
    native = by["streambin._C"]["per_hop_us_p50"]
    result = {
        "machine": machine_description(),
        "hop": dsp_chain.HOP, "n_fft": dsp_chain.N_FFT, "win_length": dsp_chain.WIN,
        "chain": "streaming STFT -> side mask (both ears) -> streaming ISTFT, one hop per call",
        "max_abs_diff_between_impls": worst,
        "rows": rows,
        "speedup_vs_torch": by["torch"]["per_hop_us_p50"] / native,
        "speedup_vs_numpy": by["numpy"]["per_hop_us_p50"] / native,
        "command": "python benchmarks/latency.py" + (" --quick" if n_hops < 2000 else ""),
    }
    print(f"\nDSP chain per hop ({dsp_chain.HOP} samples = 10 ms at 16 kHz), {n_hops} hops, "
          f"outputs agree to {worst:.1e}")
    print(f"{'impl':<14}{'p50 us':>10}{'p99 us':>10}{'vs _C (p50)':>14}")
    for r in rows:
        print(f"{r['impl']:<14}{r['per_hop_us_p50']:>10.1f}{r['per_hop_us_p99']:>10.1f}"
              f"{r['per_hop_us_p50'] / native:>13.1f}x")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out_path}")
    return result


# ----------------------------------------------------------------------------- models


def _export_from_config(name: str, config_path: str, cache_dir: str = CACHE_DIR) -> str:
    """Bundle directory of a random-weight model built from ``config_path`` (exported once, cached)."""
    from streambin.bundle import BundleError, load_bundle

    out = os.path.join(cache_dir, name)
    bundle_dir = os.path.join(out, "bundle")
    stamp_path = os.path.join(out, "config.stamp")
    with open(os.path.join(REPO, config_path)) as f:
        stamp = f.read()
    if os.path.isfile(stamp_path) and open(stamp_path).read() == stamp:
        try:
            load_bundle(bundle_dir)
            return bundle_dir
        except BundleError:
            pass  # stale or broken cache: rebuild
    import torch

    from export.to_onnx import export_bundle
    from streambin.train.build import build_generator
    from streambin.train.checkpoint import save_checkpoint
    from streambin.train.config import load_config

    print(f"building benchmark model {name!r} from {config_path} (random weights, exported once to {out})",
          flush=True)
    cfg = load_config(os.path.join(REPO, config_path))
    torch.manual_seed(0)
    model = build_generator(cfg).eval()
    ckpt = os.path.join(out, "checkpoint.pt")
    save_checkpoint(ckpt, config=cfg, model=model)
    export_bundle(ckpt, bundle_dir)
    os.remove(ckpt)  # the bundle's weights.pt holds the same generator weights
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return bundle_dir


def prepare_model(spec: str, cache_dir: str = CACHE_DIR) -> dict:
    """Resolve ``--model`` entry ``spec`` ("default", "paper" or a bundle directory) to
    ``{"label", "path", "note"}``."""
    from streambin.bundle import BundleError, default_bundle_path, load_bundle

    if spec == "default":
        try:
            return {"label": "default", "path": str(default_bundle_path()), "note": "shipped default bundle"}
        except BundleError:
            path = _export_from_config("cpu_small", MODEL_CONFIGS["default"], cache_dir)
            return {"label": "default", "path": path,
                    "note": "stand-in for the default bundle (not installed): configs/cpu_small.yaml, random weights"}
    if spec == "paper":
        return {"label": "paper", "path": _export_from_config("paper", MODEL_CONFIGS["paper"], cache_dir),
                "note": "paper-sized Mono2Binaural (ngf 64, 224x448 frames), random weights"}
    try:
        load_bundle(spec)
    except BundleError as exc:
        raise SystemExit(f"--model {spec!r}: expected 'default', 'paper' or a bundle directory: {exc}")
    return {"label": os.path.basename(os.path.normpath(spec)), "path": os.path.abspath(spec), "note": "bundle"}


# ----------------------------------------------------------------------------- backends


def backend_unavailable(name: str, bundle_path: str) -> str | None:
    """Why backend ``name`` cannot run ``bundle_path`` here, or None when it can."""
    backend, device = BACKENDS[name]
    if backend == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install onnxruntime)"
        if device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return (f"ONNX Runtime has no CUDAExecutionProvider (providers: "
                        f"{', '.join(ort.get_available_providers())}; needs onnxruntime-gpu and a CUDA GPU)")
        return None
    if backend == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed"
        from streambin.bundle import load_bundle

        if load_bundle(bundle_path).weights is None:
            return "the bundle has no weights.pt"
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA GPU"
        return None
    # TensorRT: needs the package, a GPU and an engine for this GPU (built here when missing).
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed (pip install tensorrt; needs a CUDA GPU)"
    try:
        from export.to_trt import build_bundle_engines
        from streambin.backends import tensorrt_backend as trtb
        from streambin.bundle import load_bundle

        if trtb.matching_engine_key(load_bundle(bundle_path)) is None:
            print(f"building TensorRT engines for {bundle_path}", flush=True)
            build_bundle_engines(bundle_path)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the row's reason
        return f"TensorRT engine unavailable: {type(exc).__name__}: {exc}"
    return None


# ----------------------------------------------------------------------------- child processes


def run_child(spec: dict, timeout_s: float = 600) -> dict:
    """Run one measurement (engine_bench.run_spec) in a fresh Python process; returns its row,
    or a row with ``error`` set when the process failed."""
    from benchmarks.engine_bench import ROW_MARKER, empty_row

    cmd = [sys.executable, ENGINE_SCRIPT, "--spec", json.dumps(spec)]
    base = dict(backend=spec.get("backend", "torch"), device=spec.get("device"), model=spec.get("model_label"),
                chunk_samples=spec.get("chunk_samples"), kind=spec.get("kind"),
                reference=spec.get("kind") == "papers")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    except subprocess.TimeoutExpired:
        return empty_row(**base, error=f"timed out after {timeout_s:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(ROW_MARKER):
            return json.loads(line[len(ROW_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return empty_row(**base, error=f"exit {proc.returncode}: {' | '.join(tail)}")


def plan(models: list, backends: list, chunks: list, seconds: float, visual: str,
         reference: bool = True, fps: float = 30.0, block_frames: int | None = None, log=print) -> list:
    """The list of (spec or skip-row) to run, in order."""
    from benchmarks.engine_bench import SAMPLE_RATE, empty_row

    todo = []
    for m in models:
        available = {}
        for name in backends:
            reason = backend_unavailable(name, m["path"])
            available[name] = reason is None
            backend, device = BACKENDS[name]
            if reason is not None:
                log(f"skip {name} for model {m['label']}: {reason}")
                todo.append(empty_row(backend=backend, device=device, model=m["label"], kind="stream",
                                      sample_rate=SAMPLE_RATE, skipped=reason))
                continue
            for c in chunks:
                todo.append({"kind": "stream", "model_path": m["path"], "model_label": m["label"],
                             "backend": backend, "device": device, "chunk_samples": int(c),
                             "seconds": seconds, "sample_rate": SAMPLE_RATE,
                             "threaded_visual": visual == "threaded", "fps": fps,
                             "block_frames": block_frames})
        if not reference:
            continue
        # streambin's offline mode, on the fastest backend measured (GPU first)
        for name in ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch-cuda", "torch-cpu"):
            if available.get(name):
                backend, device = BACKENDS[name]
                todo.append({"kind": "offline", "model_path": m["path"], "model_label": m["label"],
                             "backend": backend, "device": device, "seconds": seconds,
                             "fps": REFERENCE_FPS})  # the frames the papers' row gets
                break
        # the papers' method in PyTorch, on every torch device that is available
        from streambin.bundle import load_bundle

        weights = load_bundle(m["path"]).weights
        for device in ("cpu", "cuda"):
            if device == "cuda" and "torch-cuda" not in backends:
                continue
            reason = backend_unavailable("torch-" + device, m["path"]) if weights is not None else \
                "the bundle has no weights.pt for the PyTorch generator"
            if reason is not None:
                todo.append(empty_row(backend="torch", device=device, model=m["label"], kind="papers",
                                      reference=True, sample_rate=16000, skipped=reason))
                continue
            todo.append({"kind": "papers", "weights_path": str(weights), "model_label": m["label"],
                         "device": device, "seconds": seconds, "backend": "torch"})
    return todo


# ----------------------------------------------------------------------------- reporting


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)


def format_table(rows: list) -> str:
    """Fixed-width table of all rows (skipped/failed rows show their reason)."""
    head = (f"{'model':<8}{'kind':<8}{'backend':<12}{'dev':<5}{'chunk':>6}{'p50':>8}{'p95':>8}{'p99':>8}"
            f"{'max':>8}{'chunk ms':>9}{'rtf':>7}{'rtf+vis':>8}{'alg ms':>8}{'e2e ms':>8}{'MB':>7}{'blk':>4}")
    lines = [head, "-" * len(head)]
    for r in rows:
        prefix = (f"{str(r.get('model'))[:7]:<8}{str(r.get('kind'))[:7]:<8}{str(r.get('backend'))[:11]:<12}"
                  f"{str(r.get('device'))[:4]:<5}")
        if r.get("skipped") or r.get("error"):
            why = "skipped: " + r["skipped"] if r.get("skipped") else "ERROR: " + r["error"]
            lines.append(prefix + f"{_f(r.get('chunk_samples'), '{}'):>6}  {why[:110]}")
            continue
        lines.append(prefix + f"{_f(r.get('chunk_samples'), '{}'):>6}{_f(r['p50_ms']):>8}{_f(r['p95_ms']):>8}"
                     f"{_f(r['p99_ms']):>8}{_f(r['max_ms']):>8}{_f(r.get('chunk_ms')):>9}{_f(r['rtf'], '{:.3f}'):>7}"
                     f"{_f(r.get('rtf_total'), '{:.3f}'):>8}{_f(r['algorithmic_latency_ms'], '{:.1f}'):>8}"
                     f"{_f(r['end_to_end_latency_ms'], '{:.1f}'):>8}{_f(r['peak_mem_mb'], '{:.0f}'):>7}"
                     f"{_f(r.get('block_frames'), '{}'):>4}")
    lines.append("times in ms per process() call; rtf = process() time / audio time; rtf+vis adds the visual "
                 "worker thread; alg = Spatializer.latency_ms; e2e = alg + one chunk; MB = peak RSS of the "
                 "row's process; blk = STFT frames per audio-net run")
    return "\n".join(lines)


def format_stages(rows: list) -> str:
    from benchmarks.engine_bench import STAGES

    lines = ["stage split, ms of wall time per second of audio:",
             f"{'model':<8}{'backend':<12}{'dev':<5}{'chunk':>6}" + "".join(f"{s:>13}" for s in STAGES)]
    for r in rows:
        if r.get("stage_ms_per_s") and r.get("kind") == "stream":
            lines.append(f"{str(r['model'])[:7]:<8}{r['backend'][:11]:<12}{r['device'][:4]:<5}{r['chunk_samples']:>6}"
                         + "".join(f"{r['stage_ms_per_s'][s]:>13.2f}" for s in STAGES))
    return "\n".join(lines)


def format_comparison(rows: list) -> str:
    """Per model: the papers' offline method vs streambin offline vs streambin streaming."""
    lines = ["what users have today vs streambin (compute per second of audio, latency):"]
    for model in dict.fromkeys(r.get("model") for r in rows):
        ok = [r for r in rows if r.get("model") == model and not r.get("skipped") and not r.get("error")]
        picks = [r for r in ok if r.get("kind") == "papers"] + [r for r in ok if r.get("kind") == "offline"]
        streams = [r for r in ok if r.get("kind") == "stream"]
        by_backend = {}
        for r in streams:  # per backend, the smallest chunk (the lowest-latency configuration)
            key = (r["backend"], r["device"])
            if key not in by_backend or r["chunk_samples"] < by_backend[key]["chunk_samples"]:
                by_backend[key] = r
        picks += list(by_backend.values())
        papers = next((r for r in picks if r.get("kind") == "papers" and r["device"] == "cpu"), None)
        for r in picks:
            label = {"papers": "papers' offline (torch)", "offline": "streambin offline",
                     "stream": f"streambin stream {r.get('chunk_samples')}"}[r["kind"]]
            speed = (f"  {papers['ms_per_audio_s'] / r['ms_per_audio_s']:.1f}x papers' speed"
                     if papers and r is not papers else "")
            lat = "whole file" if r["end_to_end_latency_ms"] is None else f"{r['end_to_end_latency_ms']:.0f} ms"
            lines.append(f"  {str(model):<8}{label:<28}{r['backend'] + '/' + r['device']:<18}"
                         f"{r['ms_per_audio_s']:>8.1f} ms/s  latency {lat:>11}{speed}")
    return "\n".join(lines)


def goal_lines(rows: list, machine: dict) -> list:
    """PASS/FAIL lines against the project's goals (reported, not asserted)."""
    out = []
    cores = machine.get("cores")
    cpu_rows = [r for r in rows if r.get("kind") == "stream" and r.get("model") == "default"
                and r.get("backend") == "onnxruntime" and r.get("device") == "cpu"
                and not r.get("skipped") and not r.get("error")]
    where = f"on this machine ({cores} cores{'' if cores == 2 else '; the goal is stated for 2 cores'})"
    if not cpu_rows:
        out.append("goal (default model, CPU): NOT MEASURED (no ONNX Runtime CPU rows for the default model)")
    for r in sorted(cpu_rows, key=lambda r: r["chunk_samples"]):
        # The issue's three goals: whole-engine RTF (visual worker included), algorithmic
        # latency, and no audio-net block slower than its audio duration at p99.
        checks = [("RTF (visual included)", r["rtf_total"], GOAL_CPU["rtf"], "<="),
                  ("algorithmic latency ms", r["algorithmic_latency_ms"], GOAL_CPU["algorithmic_latency_ms"], "<="),
                  (f"p99 per block ms (block of {r['block_frames']} frames)", r["block_ms_p99"],
                   r["block_budget_ms"], "<")]
        for what, got, goal, op in checks:
            ok = got <= goal if op == "<=" else got < goal
            out.append(f"{'PASS' if ok else 'FAIL'}  default model, onnxruntime/cpu, chunk {r['chunk_samples']}: "
                       f"{what} {got:.3f} {op} {goal:.3f} {where}")
        # Not a goal, said so: a process() call that completes a block runs the whole block, so
        # an app whose audio callback is shorter than a block needs that much output buffering.
        ok = r["p99_ms"] < r["chunk_ms"]
        out.append(f"info  default model, onnxruntime/cpu, chunk {r['chunk_samples']}: p99 per process() call "
                   f"{r['p99_ms']:.3f} ms {'<' if ok else '>='} chunk duration {r['chunk_ms']:.3f} ms "
                   f"(end-to-end latency {r['end_to_end_latency_ms']:.1f} ms)")
    gpu_rows = [r for r in rows if r.get("kind") == "stream" and r.get("model") == "paper"
                and r.get("device") == "cuda" and not r.get("skipped") and not r.get("error")]
    if not gpu_rows:
        out.append(f"goal (paper model on H100/H200, p99 per block <= {GOAL_GPU_BLOCK_MS:g} ms): NOT MEASURABLE here "
                   f"(no CUDA rows for the paper model; GPU: {machine.get('gpu', 'none')})")
    for r in gpu_rows:
        ok = r["block_ms_p99"] <= GOAL_GPU_BLOCK_MS
        out.append(f"{'PASS' if ok else 'FAIL'}  paper model, {r['backend']}/cuda, chunk {r['chunk_samples']}: "
                   f"p99 per block {r['block_ms_p99']:.3f} ms <= {GOAL_GPU_BLOCK_MS:g} ms on {machine.get('gpu')}")
    return out


# ----------------------------------------------------------------------------- main


def _parse_list(text: str, what: str, cast=str) -> list:
    try:
        return [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise SystemExit(f"{what}: cannot parse {text!r}: {exc}")


def run_engine(args, results_dir: str, command: str) -> dict:
    machine = machine_description()
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 10.0)
    if not seconds > 0:
        raise SystemExit(f"--seconds must be > 0, got {seconds}")
    chunks = _parse_list(args.chunks, "--chunks", int) if args.chunks else list(QUICK_CHUNKS if args.quick else CHUNKS)
    if any(c < 1 for c in chunks):
        raise SystemExit(f"--chunks must be positive sample counts, got {chunks}")
    backends = []
    for b in _parse_list(args.backend, "--backend"):
        if b in BACKEND_GROUPS:
            backends += BACKEND_GROUPS[b]
        elif b in BACKENDS:
            backends.append(b)
        else:
            raise SystemExit(f"--backend {b!r}: expected one of {sorted(BACKENDS) + sorted(BACKEND_GROUPS)}")
    backends = list(dict.fromkeys(backends))
    models = [prepare_model(m, args.cache_dir) for m in dict.fromkeys(_parse_list(args.model, "--model"))]

    if not args.fps > 0:
        raise SystemExit(f"--fps must be > 0, got {args.fps}")
    todo = plan(models, backends, chunks, seconds, args.visual, reference=not args.no_reference, fps=args.fps,
                block_frames=args.block_frames)
    rows = []
    t_start = time.perf_counter()
    n_runs = sum(1 for t in todo if "kind" in t and "skipped" not in t)
    i = 0
    for item in todo:
        if "skipped" in item:
            rows.append(item)
            continue
        i += 1
        desc = f"{item['kind']} {item.get('model_label')} {item.get('backend')}/{item['device']}" + \
            (f" chunk {item['chunk_samples']}" if "chunk_samples" in item else "")
        print(f"[{i}/{n_runs}] {desc} ...", end=" ", flush=True)
        row = run_child(item)
        rows.append(row)
        print("skipped: " + row["skipped"] if row.get("skipped") else "ERROR: " + row["error"] if row.get("error")
              else f"p99 {_f(row['p99_ms'])} ms, rtf {row['rtf']:.3f}", flush=True)
    for m in models:
        for r in rows:
            if r.get("model") == m["label"]:
                r.setdefault("model_note", m["note"])

    result = {"machine": machine, "command": command, "seconds": seconds, "chunks": chunks,
              "visual": args.visual, "camera_fps": args.fps, "block_frames": args.block_frames, "wall_s": time.perf_counter() - t_start, "rows": rows}
    print()
    print(format_table(rows))
    print()
    print(format_stages(rows))
    print()
    print(format_comparison(rows))
    print()
    for line in goal_lines(rows, machine):
        print(line)
    slug = machine_slug(machine)
    os.makedirs(results_dir, exist_ok=True)
    json_path = os.path.join(results_dir, f"latency-{slug}.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {json_path}")
    if not args.no_plot:
        from benchmarks.plot import plot_latency

        png = plot_latency(result, os.path.join(results_dir, f"latency-{slug}.png"))
        print(f"wrote {png}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short run: 2 s of audio, chunks 256 and 1024, 300 DSP hops")
    parser.add_argument("--dsp-only", action="store_true", help="only the DSP chain benchmark (dsp.json)")
    parser.add_argument("--no-dsp", action="store_true", help="skip the DSP chain benchmark")
    parser.add_argument("--hops", type=int, default=None, help="hops to time per DSP implementation (default 3000)")
    parser.add_argument("--backend", default="all",
                        help=f"comma list of {', '.join(BACKENDS)} or groups {', '.join(BACKEND_GROUPS)} (default all)")
    parser.add_argument("--model", default="default,paper",
                        help="comma list of 'default', 'paper' or bundle directories (default: default,paper)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of audio per row (default 10, quick 2)")
    parser.add_argument("--chunks", default=None, help="comma list of chunk sizes in samples at 48 kHz "
                        "(default 128,256,512,1024; quick 256,1024)")
    parser.add_argument("--visual", choices=("threaded", "sync"), default="threaded",
                        help="visual net on its worker thread (live use, default) or inside process()")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate fed to the engine (default 30)")
    parser.add_argument("--block-frames", type=int, default=None,
                        help="engine block size in STFT frames for the streaming rows (default: the engine's auto choice)")
    parser.add_argument("--no-reference", action="store_true", help="skip the papers' and offline rows")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    parser.add_argument("--results-dir", default=RESULTS_DIR, help="where the JSON/PNG files go")
    parser.add_argument("--cache-dir", default=CACHE_DIR, help="where benchmark model bundles are cached")
    parser.add_argument("--out", default=None, help="DSP results file (default <results-dir>/dsp.json)")
    args = parser.parse_args(argv)
    if args.dsp_only and args.no_dsp:
        parser.error("--dsp-only and --no-dsp exclude each other")
    command = "python benchmarks/latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if not args.no_dsp:
        n_hops = args.hops or (300 if args.quick else 3000)
        run_dsp(n_hops, args.out or os.path.join(args.results_dir, "dsp.json"))
    if not args.dsp_only:
        run_engine(args, args.results_dir, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
