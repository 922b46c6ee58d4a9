"""Does a candidate default pass the ship rule? The goals table and the bar from evaluation JSONs.

    python -m streambin.train.ship_check \\
        --ood docs/results/ood_room.json docs/results/ood_renderer.json \\
        --ood docs/results/ood_last100_room.json docs/results/ood_last100_renderer.json \\
        --lateral docs/results/ood_lateral_room.json docs/results/ood_lateral_renderer.json \\
        --in-domain docs/results/indomain_la1_room.json docs/results/indomain_la1_renderer.json \\
        --ood-se 2 --in-domain-se 1 [--out check.json]

Each pair is ``CANDIDATE REFERENCE`` (``python -m streambin.train.evaluate --out`` results of the
same clips; ``--ood`` repeatable, one pair per part of the held-out split, pooled for the STFT
test; ``--lateral`` repeatable too, its evaluations' per-clip localisation records pooled into
one lateral set, e.g. the held-out split's ``--lateral-only`` run and a second held-out set's
run). The goals (the default-model issue's, measured as its table is):

- direction accuracy, single static source beyond 10 degrees, composites and photographs: >= 0.90
  on every held-out set (each ``--ood`` set and the lateral set; with ``--judge-rows lateral``
  on the lateral set alone, the others reported: a row of 16 clips moves by 6 % a clip);
- mirrored frames flip the side: >= 0.85 on every set (or the lateral set); grey-frame level
  difference <= 0.5 dB;
- median predicted / true level difference: 0.7 - 1.4 on every set (or the lateral set);
- STFT distance over Mono-Mono's, all ``--ood`` clips pooled: <= 0.70;
- in-domain: STFT <= 1.122 and direction accuracy >= 0.79 (the issue's "not worse than today").

The bar (the ship rule): (1) the candidate's STFT distance on all ``--ood`` clips lower than the
reference's, paired, by more than ``--ood-se`` standard errors; (2) in-domain not worse by more
than ``--in-domain-se`` standard errors and meeting its goal; (3) no goal row the reference meets
turned unmet; plus ``--min-lateral-level-ratio`` if given. Speed and size rows are not in these
files: check them with the benchmarks. Exit status 0 when every test passes, 1 when one fails.

With ``--lateral``, the direction rows are also compared clip by clip: per scene kind, the
candidate's right-side share minus the reference's over the pooled lateral clips, paired (each
clip scores 1 on the right side, 0 on the wrong one), with its standard error. A clip's side is
the sign of its level difference however small, so counts of clips moved by a tenth of a dB near
the centre swing a per-set row by several percent; ``--direction-se K`` makes "not worse, paired,
by more than K standard errors" a test of the rule, per kind.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from streambin.train.localisation_eval import on_right_side, summarize
from streambin.train.paired import data_root, load_evaluation, paired_table, pooled, refuse_repeated_clips

DIRECTION_GOAL, MIRROR_GOAL, GREY_GOAL_DB = 0.90, 0.85, 0.5
LEVEL_RATIO_GOAL = (0.7, 1.4)
STFT_GOAL = 0.70
IN_DOMAIN_GOAL = {"stft": 1.122, "direction_acc": 0.79}
JUDGE_ROWS = ("every-set", "lateral")    # which sets' values decide whether a localisation row is met


def localisation(ev: dict, name: str) -> dict:
    """The localisation summary of an evaluation (refused if it was run with --no-localisation)."""
    summary = (ev.get("localisation") or {}).get("summary")
    if not summary:
        raise ValueError(f"{name}: no localisation summary (evaluated with --no-localisation?)")
    return summary


def stft_over_mono(ev: dict) -> float:
    """Mean model STFT distance over the mean Mono-Mono distance, on the clips scored."""
    model = [c["metrics"]["model"]["stft"] for c in ev["per_clip"]]
    mono = [c["metrics"]["mono_mono"]["stft"] for c in ev["per_clip"]]
    return float(np.mean(model) / np.mean(mono))


def pooled_lateral(evaluations: Sequence[dict], names: Sequence[str]) -> dict:
    """One evaluation-like ``{"localisation": {"summary", "per_clip"}}`` from the per-clip
    localisation records of ``evaluations`` (their qualifying clips pooled, summarised anew);
    a single evaluation is returned as it is. A clip (its data root and name) in two of them is
    refused, since it would count twice."""
    if len(evaluations) == 1:
        return evaluations[0]
    for ev, name in zip(evaluations, names):
        localisation(ev, name)
        if not has_clip_records(ev):
            raise ValueError(f"{name}: no per-clip localisation records to pool")
    refuse_repeated_clips([(name, ev, ev["localisation"]["per_clip"]) for ev, name in zip(evaluations, names)],
                          what="lateral evaluations")
    records = [r for ev in evaluations for r in ev["localisation"]["per_clip"]]
    return {"localisation": {"summary": summarize(records), "per_clip": records}}


def has_clip_records(ev: dict) -> bool:
    """Whether an evaluation keeps its per-clip localisation records (summary-only ones do not)."""
    return bool((ev.get("localisation") or {}).get("per_clip"))


def _lateral_records(ev: dict, name: str) -> Dict[str, dict]:
    """``{clip: record}`` of an evaluation's clips that count for the direction rows."""
    localisation(ev, name)
    if not has_clip_records(ev):
        raise ValueError(f"{name}: no per-clip localisation records to pair")
    return {r["clip"]: r for r in ev["localisation"]["per_clip"] if r["qualifies"]}


