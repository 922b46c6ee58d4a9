"""The methods comparison table (docs/results.md): evaluation JSONs + training runs -> Markdown.

Each method is one training run (``<runs>/<name>/``: ``best.pt`` and ``log.csv``) and its
evaluation on the same test clips (``<evals>/<name>.json`` written by
``python -m streambin.train.evaluate --out``). The table has the three baselines (from the first
method's evaluation: Mono-Mono, Audio-only, Flipped-visual) and one row per method: every metric
as mean ± standard error over clips, training wall time, steps, and parameters (the exported
generator's, and all trained ones including the recipe's training-only heads). A second table
gives each method's per-clip paired difference to a reference method (default the first) on
STFT and ENV distance, which is what "better by how much" needs: the clips are shared, so the
paired standard error is much smaller than the per-method ones. Optional: the semi-supervised
curve (labelled fraction vs STFT distance), each fraction beside its supervised control
(``--curve NAME:FRACTION:CONTROL``), and a seed table (``--seeds METHOD:RUN``: a method's runs
with other seeds side by side, so a difference between methods can be set against the one
between seeds). When the evaluations carry the localisation measures
(:mod:`streambin.train.localisation_eval`), a third table puts them side by side. ``--suffix``
picks one of several evaluations per run (``<evals>/<name><suffix>.json``, e.g. ``_indomain``
and ``_ood``).

    python -m streambin.train.compare --runs runs/compare --evals docs/results/compare \\
        --methods mono2binaural apnet multitask sagm avconsistency geometry sepstereo \\
        --curve avconsistency:1.0 avc_frac0.5:0.5:avc_frac0.5_control avc_frac0.25:0.25:avc_frac0.25_control \\
        --seeds mono2binaural:mono2binaural_seed1 --out docs/results/compare.md
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from streambin.train.localisation_eval import SCENE_KINDS

BASELINES = (("mono_mono", "Mono-Mono"), ("audio_only", "Audio-only (grey frame)"),
             ("flipped_visual", "Flipped-visual"))
METRIC_LABELS = {"stft": "STFT", "env": "ENV", "wave_l2": "Wave L2", "mrstft": "MRSTFT", "snr": "SNR (dB)",
                 "spl": "SPL (dB)", "direction_acc": "Dir. acc."}


def load_eval(path: str) -> dict:
    """An evaluation JSON (streambin.train.evaluate --out); checks the fields the tables use."""
    try:
        with open(path, encoding="utf-8") as f:
            ev = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read evaluation results {path}: {exc}") from exc
    for key in ("metrics", "summary", "per_clip", "settings", "higher_is_better"):
        if key not in ev:
            raise ValueError(f"{path} is not a streambin.train.evaluate result: no {key!r}")
    return ev


def run_info(run_dir: str) -> dict:
    """Training wall time (s, last ``elapsed_s`` of log.csv), steps and parameter counts of a run."""
    import torch

    from streambin.train.checkpoint import GENERATOR_PREFIX, read_checkpoint

    log_path = os.path.join(run_dir, "log.csv")
    rows = list(csv.DictReader(open(log_path))) if os.path.isfile(log_path) else []
    if not rows:
        raise ValueError(f"{log_path}: no training log")
    ckpt_path = os.path.join(run_dir, "best.pt")
    ckpt = read_checkpoint(ckpt_path, map_location="cpu")
    state = ckpt["model"]
    n_all = sum(int(v.numel()) for k, v in state.items() if torch.is_floating_point(v) and "running_" not in k)
    n_gen = sum(int(v.numel()) for k, v in state.items()
                if k.startswith(GENERATOR_PREFIX) and torch.is_floating_point(v) and "running_" not in k)
    return {"train_s": float(rows[-1]["elapsed_s"]), "steps": max(int(r["step"]) for r in rows),
            "best_step": int(ckpt["step"]), "params_generator": n_gen, "params_trained": n_all,
            "recipe": ckpt["recipe"]}


def _cell(s: dict) -> str:
    if s["mean"] is None or not math.isfinite(s["mean"]):
        return "-"
    sem = s.get("sem")
    return f"{s['mean']:.4f}" + (f" ± {sem:.4f}" if sem is not None and math.isfinite(sem) else "")


def _fixed(x: Optional[float], digits: int) -> str:
    return f"{x:.{digits}f}" if x is not None and math.isfinite(x) else "-"


def _clip_values(ev: dict, condition: str, metric: str) -> Dict[str, float]:
    out = {}
    for c in ev["per_clip"]:
        v = c["metrics"][condition][metric]
        if v is not None and math.isfinite(v):
            out[c["clip"]] = float(v)
    return out


def paired_difference(ev: dict, ref: dict, metric: str, condition: str = "model") -> Tuple[float, float, float, int]:
    """Mean and standard error of per-clip ``ev - ref`` on the shared clips, the mean difference
    relative to ref's mean there, and the number of clips."""
    a, b = _clip_values(ev, condition, metric), _clip_values(ref, condition, metric)
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError(f"fewer than 2 shared clips with finite {metric} to compare")
    d = np.array([a[c] - b[c] for c in shared])
    ref_mean = float(np.mean([b[c] for c in shared]))
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), float(d.mean() / ref_mean), len(d)


