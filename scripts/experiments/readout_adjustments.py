"""Can the visual read-out's azimuth be made more precise after the fact?

``scripts/experiments/hrtf_prior.py`` found that an average-head renderer needs the sounding
source's azimuth to about 3-4 degrees, and that a ridge read-out of the shipped visual feature
(``streambin.train.position_probe``) misses it by about 10 degrees on unseen pictures while
pulling lateral sources toward the centre. Two adjustments that need no new training of the
visual path, each scored on frames of single-source clips of ``--score`` (four per clip,
mirror-averaged as the engine averages: ``(p(x) - p(mirror x)) / 2``):

- ``compression``: the read-out fitted on four fifths of ``--fit`` (``fit_with_held_out``),
  its slope (predicted on true azimuth) measured on the held-out fifth, and the read-out divided
  by that slope, against the read-out as fitted.
- ``shifts``: a read-out fitted on ``--fit`` frames shifted sideways by each of ``SHIFTS_PX``
  columns (edges repeated; the target the shifted picture's azimuth at the 90-degree field of
  view the engine assumes), and at test time averaged over the shifted copies of the frame,
  each copy's column moved back by its shift, against its unshifted copy alone.

Reported per adjustment: the mean absolute error in degrees, on lateral sources (|azimuth| >= 10)
and near the centre, and the slope.

    PYTHONPATH=. python scripts/experiments/readout_adjustments.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --fit /work/data/probefit:train --score /work/data/ood_val:all --out docs/results/readout_adjustments_ood.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import load_frame
from streambin.train.position_probe import (NEAR_CENTRE_DEG, Ridge, fit_with_held_out, single_source_frames,
                                            split_spec)
from streambin.train.sim.scene import HFOV_DEG

SHIFTS_PX = (-24, -16, -8, 0, 8, 16, 24)
SHIFT_RIDGE_STRENGTH = 100.0
FRAMES_PER_SCORED_CLIP = 4
BATCH = 64


class Columns:
    """Azimuth <-> column of a ``width``-pixel frame at the engine's assumed field of view."""

    def __init__(self, width: int):
        self.width, self.focal = width, (width / 2) / np.tan(np.deg2rad(HFOV_DEG / 2))

    def azimuth(self, column):
        return np.rad2deg(np.arctan((np.asarray(column, np.float64) - self.width / 2) / self.focal))

    def column(self, azimuth):
        return self.width / 2 + self.focal * np.tan(np.deg2rad(np.asarray(azimuth, np.float64)))


def shifted(frames: np.ndarray, shift: int) -> np.ndarray:
    """``(B, H, W, 3)`` frames with their content moved ``shift`` columns right, edges repeated."""
    width = frames.shape[2]
    return frames[:, :, np.clip(np.arange(width) - shift, 0, width - 1)]


def batches(frames, visual_size):
    """``(frames (B, H, W, 3) uint8, azimuths (B,))`` of ``[(path, azimuth, clip)]`` in batches."""
    for i in range(0, len(frames), BATCH):
        part = frames[i:i + BATCH]
        yield np.stack([load_frame(p, visual_size) for p, _, _ in part]), np.array([a for _, a, _ in part])


def scores(pred: np.ndarray, true: np.ndarray) -> dict:
    lateral = np.abs(true) >= NEAR_CENTRE_DEG
    err = np.abs(pred - true)
    return {"frames": int(true.size), "mae_deg": float(err.mean()), "mae_lateral_deg": float(err[lateral].mean()),
            "mae_near_centre_deg": float(err[~lateral].mean()), "slope": float(np.polyfit(true, pred, 1)[0])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--fit", type=split_spec, required=True, help="DATA_ROOT:SPLIT of train-pool clips")
    p.add_argument("--score", type=split_spec, required=True, help="DATA_ROOT:SPLIT scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    flush_denormals()
    torch.set_num_threads(2)
    start = time.time()
    generator, cfg = load_generator(args.checkpoint, mirror_average=False)
    generator.eval()
    size = tuple(cfg.model.visual_size)
    cols = Columns(size[1])

    @torch.no_grad()
    def feature(x: np.ndarray) -> np.ndarray:
        return generator.visual(torch.from_numpy(np.ascontiguousarray(x))).flatten(1).double().numpy()

    def averaged(probe: Ridge, x: np.ndarray, shift: int = 0) -> np.ndarray:
        """The mirror-averaged read-out of the frames shifted by ``shift`` (the mirror by -shift)."""
        return 0.5 * (probe(feature(shifted(x, shift))) - probe(feature(shifted(x[:, :, ::-1], -shift))))

    scored = single_source_frames(*args.score, FRAMES_PER_SCORED_CLIP, 0, args.seed + 2)
    if not scored:
        raise SystemExit(f"{args.score[0]}:{args.score[1]} has no clip with exactly one sounding source")

    # Compression: the slope on the held-out fifth of the fitting clips, then undone on --score.
    probe, held, info = fit_with_held_out(generator, args.fit, size, args.seed)
    held_frames = [f for f in single_source_frames(*args.fit, 2, 0, args.seed + 1) if f[2] in held]
    pred, true = zip(*[(averaged(probe, x), a) for x, a in tqdm(batches(held_frames, size), desc="held-out slope")])
    slope = float(np.polyfit(np.concatenate(true), np.concatenate(pred), 1)[0])
    pred, true = zip(*[(averaged(probe, x), a) for x, a in tqdm(batches(scored, size), desc="scored frames")])
    pred, true = np.concatenate(pred), np.concatenate(true)
    compression = {"held_out_slope": slope, "as fitted": scores(pred, true), "divided by the slope": scores(pred / slope, true)}

    # Shifts: fit on every shifted copy (and its mirror), then average the copies' columns.
    fit_frames = single_source_frames(*args.fit, 2, 0, args.seed)
    xs, ys = [], []
    for x, az in tqdm(batches(fit_frames, size), desc="shifted fitting frames"):
        for s in SHIFTS_PX:
            xs += [feature(shifted(x, s)), feature(shifted(x[:, :, ::-1], s))]
            ys += [cols.azimuth(cols.column(az) + s), cols.azimuth(cols.column(-az) + s)]
    shift_probe = Ridge(np.concatenate(xs), np.concatenate(ys), SHIFT_RIDGE_STRENGTH)
    centre, mean_of_copies, true = [], [], []
    for x, az in tqdm(batches(scored, size), desc="shifted scored frames"):
        columns = np.array([cols.column(averaged(shift_probe, x, s)) - s for s in SHIFTS_PX])
        centre.append(cols.azimuth(columns[SHIFTS_PX.index(0)]))
        mean_of_copies.append(cols.azimuth(columns.mean(0)))
        true.append(az)
    true = np.concatenate(true)
    shifts = {"shifts_px": list(SHIFTS_PX), "ridge_strength": SHIFT_RIDGE_STRENGTH,
              "unshifted copy": scores(np.concatenate(centre), true),
              "mean of the shifted copies": scores(np.concatenate(mean_of_copies), true)}

    result = {"command": "python " + " ".join(sys.argv), "probe": info, "compression": compression, "shifts": shifts,
              "wall_s": round(time.time() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for part in (compression, shifts):
        for name, s in part.items():
            if isinstance(s, dict):
                print(f"{name:28s} MAE {s['mae_deg']:.1f}  lateral {s['mae_lateral_deg']:.1f}  "
                      f"near the centre {s['mae_near_centre_deg']:.1f}  slope {s['slope']:.2f}")
    print(f"held-out slope {slope:.2f}; wrote {args.out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
