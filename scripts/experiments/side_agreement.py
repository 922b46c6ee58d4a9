"""How often the model's side and the rendered side disagree, by room and silent objects.

Per STFT frame, ``confidence_blend.agreement`` (the mid-power-weighed real inner product of the
two side masks over 0.5-8 kHz, smoothed over 0.25 s) below 0 counts as disagreeing. Reads the
clips' model outputs and localiser peaks from a ``confidence_blend.py`` cache (computed there
first if missing), with the engine's peak weights (``score ** 4``).

    PYTHONPATH=. python scripts/experiments/side_agreement.py --data /work/data/probefit:train \\
        --clips 1500 --every 5 --cache /work/data/cache/confidence_blend
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import confidence_blend as C  # noqa: E402
from hrtf_prior import single_source_clips  # noqa: E402
from streambin.train.average_head import side_filter_table  # noqa: E402
from streambin.train.sim.heads import draw_head  # noqa: E402


def scene_kind(meta: dict) -> str:
    silent = any(s.get("silent", False) for s in meta.get("sources", []))
    return ("room" if meta.get("room") else "free field") + (", silent objects" if silent else "")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="DATA_ROOT:SPLIT of single-source clips")
    p.add_argument("--clips", type=int, default=1500, help="the first N single-source clips")
    p.add_argument("--every", type=int, default=1, help="of those, every k-th")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--bundle", default="streambin/models/default")
    p.add_argument("--localiser", default="runs/objloc3/last.pt")
    args = p.parse_args(argv)
    if args.clips < 1 or args.every < 1:
        p.error("--clips and --every must be >= 1")
    rng = np.random.default_rng(0)      # confidence_blend.py's heads
    grid, table = side_filter_table([draw_head(rng, "train") for _ in range(48)])
    root, split = args.data.rsplit(":", 1)
    clips = single_source_clips(Path(root), split)[: args.clips: args.every]
    shares = {}
    for x in C.load_inputs(clips, args.cache, args.bundle, args.localiser):
        model_side, rendered = x.terms("fixed", grid, table)     # the two sides' spectra, as the blend sees them
        x.forget_spectra()
        shares.setdefault(scene_kind(x.clip.meta), []).append(float(np.mean(C.agreement(model_side, rendered) < 0)))
    for kind, v in sorted(shares.items()) + [("all", [s for v in shares.values() for s in v])]:
        v = np.asarray(v)
        print(f"{kind}: {v.size} clips, disagreeing frames {v.mean():.3f}, clips mostly disagreeing "
              f"{np.mean(v > 0.5):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
