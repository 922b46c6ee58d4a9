"""Score a checkpoint with and without mirror averaging from one set of predictions.

    python scripts/mirror_average_ab.py CHECKPOINT DATA SPLIT OUT_PREFIX [--max-clips N] [--lateral-only]

Writes ``OUT_PREFIX_plain.json`` and ``OUT_PREFIX_mirror_avg.json`` (streambin.train.evaluate
results, offline protocol). The same as running ``python -m streambin.train.evaluate
--checkpoint CHECKPOINT`` without and with ``--mirror-average``, at the cost of one of them: the
mirror-averaged output for a frame is the average of the plain outputs for the frame and (ears
swapped) for its mirror image, and the plain evaluation computes both (its flipped-visual
condition), so they are computed once and shared.
"""

import argparse
import sys

from streambin.train import evaluate as E
from streambin.train.checkpoint import load_generator
from streambin.train.data import SimBinauralDataset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("data")
    p.add_argument("split")
    p.add_argument("out_prefix")
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--lateral-only", action="store_true")
    a = p.parse_args(argv)
    model, cfg = load_generator(a.checkpoint, mirror_average=False)
    plain = E.cached_predictor(E.offline_predictor(model, cfg.audio))
    mirror_averaged = E.mirror_averaged_predictor(plain)

    ds = SimBinauralDataset(a.data, a.split, mode="eval", visual_size=tuple(cfg.model.visual_size))
    for name, predict in (("plain", plain), ("mirror_avg", mirror_averaged)):
        res = E.evaluate_model(None, cfg, ds, predict=predict, lateral_only=a.lateral_only, progress=False,
                               max_clips=a.max_clips, protocol="offline sliding-window protocol, window hop 0.1 s"
                               + (", mirror-averaged" if name == "mirror_avg" else ""))
        res["settings"].update(checkpoint=a.checkpoint, data=a.data, split=a.split, mirror_average=name != "plain")
        E.write_results(res, f"{a.out_prefix}_{name}.json", None)
        print(f"wrote {a.out_prefix}_{name}.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
