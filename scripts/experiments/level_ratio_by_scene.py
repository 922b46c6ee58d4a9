"""Median predicted / true level difference of streamed evaluations' lateral clips, split by
scene kind and by what each clip's meta says of it (room, head kind, silent objects).

    PYTHONPATH=. python scripts/experiments/level_ratio_by_scene.py \\
        --set heldout docs/results/ood_renderer.json /work/data/ood_val \\
        --set heldout docs/results/ood_confirm_default.json /work/data/ood_confirm \\
        --set trainpool docs/results/blendfit_lateral_default.json /work/data/blendfit

Evaluations given the same set name are pooled (a clip of one data root counted once). Clips
count where they qualify (``localisation_eval.qualify``) and their true level difference is at
least ``MIN_TARGET_LD_DB``, as the goal's median does.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np

from streambin.train.localisation_eval import MIN_TARGET_LD_DB

FACTORS = {
    "room": lambda meta: "room" if meta.get("room") else "free field",
    "head": lambda meta: (meta.get("head_info") or {}).get("kind", "?"),
    "silent objects": lambda meta: "with" if any(s.get("silent") for s in meta["sources"]) else "without",
}


def rows_of(evaluation: Path, data_root: Path):
    """``(scene kind, meta, ratio)`` of each counted lateral clip of one evaluation JSON."""
    for r in json.loads(evaluation.read_text())["localisation"]["per_clip"]:
        if r["qualifies"] and abs(r["ld_target_db"]) >= MIN_TARGET_LD_DB:
            meta = json.loads((data_root / "meta" / f"{r['clip']}.json").read_text())
            yield r["scene_kind"], meta, r["ld_pred_db"] / r["ld_target_db"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "EVALUATION", "DATA_ROOT"))
    p.add_argument("--out", help="also write the table as JSON")
    args = p.parse_args(argv)
    sets = collections.defaultdict(dict)
    for name, evaluation, root in args.set:
        for kind, meta, ratio in rows_of(Path(evaluation), Path(root)):
            sets[name][(root, meta["clip"])] = (kind, meta, ratio)
    table = {}
    for name, clips in sets.items():
        rows = list(clips.values())
        table[name] = {"all": [len(rows), float(np.median([r for _, _, r in rows]))]}
        for factor, of in [("scene kind", lambda meta: "")] + list(FACTORS.items()):
            groups = collections.defaultdict(list)
            for kind, meta, ratio in rows:
                groups[f"{kind} {of(meta)}".strip()].append(ratio)
            table[name][factor] = {g: [len(v), float(np.median(v))] for g, v in sorted(groups.items())}
        print(f"== {name}: {len(rows)} clips, median ratio {table[name]['all'][1]:.2f}")
        for factor, groups in list(table[name].items())[1:]:
            print(f"  {factor}: " + ", ".join(f"{g} {v[1]:.2f} ({v[0]})" for g, v in groups.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
