"""Paired per-clip differences between two evaluations of the same clips (candidate minus reference).

Usage::

    python -m streambin.train.paired docs/results/ood_candidate.json docs/results/ood_default.json
    # both halves of a split, pooled into one comparison of all their clips
    python -m streambin.train.paired first_cand.json first_ref.json --also last_cand.json last_ref.json

Both files are ``python -m streambin.train.evaluate --out`` results. For each metric of the
model condition (default: every metric both files have), on the clips both scored: the mean
difference, its standard error (the clips are shared, so it is much smaller than either
evaluation's own), the difference relative to the reference's mean, and the clip count. The
clips need not come in the same order or number; only shared clips count. ``--also CAND REF``
(repeatable) pools further evaluations of other clips into each side, e.g. the two halves of a
split scored in two runs; a clip may appear in only one file of a side.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence, Tuple

from streambin.train.compare import paired_difference


def load_evaluation(path: str) -> dict:
    """An ``evaluate --out`` JSON, checked to be one (ValueError naming the file if not)."""
    try:
        with open(path) as f:
            ev = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable evaluation JSON ({exc})") from exc
    if not isinstance(ev, dict) or "per_clip" not in ev or "metrics" not in ev:
        raise ValueError(f"{path}: not an evaluation result (no 'per_clip' and 'metrics'; "
                         "write one with python -m streambin.train.evaluate --out)")
    return ev


def data_root(ev: dict) -> Optional[str]:
    """The data set root an evaluation scored (``settings["data"]``; None if it does not say):
    a clip is the same clip in two evaluations when their roots and its name are."""
    return (ev.get("settings") or {}).get("data")


def refuse_repeated_clips(records_of: Sequence[Tuple[str, dict, Sequence[dict]]], what: str = "evaluations") -> None:
    """Raise ValueError if a clip (its :func:`data_root` and name) is in two of the pooled
    ``(name, evaluation, records)``, since it would count twice; ``records`` are per-clip dicts
    with a ``"clip"``; ``what`` names the pooled things in the message."""
    seen: dict = {}
    for name, ev, records in records_of:
        for r in records:
            key = (data_root(ev), r["clip"])
            if key in seen:
                raise ValueError(f"clip {r['clip']!r} is in both {seen[key]} and {name}; pool {what} "
                                 "of different clips")
            seen[key] = name


def pooled(evaluations: Sequence[dict], names: Sequence[str]) -> dict:
    """One evaluation of all the clips of ``evaluations`` (``per_clip`` concatenated, the metrics
    all of them have); a clip in more than one of them is refused, since it would count twice.
    A clip is its data set's root (``settings["data"]``) and name: when the evaluations come from
    more than one root, each clip is renamed ``ROOT/NAME`` so that sets which number their clips
    alike pool (and pair) without clashing."""
    refuse_repeated_clips([(name, ev, ev["per_clip"]) for ev, name in zip(evaluations, names)])
    several_roots = len({data_root(ev) for ev in evaluations}) > 1
    per_clip = [{**c, "clip": f"{data_root(ev)}/{c['clip']}"} if several_roots else c
                for ev in evaluations for c in ev["per_clip"]]
    metrics = [m for m in evaluations[0]["metrics"] if all(m in ev["metrics"] for ev in evaluations[1:])]
    return {"metrics": metrics, "per_clip": per_clip}


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
    ap.add_argument("--also", nargs=2, action="append", default=[], metavar=("CANDIDATE", "REFERENCE"),
                    help="another pair of evaluations, of other clips, pooled into the comparison (repeatable)")
    args = ap.parse_args(argv)
    cands = [args.candidate] + [c for c, _ in args.also]
    refs = [args.reference] + [r for _, r in args.also]
    try:
        candidate = pooled([load_evaluation(p) for p in cands], cands)
        reference = pooled([load_evaluation(p) for p in refs], refs)
        rows = paired_table(candidate, reference, args.metrics)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows, " + ".join(cands), " + ".join(refs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
