"""What denormal floats cost the torch networks on the CPU, and what flushing them buys back.

For each checkpoint, side by side in one run, alternated ``--repeats`` times (medians):
- an inference forward pass (eval mode, batch 1: what the offline evaluation runs per window),
- a training step's forward and backward pass (train mode, batch ``--batch``),
each with denormals computed (the CPU default) and flushed to zero
(:func:`streambin.train.cpu_numerics.flush_denormals`, what the training and evaluation
commands now do). Also the share of the inference pass's intermediate values that are denormal
(flush off), counted over every convolution, normalisation and activation output.

Inputs are random but fixed (seed 0): a ``(B, 2, 257, 64)`` spectrogram context at the
network-input level and ``(B, 64, 128, 3)`` uint8 frames; the denormals come from the weights.

    python benchmarks/train_denormals.py --checkpoints runs/a.pt,runs/b.pt \
        [--repeats 5] [--batch 8] [--threads 1] [--out benchmarks/results/train-denormals-<machine>.json]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import machine_description, write_result  # noqa: E402
from streambin.train.checkpoint import load_generator  # noqa: E402
from streambin.train.cpu_numerics import flush_denormals  # noqa: E402

SMALLEST_NORMAL = torch.finfo(torch.float32).tiny  # 1.18e-38


def _inputs(cfg, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bins = cfg.audio.n_fft // 2 + 1
    spec = torch.randn(batch, 2, bins, cfg.audio.context_frames, generator=g) * 0.5
    h, w = cfg.model.visual_size
    frames = torch.randint(0, 256, (batch, h, w, 3), generator=g, dtype=torch.uint8)
    return spec, frames


def denormal_share(model, spec, frames) -> dict:
    """Share of intermediate float values in ``(0, 1.18e-38)`` in magnitude, flush off."""
    counts = {"denormal": 0, "total": 0}

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            a = output.detach().abs()
            counts["denormal"] += int(((a > 0) & (a < SMALLEST_NORMAL)).sum())
            counts["total"] += a.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    torch.set_flush_denormal(False)
    try:
        with torch.no_grad():
            model(spec, frames)
    finally:
        for h in handles:
            h.remove()
    return {**counts, "share": counts["denormal"] / max(counts["total"], 1)}


def _time(fn, n: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def measure(path: str, repeats: int, batch: int) -> dict:
    model, cfg = load_generator(path, mirror_average=False)  # eval mode: the checkpoint's inference
    # The training step updates BatchNorm statistics; its own copy keeps them out of `model`.
    trained = copy.deepcopy(model).train()
    spec1, frames1 = _inputs(cfg, 1)
    specb, framesb = _inputs(cfg, batch)

    def infer():
        with torch.no_grad():
            model(spec1, frames1)

    def train_step():
        trained.zero_grad(set_to_none=True)
        trained(specb, framesb).pow(2).mean().backward()

    share = denormal_share(model, spec1, frames1)
    times = {(kind, flush): [] for kind in ("inference_ms", "train_step_ms") for flush in (False, True)}
    for _ in range(repeats):
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            times[("inference_ms", flush)].append(1e3 * _time(infer, 5))
            times[("train_step_ms", flush)].append(1e3 * _time(train_step, 2))
    torch.set_flush_denormal(False)
    row = {"checkpoint": path, "denormal_activations": share}
    for kind in ("inference_ms", "train_step_ms"):
        kept = statistics.median(times[(kind, False)])
        flushed = statistics.median(times[(kind, True)])
        row[kind] = {"denormals_kept": round(kept, 2), "denormals_flushed": round(flushed, 2),
                     "kept_over_flushed": round(kept / flushed, 3)}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", required=True, help="comma-separated training checkpoints (.pt)")
    ap.add_argument("--repeats", type=int, default=5, help="alternations of flush off / on (default 5)")
    ap.add_argument("--batch", type=int, default=8, help="batch of the training step (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/train-denormals-<machine>.json)")
    args = ap.parse_args(argv)
    paths = [p for p in args.checkpoints.split(",") if p]
    missing = [p for p in paths if not os.path.isfile(p)]
    if not paths or missing or args.repeats < 1 or args.batch < 1 or args.threads < 1:
        ap.error(f"need existing checkpoints (missing: {missing or 'none'}) and --repeats, --batch, "
                 f"--threads >= 1")
    if not flush_denormals():
        ap.error("torch cannot flush denormals on this CPU (needs x86 with SSE3): nothing to compare")
    torch.set_flush_denormal(False)
    torch.set_num_threads(args.threads)
    rows = []
    for p in paths:
        row = measure(p, args.repeats, args.batch)
        print(f"{p}: denormal activations {row['denormal_activations']['denormal']} of {row['denormal_activations']['total']}; "
              f"inference {row['inference_ms']['denormals_kept']} / {row['inference_ms']['denormals_flushed']} ms, "
              f"training step {row['train_step_ms']['denormals_kept']} / {row['train_step_ms']['denormals_flushed']} ms "
              f"(kept / flushed)", flush=True)
        rows.append(row)
    result = {"benchmark": "train_denormals", "machine": machine_description(),
              "settings": {"repeats": args.repeats, "batch": args.batch, "threads": args.threads},
              "rows": rows}
    write_result(result, "train-denormals", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
