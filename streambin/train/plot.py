"""Training curves of a run: ``python -m streambin.train.plot RUN [RUN ...] [-o FIG.png]``.

Reads ``<RUN>/log.csv`` (the trainer writes it, and the same values as TensorBoard scalars
beside it) and draws, against optimizer steps: the total loss on the training batches and on
the validation split, each loss term of the recipe (training solid, validation dashed), and the
learning rates. Several runs are overlaid (total loss only). Default output:
``<RUN>/curves.png`` for one run.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Dict, List

import numpy as np

BOOKKEEPING = ("step", "epoch", "phase", "total", "lr_visual", "lr_audio", "elapsed_s")


def read_log(run_dir: str) -> Dict[str, Dict[str, np.ndarray]]:
    """``{phase: {column: (k,) float array}}`` of ``<run_dir>/log.csv`` (empty cells are NaN)."""
    path = os.path.join(run_dir, "log.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no training log (is {run_dir} a training run's --out directory?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: the log has no rows yet")
    out: Dict[str, Dict[str, List[float]]] = {}
    for row in rows:
        cols = out.setdefault(row["phase"], {})
        for key, value in row.items():
            if key == "phase":
                continue
            cols.setdefault(key, []).append(float(value) if value not in (None, "") else np.nan)
    return {phase: {k: np.asarray(v, float) for k, v in cols.items()} for phase, cols in out.items()}


def plot_runs(run_dirs: List[str], path: str) -> str:
    """Draw the curves of ``run_dirs`` to ``path``; returns the path."""
    from streambin.result_plot import require_matplotlib

    plt = require_matplotlib()
    logs = {os.path.basename(os.path.normpath(r)) or r: read_log(r) for r in run_dirs}
    single = len(logs) == 1
    fig, axes = plt.subplots(3 if single else 1, 1, figsize=(9, 10 if single else 4.5), squeeze=False,
                             constrained_layout=True)
    ax = axes[0, 0]
    for i, (name, log) in enumerate(logs.items()):
        color = f"C{i}"
        prefix = "" if single else f"{name}: "
        if "train" in log:
            ax.plot(log["train"]["step"], log["train"]["total"], color=color, lw=1, alpha=0.8,
                    label=f"{prefix}training batches")
        if "val" in log:
            ax.plot(log["val"]["step"], log["val"]["total"], color=color, lw=2, ls="--", marker="o", ms=3,
                    label=f"{prefix}validation split")
            best = int(np.nanargmin(log["val"]["total"]))
            ax.annotate(f"best {log['val']['total'][best]:.4g}", (log["val"]["step"][best], log["val"]["total"][best]),
                        xytext=(0, -14), textcoords="offset points", ha="center", fontsize=8, color=color)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("step")
    ax.set_ylabel("total loss")
    ax.set_title("total loss" + ("" if single else " of each run"), loc="left")
    ax.legend(fontsize=8)
    if single:
        log = next(iter(logs.values()))
        ax = axes[1, 0]
        terms = [k for k in log.get("train", log.get("val", {})) if k not in BOOKKEEPING]
        for j, term in enumerate(terms):
            for phase, style in (("train", "-"), ("val", "--")):
                if phase in log and term in log[phase] and np.isfinite(log[phase][term]).any():
                    ax.plot(log[phase]["step"], log[phase][term], ls=style, color=f"C{j}",
                            marker="o" if phase == "val" else None, ms=3,
                            label=f"{term} ({'training' if phase == 'train' else 'validation'})")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("loss terms (training solid, validation dashed)", loc="left")
        if terms:
            ax.legend(fontsize=8, ncol=2)
        ax = axes[2, 0]
        train = log.get("train", {})
        for group, style in (("visual", "-"), ("audio", "--")):  # dashed on top: equal rates stay visible
            key = f"lr_{group}"
            if key in train and np.isfinite(train[key]).any():
                ax.plot(train["step"], train[key], ls=style, lw=2, label=f"{group} network")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.set_title("learning rates", loc="left")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="training run directories (the trainer's --out)")
    p.add_argument("-o", "--out", help="figure to write (png/pdf/svg); default <RUN>/curves.png for one run")
    args = p.parse_args(argv)
    out = args.out or (os.path.join(args.runs[0], "curves.png") if len(args.runs) == 1 else None)
    if out is None:
        p.error("several runs need -o FIG.png")
    try:
        print(plot_runs(args.runs, out))
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"streambin.train.plot: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
