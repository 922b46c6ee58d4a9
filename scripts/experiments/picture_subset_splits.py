"""Training splits for two tests: half the pictures or all; with silent distractors or without.

An experiment kept so that its figures can be reproduced (docs/results.md, "Online frames, a
finer map and half the pictures"), not a command of the library. From ``ROOT/splits/train.txt``
it writes:

- ``ROOT/splits/train_half_pictures.txt``: the clips whose background and every sounding
  source's picture (stamp or instrument name) fall in one half of those identities (a hash
  rule, like the train/OOD pool rule but independent of it). Silent distractors may be any
  picture; clips on procedural backgrounds are left out of both splits.
- ``ROOT/splits/train_all_pictures.txt``: as many clips drawn at random (seed 0) from all the
  train clips on photographs, whatever their pictures.
- ``ROOT/splits/train_with_distractors.txt``: the composite clips with a silent distractor,
  where the picture alone cannot say which object sounds, and
  ``ROOT/splits/train_without_distractors.txt``: as many composite clips without one, drawn at
  random (seed 0).

It prints each split's size and, for the first two, how many distinct backgrounds and sounding
pictures they hold::

    python scripts/experiments/picture_subset_splits.py /work/data/simall
"""
import argparse
import hashlib
import json
from pathlib import Path

import numpy as np


def in_half(kind: str, identity: str) -> bool:
    h = int(hashlib.sha1(f"half:{kind}:{identity}".encode()).hexdigest()[:8], 16)
    return h / 2 ** 32 < 0.5


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    args = p.parse_args()
    clips = [c.strip() for c in (args.root / "splits" / "train.txt").read_text().splitlines() if c.strip()]
    pictures, with_distractors, without = {}, [], []
    for clip in clips:
        meta = json.loads((args.root / "meta" / f"{clip}.json").read_text())
        if meta.get("scene_kind") == "composite":
            (with_distractors if any(s["silent"] for s in meta["sources"]) else without).append(clip)
        if meta["background"] == "procedural":
            continue
        pictures[clip] = (meta["background"], [s["name"] for s in meta["sources"] if not s["silent"]])
    half = [c for c, (bg, names) in pictures.items()
            if in_half("background", bg) and all(in_half("picture", n) for n in names)]
    rng = np.random.default_rng(0)
    every = sorted(rng.choice(sorted(pictures), size=len(half), replace=False).tolist())
    for name, chosen in (("train_half_pictures", half), ("train_all_pictures", every)):
        (args.root / "splits" / f"{name}.txt").write_text("".join(c + "\n" for c in chosen))
        backgrounds = {pictures[c][0] for c in chosen}
        sounding = {n for c in chosen for n in pictures[c][1]}
        print(f"{name}: {len(chosen)} clips, {len(backgrounds)} backgrounds, {len(sounding)} sounding pictures")
    n = min(len(with_distractors), len(without))
    rng = np.random.default_rng(0)
    for name, chosen in (("train_with_distractors", rng.choice(with_distractors, size=n, replace=False)),
                         ("train_without_distractors", rng.choice(without, size=n, replace=False))):
        (args.root / "splits" / f"{name}.txt").write_text("".join(c + "\n" for c in sorted(chosen)))
        print(f"{name}: {n} clips")


if __name__ == "__main__":
    main()
