"""Score a checkpoint, mirror-averaged, at several side gains from one set of predictions.

    python scripts/side_gain_sweep.py CHECKPOINT DATA SPLIT OUT_PREFIX --gains 1,1.25,1.5
        [--max-clips N] [--lateral-only] [--no-normalize]

A side gain ``g`` scales what the model adds to and takes from the mono signal: the output at
gain g keeps its mid ``(L + R) / 2`` and has g times its side ``(L - R) / 2``
(streambin.signal_contract.scale_side_output; the engine scales the side mask, which is the
same since masks act linearly). No sign of a level difference changes, so the direction, mirror
and grey-frame measures do not move; the level-difference magnitude and the distances do.

Writes ``OUT_PREFIX_g<gain>.json`` for each gain (streambin.train.evaluate results, offline
protocol, mirror-averaged as the shipped engine runs by default; the same as ``python -m
streambin.train.evaluate --checkpoint CHECKPOINT --mirror-average --side-gain G``). The plain
predictions for the true, mirrored and grey frames are made once per clip and shared by every
gain. To choose a model's gain, ``python -m streambin.train.calibrate_side_gain`` fits it.
``--no-normalize`` scores prediction and truth at their own scale (the metrics' peak normalisation,
which divides the prediction by its own peak, off): the side's error alone, as the calibration
fits it.
"""

import argparse
import sys

import numpy as np

from streambin.signal_contract import scale_side_output
from streambin.train import evaluate as E
from streambin.train.checkpoint import load_generator
from streambin.train.data import SimBinauralDataset


def parse_gains(text: str):
    try:
        gains = [float(g) for g in text.split(",") if g.strip()]
    except ValueError:
        raise SystemExit(f"--gains must be comma-separated numbers, got {text!r}")
    if not gains or any(not np.isfinite(g) or g <= 0 for g in gains):
        raise SystemExit(f"--gains must be positive and finite, got {text!r}")
    return gains


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("data")
    p.add_argument("split")
    p.add_argument("out_prefix")
    p.add_argument("--gains", default="1,1.25,1.5")
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--lateral-only", action="store_true")
    p.add_argument("--no-normalize", action="store_true", help="score without the peak normalisation")
    a = p.parse_args(argv)
    gains = parse_gains(a.gains)
    model, cfg = load_generator(a.checkpoint, mirror_average=False)
    averaged = E.mirror_averaged_predictor(E.cached_predictor(E.offline_predictor(model, cfg.audio)))
    ds = SimBinauralDataset(a.data, a.split, mode="eval", visual_size=tuple(cfg.model.visual_size))
    for gain in gains:
        def predict(mono, frames, fps, mode, gain=gain):
            return scale_side_output(averaged(mono, frames, fps, mode), gain)

        res = E.evaluate_model(None, cfg, ds, predict=predict, lateral_only=a.lateral_only, progress=False,
                               conditions=("model", "mono_mono"), max_clips=a.max_clips,
                               normalize=not a.no_normalize,
                               protocol=f"offline sliding-window protocol, window hop 0.1 s, mirror-averaged, "
                                        f"side gain {gain:g}")
        res["settings"].update(checkpoint=a.checkpoint, data=a.data, split=a.split, mirror_average=True,
                               side_gain=gain)
        out = f"{a.out_prefix}_g{gain:g}.json"
        E.write_results(res, out, None)
        loc = res.get("localisation", {}).get("summary", {})
        print(f"gain {gain:g}: STFT {res['summary']['model']['stft']['mean']:.4f} "
              f"level ratio {loc.get('ld_ratio_median')} -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
