"""When does the object localiser put a single sounding source on the wrong side, and why?

The blend that follows the room (docs/results.md, "Blend weights that follow the room") leans on
the rendered side in free field, so the localiser's wrong-side frames decide more of the output's
direction there. On train-pool sets only (their cached peaks, ``confidence_blend.py --cache``):
for every clip with one sounding, static source beyond ``--min-azimuth`` degrees, the share of its
frames whose strongest mirror-averaged peak lies on the other side; per scene kind and by whether
the picture holds silent objects (distractors), and for the wrong frames whether a silent object
lies on the peak's side within ``--near`` degrees of it (the localiser found the wrong object)
or none does (it misplaced the right one, or saw something that is no object). Also how far the
weighed peaks (``score ** --power``, as the engine weighs them) point to the source's side: the
mean net weight on its side (-1 .. 1) and the median ratio of the weighed peaks' mean sine of
azimuth to the source's (1: the rendered azimuth where the source is; below 1, drawn in). Held-out
sets may be given as a diagnostic (nothing is chosen on this script).

    PYTHONPATH=. python scripts/experiments/localiser_failures.py --cache /work/data/cache/confidence_blend \\
        --data /work/data/blendfit:all /work/data/blendfit_leg:all /work/data/probefit:train \\
        --out docs/results/localiser_failures.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def clip_rows(root: Path, split: str, cache: Path, min_azimuth: float, near: float, power: float = 4.0):
    """Per qualifying clip: scene kind, distractors, frames, wrong-side frames and, of those, the
    ones with a silent object on the peak's side within ``near`` degrees."""
    names = [c.strip() for c in (root / "splits" / f"{split}.txt").read_text().splitlines() if c.strip()]
    rows = []
    for name in names:
        path = cache / root.name / f"{name}.npz"
        if not path.is_file():
            continue
        meta = json.loads((root / "meta" / f"{name}.json").read_text())
        sounding = [s for s in meta["sources"] if not s.get("silent")]
        silent = [s for s in meta["sources"] if s.get("silent")]
        if len(sounding) != 1 or sounding[0].get("moving"):
            continue
        truth = np.asarray(sounding[0]["azimuth_deg"], np.float64)
        if np.abs(truth).min() < min_azimuth:
            continue
        with np.load(path) as z:
            azimuths = z["azimuths"].astype(np.float64)
            weights = np.maximum(z["scores"].astype(np.float64), 1e-12) ** power
        weights /= weights.sum(1, keepdims=True)
        n = min(len(azimuths), len(truth))
        azimuths, weights, truth = azimuths[:n], weights[:n], truth[:n]
        top = azimuths[:, 0]
        wrong = np.sign(top) != np.sign(truth)
        by_distractor = 0
        for i in np.flatnonzero(wrong):
            for s in silent:
                az = np.asarray(s["azimuth_deg"], np.float64)
                a = az[min(i, len(az) - 1)]
                if np.sign(a) == np.sign(top[i]) and abs(a - top[i]) <= near:
                    by_distractor += 1
                    break
        rows.append({"clip": name, "kind": meta.get("scene_kind"), "distractors": len(silent),
                     "room": bool(meta.get("room")), "frames": int(n), "wrong": int(wrong.sum()),
                     "wrong_near_distractor": by_distractor, "clip_wrong": bool(wrong.mean() > 0.5),
                     "true_side_weight": float(((weights * np.sign(azimuths)).sum(1) * np.sign(truth)).mean()),
                     "sine_ratio": float(np.median((weights * np.sin(np.deg2rad(azimuths))).sum(1)
                                                   / np.sin(np.deg2rad(truth))))})
    return rows


def summarise(rows):
    if not rows:
        return None
    frames = sum(r["frames"] for r in rows)
    wrong = sum(r["wrong"] for r in rows)
    return {"clips": len(rows), "frames": frames, "wrong_frame_share": wrong / frames,
            "clips_mostly_wrong": sum(r["clip_wrong"] for r in rows),
            "wrong_frames_near_a_distractor": (sum(r["wrong_near_distractor"] for r in rows) / wrong) if wrong else None,
            "true_side_weight": float(np.mean([r["true_side_weight"] for r in rows])),
            "sine_ratio_median": float(np.median([r["sine_ratio"] for r in rows]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="confidence_blend.py's --cache")
    p.add_argument("--data", nargs="+", required=True, help="DATA_ROOT:SPLIT sets with cached peaks")
    p.add_argument("--power", type=float, default=4.0, help="peaks weighed by score ** power (the engine's 4)")
    p.add_argument("--min-azimuth", type=float, default=10.0)
    p.add_argument("--near", type=float, default=10.0, help="degrees between a wrong peak and a silent object")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    rows = []
    for spec in a.data:
        root, split = spec.rsplit(":", 1)
        rows += [{**r, "set": spec} for r in clip_rows(Path(root), split, a.cache, a.min_azimuth, a.near, a.power)]
    groups = {"all": rows}
    for kind in sorted({r["kind"] for r in rows}):
        for room in (False, True):
            for d in (False, True):
                groups[f"{kind}, {'room' if room else 'free field'}, {'distractors' if d else 'no distractors'}"] = [
                    r for r in rows if r["kind"] == kind and r["room"] == room and (r["distractors"] > 0) == d]
    result = {"command": "python " + " ".join(sys.argv), "data": a.data,
              "summary": {g: summarise(rs) for g, rs in groups.items()}, "per_clip": rows}
    for g, s in result["summary"].items():
        if s:
            near = s["wrong_frames_near_a_distractor"]
            print(f"{g:45s} {s['clips']:4d} clips: {s['wrong_frame_share']:.3f} of frames on the wrong side, "
                  f"{s['clips_mostly_wrong']} clips mostly wrong; wrong frames near a distractor "
                  f"{'-' if near is None else f'{near:.2f}'}; weight on its side {s['true_side_weight']:+.2f}, "
                  f"sine ratio {s['sine_ratio_median']:.2f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