def build_tables(methods: Sequence[Tuple[str, dict, dict]], reference: Optional[str] = None,
                 curve: Sequence["CurvePoint"] = ()) -> str:
    """Markdown: the main table, the paired differences and (if given) the semi-supervised curve.

    ``methods``: (name, evaluation, run info) in table order; ``reference``: the method the
    paired differences are taken against (default the first); ``curve``: see :func:`curve_table`."""
    if not methods:
        raise ValueError("no methods to tabulate")
    names = [m[0] for m in methods]
    reference = reference or names[0]
    if reference not in names:
        raise ValueError(f"reference method {reference!r} is not among {names}")
    first = methods[0][1]
    metrics = first["metrics"]
    clips = sorted(c["clip"] for c in first["per_clip"])
    for name, ev, _ in methods:
        if sorted(c["clip"] for c in ev["per_clip"]) != clips:
            raise ValueError(f"{name}: evaluated on other clips than {names[0]} (the table needs the same clips)")
    hib = set(first["higher_is_better"])
    head = ["Method"] + [f"{METRIC_LABELS.get(m, m)} {'↑' if m in hib else '↓'}" for m in metrics] + \
        ["Train time", "Steps (best)", "Params: exported / trained"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cond, label in BASELINES:
        if cond in first["summary"]:
            lines.append("| " + " | ".join([f"{label} (from {names[0]})"] +
                                            [_cell(first["summary"][cond][m]) for m in metrics] + ["-", "-", "-"]) + " |")
    for name, ev, info in methods:
        cells = [name] + [_cell(ev["summary"]["model"][m]) for m in metrics]
        cells += [f"{info['train_s'] / 60:.0f} min", f"{info['steps']} ({info['best_step']})",
                  f"{info['params_generator'] / 1e6:.2f} M / {info['params_trained'] / 1e6:.2f} M"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"{len(clips)} clips (the same for every row); mean ± standard error over clips.")
    lines.append("")
    ref_ev = next(ev for n, ev, _ in methods if n == reference)
    lines += [f"Paired per-clip differences to {reference} (negative = better on these distances):", "",
              "| Method | ΔSTFT (± SE) | ΔSTFT % | ΔENV (± SE) | ΔENV % | flipped frames: STFT vs true |",
              "|---|---|---|---|---|---|"]
    for name, ev, _ in methods:
        if name == reference:
            continue
        s = paired_difference(ev, ref_ev, "stft")
        e = paired_difference(ev, ref_ev, "env")
        flip = ev["summary"]["flipped_visual"]["stft"]["mean"] / ev["summary"]["model"]["stft"]["mean"]
        lines.append(f"| {name} | {s[0]:+.4f} ± {s[1]:.4f} | {100 * s[2]:+.1f}% | {e[0]:+.4f} ± {e[1]:.4f} | "
                     f"{100 * e[2]:+.1f}% | {flip:.2f}x |")
    flip = ref_ev["summary"]["flipped_visual"]["stft"]["mean"] / ref_ev["summary"]["model"]["stft"]["mean"]
    lines.append(f"| {reference} (reference) | 0 | 0 | 0 | 0 | {flip:.2f}x |")
    if curve:
        lines += ["", curve_table(curve).rstrip("\n")]
    return "\n".join(lines) + "\n"


class CurvePoint(NamedTuple):
    """One labelled fraction of the semi-supervised curve: the run trained with the unlabelled
    clips and, optionally, its supervised control (the same labelled clips, no unlabelled ones)."""

    fraction: float
    name: str
    evaluation: dict
    control_name: Optional[str] = None
    control_evaluation: Optional[dict] = None


def curve_table(curve: Sequence[CurvePoint]) -> str:
    """Markdown: STFT, ENV and direction accuracy per labelled fraction, and where a control was
    trained, its STFT and the paired per-clip difference run - control: what the unlabelled clips
    (the consistency loss) add beyond the labelled ones."""
    lines = ["Semi-supervised curve (fraction of training clips with binaural ground truth; the control "
             "trains on the same labelled clips without the unlabelled ones):", "",
             "| labelled fraction | run | STFT ↓ | ENV ↓ | Dir. acc. ↑ | control | control STFT ↓ | "
             "run - control: ΔSTFT (± SE) | ΔSTFT % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(curve, key=lambda c: c.fraction):
        s = p.evaluation["summary"]["model"]
        cells = [f"{p.fraction:g}", p.name, _cell(s["stft"]), _cell(s["env"]), _cell(s["direction_acc"])]
        if p.control_evaluation is None:
            cells += ["-", "-", "-", "-"]
        else:
            d, se, rel, _ = paired_difference(p.evaluation, p.control_evaluation, "stft")
            cells += [p.control_name or "-", _cell(p.control_evaluation["summary"]["model"]["stft"]),
                      f"{d:+.4f} ± {se:.4f}", f"{100 * rel:+.1f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _mean_over_seeds(evals: Sequence[dict], metric: str) -> dict:
    """A pseudo-evaluation whose per-clip model value is the mean over ``evals`` (clips all share)."""
    per = [_clip_values(ev, "model", metric) for ev in evals]
    shared = sorted(set.intersection(*(set(p) for p in per)))
    return {"per_clip": [{"clip": c, "metrics": {"model": {metric: float(np.mean([p[c] for p in per]))}}}
                         for c in shared]}


def seed_table(methods: Sequence[Tuple[str, Sequence[Tuple[str, dict]]]], reference: Optional[str] = None) -> str:
    """Markdown: each method's runs with different seeds side by side, the seed-to-seed paired
    STFT difference (how much a seed alone moves a method) and the paired STFT difference of the
    seed-averaged method to the seed-averaged reference.

    ``methods``: (method, [(run name, evaluation), ...] with at least two seeds each);
    ``reference``: the method the differences are taken against (default the first)."""
    if not methods:
        raise ValueError("no methods for the seed table")
    for name, runs in methods:
        if len(runs) < 2:
            raise ValueError(f"{name}: the seed table needs at least two seeds, got {len(runs)}")
    names = [m[0] for m in methods]
    reference = reference or names[0]
    if reference not in names:
        raise ValueError(f"reference method {reference!r} is not among {names}")
    ref_mean = _mean_over_seeds([ev for _, ev in dict(methods)[reference]], "stft")
    lines = ["| Method | runs | STFT per seed ↓ | Dir. acc. per seed ↑ | seed 2 - seed 1: ΔSTFT (± SE) | "
             f"seed mean - {reference} seed mean: ΔSTFT (± SE) | % |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in methods:
        stft = " / ".join(_fixed(ev["summary"]["model"]["stft"]["mean"], 4) for _, ev in runs)
        acc = " / ".join(_fixed(ev["summary"]["model"]["direction_acc"]["mean"], 2) for _, ev in runs)
        d, se, _, _ = paired_difference(runs[1][1], runs[0][1], "stft")
        cells = [name, ", ".join(r for r, _ in runs), stft, acc, f"{d:+.4f} ± {se:.4f}"]
        if name == reference:
            cells += ["0 (reference)", "0"]
        else:
            dm, sem, rel, _ = paired_difference(_mean_over_seeds([ev for _, ev in runs], "stft"), ref_mean, "stft")
            cells += [f"{dm:+.4f} ± {sem:.4f}", f"{100 * rel:+.1f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    n = len(ref_mean["per_clip"])
    lines += ["", f"{n} clips; differences paired per clip, ± standard error over clips."]
    return "\n".join(lines) + "\n"


def _rate_cell(rate: Mapping) -> str:
    if not rate["n"]:
        return "-"
    return f"{rate['rate']:.2f} ± {rate['sem']:.2f}"


def localisation_table(methods: Sequence[Tuple[str, dict]]) -> str:
    """Markdown: the localisation measures of each method's evaluation, one row per method.

    ``methods``: (name, evaluation with a ``"localisation"`` entry). Columns: direction accuracy
    per scene kind and overall (rate ± binomial SE), mirror flip rate, the median signed
    level-difference ratio and the mean absolute level difference with grey frames."""
    rows = [(n, ev["localisation"]["summary"]) for n, ev in methods if "localisation" in ev]
    if not rows:
        return ""
    kinds = [k for k in SCENE_KINDS if any(s["direction_acc"][k]["n"] for _, s in rows)]
    head = ["Method"] + [f"Dir. acc. {k} ↑" for k in kinds] + \
        ["Dir. acc. all ↑", "Mirror flips ↑", "LD ratio (1 = true)", "Grey-frame |LD| (dB) ↓"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows:
        ratio = s["ld_ratio_median"]
        cells = [name] + [_rate_cell(s["direction_acc"][k]) for k in kinds]
        cells += [_rate_cell(s["direction_acc"]["overall"]), _rate_cell(s["mirror_flip_rate"]),
                  f"{ratio:.2f}" if math.isfinite(ratio) else "-",
                  f"{s['grey_bias_abs_db']:.2f}" if s["grey_n"] else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    first = rows[0][1]
    counts = ", ".join(f"{first['direction_acc'][k]['n']} {k}" for k in kinds)
    lines += ["", f"Lateral single-source clips: {first['n_lateral_single']} ({counts}) of {first['n_clips']}; "
              f"level-difference ratio over {first['ld_ratio_n']} of them; rates ± binomial standard error."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.compare", description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, help="directory of the training runs (<runs>/<name>/)")
    p.add_argument("--evals", required=True, help="directory of the evaluation JSONs (<evals>/<name><suffix>.json)")
    p.add_argument("--suffix", default="", help="evaluation file name suffix, e.g. _ood (default none)")
    p.add_argument("--methods", nargs="+", required=True, help="run names, in table order")
    p.add_argument("--reference", default=None, help="method for the paired differences (default the first)")
    p.add_argument("--curve", nargs="*", default=[], metavar="NAME:FRACTION[:CONTROL]",
                   help="semi-supervised runs, their labelled fractions and (optional) supervised controls")
    p.add_argument("--seeds", nargs="*", default=[], metavar="METHOD:RUN[:RUN...]",
                   help="second (third ...) seeds of a method in --methods: a table of the method's runs side by side")
    p.add_argument("--out", default=None, help="Markdown file (default: print)")
    a = p.parse_args(argv)
    try:
        methods = [(n, load_eval(os.path.join(a.evals, f"{n}{a.suffix}.json")), run_info(os.path.join(a.runs, n)))
                   for n in a.methods]
        def evaluation(name: str) -> dict:
            return load_eval(os.path.join(a.evals, f"{name}{a.suffix}.json"))

        curve = []
        for item in a.curve:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise ValueError(f"--curve entries are NAME:FRACTION[:CONTROL], got {item!r}")
            try:
                frac = float(parts[1])
            except ValueError:
                raise ValueError(f"--curve {item!r}: the fraction {parts[1]!r} is not a number") from None
            control = parts[2] if len(parts) == 3 else None
            curve.append(CurvePoint(frac, parts[0], evaluation(parts[0]), control,
                                    evaluation(control) if control else None))
        text = build_tables(methods, a.reference, curve)
        seeded = []
        by_name = {n: ev for n, ev, _ in methods}
        for item in a.seeds:
            parts = item.split(":")
            if len(parts) < 2 or not all(parts):
                raise ValueError(f"--seeds entries are METHOD:RUN[:RUN...], got {item!r}")
            if parts[0] not in by_name:
                raise ValueError(f"--seeds {item!r}: {parts[0]!r} is not among --methods")
            seeded.append((parts[0], [(parts[0], by_name[parts[0]])] + [(r, evaluation(r)) for r in parts[1:]]))
        if seeded:
            text += "\nSeeds (the same method trained again with another seed):\n\n" + seed_table(seeded)
        loc = localisation_table([(n, ev) for n, ev, _ in methods])
        if loc:
            text += "\nLocalisation measures (streambin.train.localisation_eval):\n\n" + loc
    except (ValueError, OSError) as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
