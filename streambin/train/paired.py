"""Paired per-clip differences between two evaluations of the same clips (candidate minus reference).

Usage::

    python -m streambin.train.paired docs/results/ood_candidate.json docs/results/ood_default.json

Both files are ``python -m streambin.train.evaluate --out`` results. For each metric of the
model condition (default: every metric both files have), on the clips both scored: the mean
difference, its standard error (the clips are shared, so it is much smaller than either
evaluation's own), the difference relative to the reference's mean, and the clip count. The
clips need not come in the same order or number; only shared clips count.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence

from streambin.train.compare import paired_difference


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            ev = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable evaluation JSON ({exc})") from exc
    if not isinstance(ev, dict) or "per_clip" not in ev or "metrics" not in ev:
        raise ValueError(f"{path}: not an evaluation result (no 'per_clip' and 'metrics'; "
                         "write one with python -m streambin.train.evaluate --out)")
    return ev


def paired_table(candidate: dict, reference: dict, metrics: Optional[Sequence[str]] = None) -> List[dict]:
    """Rows ``{"metric", "mean", "sem", "relative", "clips"}`` of candidate minus reference."""
    shared = [m for m in candidate["metrics"] if m in reference["metrics"]]
    if metrics is None:
        metrics = shared
    unknown = [m for m in metrics if m not in shared]
    if unknown:
        raise ValueError(f"metrics {unknown} are not in both evaluations (both have: {shared})")
    rows = []
    for metric in metrics:
        mean, sem, rel, n = paired_difference(candidate, reference, metric)
        rows.append({"metric": metric, "mean": mean, "sem": sem, "relative": rel, "clips": n})
    return rows


def format_table(rows: Sequence[dict], candidate: str, reference: str) -> str:
    lines = [f"Paired per clip, {candidate} minus {reference}:", "",
             "| metric | difference ± s.e. | relative to reference | clips |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['metric']} | {r['mean']:+.4f} ± {r['sem']:.4f} | {100 * r['relative']:+.1f} % "
                     f"| {r['clips']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streambin.train.paired", description=__doc__.split("\n")[0])
    ap.add_argument("candidate", help="evaluation JSON of the candidate")
    ap.add_argument("reference", help="evaluation JSON of the reference, same clips")
    ap.add_argument("--metrics", nargs="+", default=None, help="metrics to compare (default: all shared)")
    args = ap.parse_args(argv)
    try:
        rows = paired_table(_load(args.candidate), _load(args.reference), args.metrics)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows, args.candidate, args.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
