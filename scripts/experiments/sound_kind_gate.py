"""Would a gate by the kind of sound help? Peaks weighed by the sounding map only where the sound
is an instrument's, by their heat elsewhere, with the sound's kind read from the sidecar (an
oracle: what a detector on the mono could gain at most).

The localiser's sounding map chooses better among objects where an instrument plays and a little
worse where an object makes its own sound (docs/results.md, "A sounding map on the localiser",
"by the sounding source's kind of sound"). This writes a ``confidence_blend.py`` cache whose clips
take their peaks' scores from one of two caches of the same localiser (the same peaks, weighed by
heat in one and by the sounding map in the other) by the clip's sounding source's
``sound_kind``; ``confidence_blend.py --cache OUT`` then fits and scores the blend forms on it
without running anything again. Train-pool sets only: the gate is an oracle.

    PYTHONPATH=. python scripts/experiments/sound_kind_gate.py \\
        --heat /work/data/cache/confidence_blend_sound_heat --sounding /work/data/cache/confidence_blend_sound \\
        --data /work/data/probefit /work/data/blendfit /work/data/blendfit_leg /work/data/simbin \\
        --kinds instrument --out /work/data/cache/confidence_blend_gate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def sounding_kind(meta: dict) -> Optional[str]:
    """The sound kind of a clip's one sounding source, or None (several or none)."""
    sounding = [s for s in meta.get("sources", []) if not s.get("silent")]
    return sounding[0].get("sound_kind") if len(sounding) == 1 else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--heat", type=Path, required=True, help="a confidence_blend.py cache, peaks weighed by heat")
    p.add_argument("--sounding", type=Path, required=True,
                   help="a cache of the same localiser's peaks weighed by its sounding map")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="data roots (their sidecars)")
    p.add_argument("--kinds", nargs="+", default=["instrument"], help="sound kinds that take the sounding map's")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    counts = {}
    for root in a.data:
        (a.out / root.name).mkdir(parents=True, exist_ok=True)
        for path in sorted((a.heat / root.name).glob("*.npz")):
            other = a.sounding / root.name / path.name
            if not other.is_file():
                continue
            kind = sounding_kind(json.loads((root / "meta" / f"{path.stem}.json").read_text()))
            chosen = other if kind in a.kinds else path
            with np.load(path) as h, np.load(chosen) as c:
                if not np.array_equal(h["azimuths"], c["azimuths"]) or not np.array_equal(h["pred"], c["pred"]):
                    raise ValueError(f"{path} and {other}: not the same peaks and model outputs")
                np.savez(a.out / root.name / path.name, pred=c["pred"], azimuths=c["azimuths"], scores=c["scores"])
            key = f"{root.name}: {'sounding' if chosen == other else 'heat'}"
            counts[key] = counts.get(key, 0) + 1
    print(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