def paired_direction(pairs: Sequence[Tuple[dict, dict]], names: Sequence[Tuple[str, str]]) -> Dict[str, dict]:
    """Per scene kind with lateral clips: ``{"mean", "sem", "clips", "candidate", "reference"}``,
    the candidate's right-side share minus the reference's over the qualifying clips of all
    ``(candidate, reference)`` evaluation ``pairs`` (``names`` theirs), paired per clip, and each
    model's count of clips on the right side. The two evaluations of a pair must score the same
    clips as lateral (the same data, evaluated alike); else ValueError."""
    right: Dict[str, List[Tuple[int, int]]] = {}
    for (cand, ref), (cand_name, ref_name) in zip(pairs, names):
        if data_root(cand) != data_root(ref):
            raise ValueError(f"{cand_name} and {ref_name} evaluate different data ({data_root(cand)}, "
                             f"{data_root(ref)}); pair evaluations of the same clips")
        records = [_lateral_records(cand, cand_name), _lateral_records(ref, ref_name)]
        if set(records[0]) != set(records[1]):
            odd = sorted(set(records[0]) ^ set(records[1]))
            raise ValueError(f"{cand_name} and {ref_name} do not score the same lateral clips "
                             f"({len(odd)} differ, e.g. {odd[0]!r}); evaluate both on the same data")
        for clip, c in records[0].items():
            right.setdefault(c["scene_kind"], []).append((int(on_right_side(c)), int(on_right_side(records[1][clip]))))
    result = {}
    for kind, scores in right.items():
        cand, ref = np.array(scores).T
        diff = (cand - ref).astype(np.float64)
        sem = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
        result[kind] = {"mean": float(diff.mean()), "sem": sem, "clips": int(diff.size),
                        "candidate": int(cand.sum()), "reference": int(ref.sum())}
    return result


def goal_rows(ood: Sequence[dict], lateral: Optional[dict], in_domain: Optional[dict], names: Sequence[str],
              judge_rows: str = "every-set") -> List[dict]:
    """Rows ``{"measure", "goal", "values", "met"}``: the goals table of one model; ``ood`` the
    held-out sets' evaluations (``names`` theirs, then the lateral set's); ``judge_rows``: whether
    the localisation rows are met on every set or on the lateral set alone (its value last)."""
    if judge_rows not in JUDGE_ROWS:
        raise ValueError(f"judge_rows must be one of {JUDGE_ROWS}, got {judge_rows!r}")
    if judge_rows == "lateral" and lateral is None:
        raise ValueError("judging the rows on the lateral set needs --lateral")
    sets = list(ood) + ([lateral] if lateral is not None else [])
    summaries = [localisation(ev, n) for ev, n in zip(sets, names)]

    def judged(values):
        return values[-1:] if judge_rows == "lateral" else values

    def rate(s, kind):
        r = s["direction_acc"].get(kind)
        return None if not r or not r.get("n") else float(r["rate"])

    rows = []
    for kind, label in (("composite", "composites"), ("photograph", "photographs")):
        values = [rate(s, kind) for s in summaries]
        rows.append({"measure": f"direction, {label}", "goal": f">= {DIRECTION_GOAL}", "values": values,
                     "met": all(v is not None and v >= DIRECTION_GOAL for v in judged(values))})
    values = [float(s["mirror_flip_rate"]["rate"]) for s in summaries]
    rows.append({"measure": "mirror flips the side", "goal": f">= {MIRROR_GOAL}", "values": values,
                 "met": all(v >= MIRROR_GOAL for v in judged(values))})
    values = [s.get("ld_ratio_median") for s in summaries]
    rows.append({"measure": "median level ratio", "goal": f"{LEVEL_RATIO_GOAL[0]} - {LEVEL_RATIO_GOAL[1]}",
                 "values": values,
                 "met": all(v is not None and LEVEL_RATIO_GOAL[0] <= v <= LEVEL_RATIO_GOAL[1] for v in judged(values))})
    values = [float(s["grey_bias_abs_db"]) for s in summaries]
    rows.append({"measure": "grey-frame level difference, dB", "goal": f"<= {GREY_GOAL_DB}", "values": values,
                 "met": all(v <= GREY_GOAL_DB for v in judged(values))})
    all_ood = pooled(list(ood), list(names[:len(ood)]))
    value = stft_over_mono(all_ood)
    rows.append({"measure": "STFT x Mono-Mono, all held-out clips", "goal": f"<= {STFT_GOAL}", "values": [value],
                 "met": value <= STFT_GOAL})
    if in_domain is not None:
        values = [float(in_domain["summary"]["model"][m]["mean"]) for m in ("stft", "direction_acc")]
        rows.append({"measure": "in-domain STFT / direction", "goal": "<= 1.122 / >= 0.79", "values": values,
                     "met": values[0] <= IN_DOMAIN_GOAL["stft"] and values[1] >= IN_DOMAIN_GOAL["direction_acc"]})
    return rows


