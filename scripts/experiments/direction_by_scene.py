"""Direction accuracy of streamed evaluations' lateral single-source clips, the output's and the
truth's own, split by scene kind and by what each clip's meta says of it (room, head kind, silent
objects, the sound's band: ``level_ratio_by_scene.FACTORS``).

    PYTHONPATH=. python scripts/experiments/direction_by_scene.py \\
        --set held-out docs/results/ood_renderer.json /work/data/ood_val \\
        --set held-out docs/results/ood_confirm_default.json /work/data/ood_confirm \\
        --out docs/results/direction_by_scene.json

The goal's measure (``localisation_eval.summarize``): a clip is right when the sign of its whole
level difference is the source's side. The truth itself misses where a room's reflections leave
its level difference near zero on the other side, so each group shows the truth's rate beside
the output's: the output cannot be expected above it. Evaluations given the same set name are
pooled (a clip of one data root counted once).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the factors' owner, beside this file
from level_ratio_by_scene import FACTORS, mid_centroid_hz  # noqa: E402

from streambin.train.localisation_eval import binomial_rate  # noqa: E402


def rows_of(evaluation: Path, data_root: Path):
    """``(scene kind, meta, output right, truth right)`` of each lateral single-source clip."""
    for r in json.loads(evaluation.read_text())["localisation"]["per_clip"]:
        if r["qualifies"]:
            meta = json.loads((data_root / "meta" / f"{r['clip']}.json").read_text())
            meta["mid_centroid_hz"] = mid_centroid_hz(data_root / "binaural_audios" / f"{r['clip']}.wav")
            side = np.sign(r["azimuth_deg"])
            yield (r["scene_kind"], meta, bool(np.sign(r["ld_pred_db"]) == side),
                   bool(np.sign(r["ld_target_db"]) == side))


def table_of(rows) -> dict:
    """``{"all": cell, factor: {group: cell}}`` with cell ``{"output": rate, "truth": rate}``
    (:func:`binomial_rate`), groups named by scene kind and the factor's value."""
    def cell(group):
        return {"output": binomial_rate([r[2] for r in group]), "truth": binomial_rate([r[3] for r in group])}

    table = {"all": cell(rows)}
    for factor, of in [("scene kind", lambda meta: "")] + list(FACTORS.items()):
        groups = collections.defaultdict(list)
        for row in rows:
            groups[f"{row[0]} {of(row[1])}".strip()].append(row)
        table[factor] = {g: cell(v) for g, v in sorted(groups.items())}
    return table


def _shown(c: dict) -> str:
    o, t = c["output"], c["truth"]
    return f"{o['rate']:.3f} ± {o['sem']:.3f} (truth {t['rate']:.3f}; {o['n']})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "EVALUATION", "DATA_ROOT"))
    p.add_argument("--out", help="also write the table as JSON")
    args = p.parse_args(argv)
    sets = collections.defaultdict(dict)
    for name, evaluation, root in args.set:
        for row in rows_of(Path(evaluation), Path(root)):
            sets[name][(root, row[1]["clip"])] = row
    if not any(sets.values()):
        p.error("no lateral single-source clip in the evaluations given")
    table = {name: table_of(list(clips.values())) for name, clips in sets.items()}
    for name, t in table.items():
        print(f"== {name}: {_shown(t['all'])}")
        for factor, groups in list(t.items())[1:]:
            print(f"  {factor}: " + "; ".join(f"{g} {_shown(c)}" for g, c in groups.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
