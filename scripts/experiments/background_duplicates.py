"""Are a folder's pictures new backgrounds, or pictures the generator already draws?

Before photographs from another package join the train pool, each must be checked against every
background the asset finder already uses, in both pools: a package may repackage a picture that
another package ships (then adding it as train-only could put a held-out background into
training). For each picture under DIR this prints its nearest existing background by the
correlation of mean-removed 32 x 16 colour thumbnails (1.0: the same picture, whatever its
resolution) and that background's pool::

    PYTHONPATH=. python scripts/experiments/background_duplicates.py /tmp/unpacked_package

An experiment's check (docs/results.md, "A localiser for pictures unlike its pool"), not a
command of the library.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from streambin.train.sim import assets, pools


def thumbnail(path: Path) -> np.ndarray:
    """Unit-norm, mean-removed 32 x 16 BGR thumbnail of the picture, flattened."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a picture OpenCV can read")
    t = cv2.resize(image, (32, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    t -= t.mean()
    return t.ravel() / (np.linalg.norm(t) + 1e-6)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="pictures to check (searched recursively)")
    p.add_argument("--same", type=float, default=0.98, help="correlation from which a picture counts as a duplicate")
    a = p.parse_args(argv)
    new = assets.find_backgrounds([a.folder], with_skimage=False)
    if not new:
        print(f"error: no picture of at least {assets.MIN_BACKGROUND_PX} px a side under {a.folder}", file=sys.stderr)
        return 2
    known = assets.find_backgrounds()
    table = np.stack([thumbnail(b.path) for b in known])
    duplicates = 0
    for b in new:
        sims = table @ thumbnail(b.path)
        k = int(np.argmax(sims))
        same = sims[k] >= a.same
        duplicates += same
        print(f"{b.path.name:48s} nearest {known[k].id} ({pools.pool_of('background', known[k].id)} pool): "
              f"{sims[k]:.3f}{'  DUPLICATE' if same else ''}")
    print(f"{len(new)} pictures, {duplicates} already among the {len(known)} backgrounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
