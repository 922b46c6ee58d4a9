"""Where the streamed and the offline protocol disagree: per-clip STFT, grouped by scene.

An experiment kept so that its figures can be reproduced (docs/results.md, "What the visual path
should learn in joint fine-tuning"), not a command of the library. For two models, each scored
by ``python -m streambin.train.evaluate`` both offline (``--checkpoint``) and streamed
(``--bundle``) on the same clips, it prints per scene group (room or anechoic, moving or static,
the number of sounding sources, read from the split's sidecars) the mean per-clip
streamed-minus-offline STFT of each model, and the candidate-minus-reference difference under
each protocol. Files of several halves of a split may be given comma-separated::

    python scripts/experiments/protocol_gap_by_scene.py --data /work/data/ood_val \\
        --reference-streamed docs/results/ood_ma_sg1179.json,docs/results/ood_last100_ma_sg1179.json \\
        --reference-offline docs/results/ood_offline_ma_sg1179.json,docs/results/ood_last100_offline_ma_sg1179.json \\
        --candidate-streamed docs/results/ood_frozentrunk.json,docs/results/ood_last100_frozentrunk.json \\
        --candidate-offline docs/results/ood_offline_frozentrunk.json,docs/results/ood_last100_offline_frozentrunk.json
"""
import argparse
import json
from pathlib import Path

import numpy as np

from streambin.train.paired import pooled


def clip_stft(paths: str) -> dict:
    """``{clip: model STFT}`` over the comma-separated evaluation files (a clip at most once)."""
    names = paths.split(",")
    try:
        ev = pooled([json.loads(Path(p).read_text()) for p in names], names)
    except ValueError as exc:
        raise SystemExit(str(exc))
    return {c["clip"]: c["metrics"]["model"]["stft"] for c in ev["per_clip"]}


def scene_group(meta: dict) -> str:
    sounding = [s for s in meta["sources"] if not s.get("silent", False)]
    room = "room" if meta.get("room") else "anechoic"
    motion = "moving" if any(s.get("moving", False) for s in sounding) else "static"
    return f"{room}, {motion}, {len(sounding)} source{'s' if len(sounding) > 1 else ''}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="the split's root (its meta/ sidecars)")
    for name in ("reference-streamed", "reference-offline", "candidate-streamed", "candidate-offline"):
        p.add_argument(f"--{name}", required=True, help="evaluation JSON(s), comma-separated")
    a = p.parse_args()
    rs, ro = clip_stft(a.reference_streamed), clip_stft(a.reference_offline)
    cs, co = clip_stft(a.candidate_streamed), clip_stft(a.candidate_offline)
    clips = sorted(set(rs) & set(ro) & set(cs) & set(co))
    if not clips:
        raise SystemExit("no clip is in all four evaluations")
    groups: dict = {}
    for c in clips:
        meta = json.loads((a.data / "meta" / f"{c}.json").read_text())
        groups.setdefault(scene_group(meta), []).append((rs[c] - ro[c], cs[c] - co[c], cs[c] - rs[c], co[c] - ro[c]))
    print(f"{len(clips)} clips; mean per-clip STFT differences\n")
    print("| scenes | clips | streamed - offline: reference | candidate | candidate - reference: streamed | offline |")
    print("|---|---|---|---|---|---|")
    for name, rows in sorted(groups.items()):
        m = np.mean(rows, axis=0)
        print(f"| {name} | {len(rows)} | {m[0]:+.3f} | {m[1]:+.3f} | {m[2]:+.3f} | {m[3]:+.3f} |")


if __name__ == "__main__":
    main()