def check(ood_pairs: Sequence[Tuple[str, str]], lateral: Optional[Sequence[Tuple[str, str]]],
          in_domain: Optional[Tuple[str, str]], ood_se: float = 2.0, in_domain_se: float = 1.0,
          min_lateral_level_ratio: Optional[float] = None, judge_rows: str = "every-set",
          direction_se: Optional[float] = None) -> dict:
    """The goals of both models and the bar's tests (see the module docstring). ``lateral``: one
    ``(candidate, reference)`` pair, or a list of them pooled into one lateral set;
    ``direction_se``: the paired direction test's margin in standard errors (None: reported only)."""
    if not ood_pairs:
        raise ValueError("give at least one --ood CANDIDATE REFERENCE pair")
    if ood_se < 0 or in_domain_se < 0 or (direction_se is not None and not direction_se >= 0):
        raise ValueError(f"standard-error margins must be >= 0, got {ood_se}, {in_domain_se}, {direction_se}")
    if lateral and isinstance(lateral[0], str):    # one pair
        lateral = [tuple(lateral)]
    lateral = list(lateral or [])
    lateral_evs = [(load_evaluation(c), load_evaluation(r)) for c, r in lateral]
    loaded = {side: {"ood": [load_evaluation(p[i]) for p in ood_pairs],
                     "lateral": pooled_lateral([e[i] for e in lateral_evs], [p[i] for p in lateral])
                     if lateral else None,
                     "in_domain": load_evaluation(in_domain[i]) if in_domain else None}
              for i, side in enumerate(("candidate", "reference"))}
    lateral_name = "lateral" if len(lateral) < 2 else f"lateral ({len(lateral)} sets pooled)"
    names = [f"ood set {k + 1}" for k in range(len(ood_pairs))] + ([lateral_name] if lateral else [])
    goals = {side: goal_rows(d["ood"], d["lateral"], d["in_domain"], names, judge_rows) for side, d in loaded.items()}
    tests: Dict[str, dict] = {}
    cand_ood = pooled(loaded["candidate"]["ood"], [p[0] for p in ood_pairs])
    ref_ood = pooled(loaded["reference"]["ood"], [p[1] for p in ood_pairs])
    row = paired_table(cand_ood, ref_ood, ["stft"])[0]
    tests["held-out STFT better by more than the margin"] = {
        "paired": row, "standard_errors": -row["mean"] / row["sem"] if row["sem"] > 0 else float("inf"),
        "margin": ood_se, "passed": row["mean"] < 0 and -row["mean"] > ood_se * row["sem"]}
    if in_domain:
        row = paired_table(loaded["candidate"]["in_domain"], loaded["reference"]["in_domain"], ["stft"])[0]
        meets = goals["candidate"][-1]["met"]
        tests["in-domain not worse by more than the margin, and meeting its goal"] = {
            "paired": row, "margin": in_domain_se, "meets_goal": meets,
            "passed": row["mean"] <= in_domain_se * row["sem"] and meets}
    turned = [c["measure"] for c, r in zip(goals["candidate"], goals["reference"]) if r["met"] and not c["met"]]
    tests["no met goal row turned unmet"] = {"turned_unmet": turned, "passed": not turned}
    direction = None    # summary-only lateral evaluations cannot be paired per clip: not reported
    if lateral_evs and all(has_clip_records(ev) for pair in lateral_evs for ev in pair):
        direction = paired_direction(lateral_evs, lateral)
    if direction_se is not None:
        if direction is None:
            raise ValueError("--direction-se needs --lateral evaluations with per-clip localisation records")
        for kind, d in direction.items():
            tests[f"direction, {kind}s, not worse paired by more than the margin"] = {
                "paired_direction": d, "margin": direction_se,
                "passed": d["mean"] >= -direction_se * d["sem"] and (d["sem"] > 0 or d["mean"] >= 0)}
    if min_lateral_level_ratio is not None:
        if not lateral:
            raise ValueError("--min-lateral-level-ratio needs --lateral")
        value = localisation(loaded["candidate"]["lateral"], "lateral")["ld_ratio_median"]
        tests["lateral level ratio not lower than the floor"] = {
            "value": value, "floor": min_lateral_level_ratio,
            "passed": value is not None and value >= min_lateral_level_ratio}
    return {"sets": names, "judge_rows": judge_rows, "goals": goals, "paired_direction": direction,
            "tests": tests, "passed": all(t["passed"] for t in tests.values())}


def format_report(result: dict) -> str:
    def fmt(values):
        return " / ".join("-" if v is None else f"{v:.3f}" for v in values)

    judged = "" if result.get("judge_rows", "every-set") == "every-set" else " (localisation rows met on the last alone)"
    lines = [f"sets: {', '.join(result['sets'])}{judged}", "", "| measure | goal | reference | met | candidate | met |",
             "|---|---|---|---|---|---|"]
    for c, r in zip(result["goals"]["candidate"], result["goals"]["reference"]):
        lines.append(f"| {c['measure']} | {c['goal']} | {fmt(r['values'])} | {'yes' if r['met'] else 'no'} | "
                     f"{fmt(c['values'])} | {'yes' if c['met'] else 'no'} |")
    lines.append("")
    for kind, d in (result.get("paired_direction") or {}).items():
        lines.append(f"- paired direction, {kind}s (pooled lateral): {d['mean']:+.3f} ± {d['sem']:.3f} "
                     f"({d['clips']} clips; on the right side: candidate {d['candidate']}, reference {d['reference']})")
    for name, t in result["tests"].items():
        detail = ""
        if "paired" in t:
            p = t["paired"]
            detail = f": {100 * p['relative']:+.1f} % ({p['mean']:+.4f} ± {p['sem']:.4f}, {p['clips']} clips)"
        elif "turned_unmet" in t:
            detail = f": {', '.join(t['turned_unmet']) or 'none'}"
        elif "paired_direction" in t:
            d = t["paired_direction"]
            detail = f": {d['mean']:+.3f} ± {d['sem']:.3f} (margin {t['margin']} s.e.)"
        elif "value" in t:
            detail = f": {'-' if t['value'] is None else format(t['value'], '.3f')} (floor {t['floor']})"
        lines.append(f"- {name}{detail}: {'passed' if t['passed'] else 'FAILED'}")
    lines.append(f"\nship rule: {'passed' if result['passed'] else 'not passed'} (speed and size rows: the benchmarks)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.ship_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--ood", nargs=2, action="append", default=[], metavar=("CANDIDATE", "REFERENCE"),
                   help="evaluations of a part of the held-out split (repeatable)")
    p.add_argument("--lateral", nargs=2, action="append", default=[], metavar=("CANDIDATE", "REFERENCE"),
                   help="the --lateral-only evaluations (repeatable: their clips pooled into one lateral set)")
    p.add_argument("--judge-rows", choices=JUDGE_ROWS, default="every-set",
                   help="localisation rows met on every set (default) or on the (pooled) lateral set alone")
    p.add_argument("--in-domain", nargs=2, metavar=("CANDIDATE", "REFERENCE"), help="the in-domain evaluations")
    p.add_argument("--ood-se", type=float, default=2.0, help="standard errors the held-out gain must exceed")
    p.add_argument("--in-domain-se", type=float, default=1.0, help="standard errors in-domain may be worse by")
    p.add_argument("--min-lateral-level-ratio", type=float, help="a floor for the lateral set's level ratio")
    p.add_argument("--direction-se", type=float,
                   help="test each kind's direction on the lateral clips, paired: not worse by more than this "
                        "many standard errors (without it the paired figures are only reported)")
    p.add_argument("--out", help="write the result as JSON")
    a = p.parse_args(argv)
    try:
        result = check(a.ood, a.lateral, a.in_domain, a.ood_se, a.in_domain_se, a.min_lateral_level_ratio,
                       a.judge_rows, a.direction_se)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
