"""How precisely does a checkpoint's visual feature say where the sounding source is?

The audio net places a source only as well as the visual feature it receives tells it the
source's azimuth. This command measures that with a linear probe: a ridge regression from the
feature (``BinauralGenerator.visual``'s output for one frame, without mirror averaging) to the
source's azimuth, fitted on frames of one split and scored on others. A probe error far above
the angular precision that the side needs (a few degrees near the centre, where the time
difference between the ears changes fastest) says the visual front end, not the audio net, is
what limits the placement.

Frames: clips with exactly one sounding source (distractors allowed), ``--frames-per-clip``
frames each at random, every frame also mirrored (azimuth negated), so the probe cannot lean
to one side. The ridge strength is chosen from ``RIDGE_GRID`` on a fifth of the fitting clips
held out, then refitted on all of them.

Reported per scored split (the JSON's ``"splits"``): ``mae_deg`` (mean absolute azimuth
error), ``mae_near_centre_deg`` (sources within ``NEAR_CENTRE_DEG``), ``side_accuracy`` (the
sign, off the centre), ``slope`` (least-squares slope of predicted on true azimuth: 1 is
uncompressed), ``constant_mae_deg`` (predicting the fitting frames' mean azimuth, for scale)
and ``box_centre_mae_deg`` (what the picture allows: the sounding source's box centre turned into
an azimuth at the split's mean field of view, since a model cannot know each clip's);
``"by_scene"`` gives the same per scene kind (the sidecar's ``scene_kind``: composite,
photograph; "legacy" for first-set-style clips without one), and whether silent distractors
share the picture: with them, the picture alone cannot say which object sounds.

    python -m streambin.train.position_probe --checkpoint runs/x.pt \\
        --fit /work/data/simall:train --score /work/data/simall:val320 /work/data/ood_val:all \\
        --max-clips 2000 --out docs/results/position_probe_x.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from streambin.train.checkpoint import CheckpointError, load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import load_frame
from streambin.train.sim.scene import HFOV_DEG, column_to_azimuth

NEAR_CENTRE_DEG = 10.0
RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
BATCH = 64


def split_spec(text: str) -> Tuple[Path, str]:
    """``"ROOT:SPLIT"`` -> ``(Path(ROOT), SPLIT)``; the split file must exist."""
    root, sep, split = text.rpartition(":")
    if not sep or not root or not split:
        raise argparse.ArgumentTypeError(f"expected DATA_ROOT:SPLIT (e.g. /work/data/simall:train), got {text!r}")
    path = Path(root) / "splits" / f"{split}.txt"
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"split file {path} not found")
    return Path(root), split


class ProbeFrame(NamedTuple):
    """One frame of a single-source clip; its first three fields are what
    :func:`single_source_frames` returns."""

    path: Path
    azimuth_deg: float
    clip: str
    scene: str              # see "by_scene" (module docstring)
    box_centre_px: float    # the sounding source's box centre column
    width_px: float         # the frame width the box is measured in
    hfov_deg: float         # the clip's horizontal field of view


def single_source_frames(root: Path, split: str, frames_per_clip: int, max_clips: int,
                         seed: int) -> List[Tuple[Path, float, str]]:
    """``[(frame path, azimuth in degrees, clip)]`` for the first ``max_clips`` clips of the split
    (0: all) that have exactly one sounding source, ``frames_per_clip`` random frames each."""
    return [f[:3] for f in labelled_frames(root, split, frames_per_clip, max_clips, seed)]


def labelled_frames(root: Path, split: str, frames_per_clip: int, max_clips: int, seed: int) -> List[ProbeFrame]:
    """:func:`single_source_frames` as :class:`ProbeFrame` s."""
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    clips = [c.strip() for c in (root / "splits" / f"{split}.txt").read_text().splitlines() if c.strip()]
    if max_clips > 0:
        clips = clips[:max_clips]
    rng = np.random.default_rng(seed)
    out = []
    for clip in clips:
        meta_path = root / "meta" / f"{clip}.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"clip {clip!r} has no sidecar {meta_path}: the probe needs source azimuths")
        meta = json.loads(meta_path.read_text())
        sounding = [s for s in meta.get("sources", []) if not s.get("silent", False)]
        if len(sounding) != 1:
            continue
        azimuths, boxes = sounding[0]["azimuth_deg"], sounding[0]["bbox"]
        width, hfov = float(meta.get("frame_width", 448)), float(meta.get("hfov_deg", HFOV_DEG))
        distractors = any(s.get("silent", False) for s in meta.get("sources", []))
        scene = f"{meta.get('scene_kind', 'legacy')}, {'with distractors' if distractors else 'alone'}"
        for k in rng.integers(1, int(meta["n_frames"]) + 1, size=frames_per_clip):
            box = boxes[min(k, len(boxes)) - 1]
            out.append(ProbeFrame(root / "frames" / clip / f"{int(k):06d}.png",
                                  float(azimuths[min(k, len(azimuths)) - 1]), clip, scene,
                                  (box[0] + box[2]) / 2, width, hfov))
    return out


@torch.no_grad()
def features(generator, frames: Sequence[Tuple[Path, float, str]], visual_size, desc: str):
    """``(X (2N, D) float64, azimuth (2N,))``: each frame's feature, then each mirrored frame's
    (azimuth negated)."""
    own, mirrored = [], []
    for i in tqdm(range(0, len(frames), BATCH), desc=desc, unit="batch", leave=False):
        batch = np.stack([load_frame(p, visual_size) for p, _, _ in frames[i:i + BATCH]])
        x = torch.from_numpy(batch)
        own.append(generator.visual(x).flatten(1).double().numpy())
        mirrored.append(generator.visual(x.flip(2)).flatten(1).double().numpy())
    az = np.array([a for _, a, _ in frames])
    return np.concatenate(own + mirrored), np.concatenate([az, -az])


class Ridge:
    """Ridge regression on standardised features (closed form)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, strength: float):
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-8
        z = (x - self.mean) / self.scale
        self.offset = float(y.mean())
        self.weights = np.linalg.solve(z.T @ z + strength * np.eye(z.shape[1]), z.T @ (y - self.offset))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.offset


def held_out_mask(clips: Sequence[str], seed: int) -> np.ndarray:
    """``(2N,) bool`` over :func:`features`' rows (frames, then their mirrors): True for the rows
    of a fifth of the clips, drawn with ``seed`` (a frame and its mirror go with their clip)."""
    names = sorted(set(clips))
    held = set(np.random.default_rng(seed).permutation(names)[: max(1, len(names) // 5)])
    mask = np.array([c in held for c in clips] * 2)
    if mask.all() or not mask.any():
        raise ValueError(f"need at least two single-source clips to hold a fifth out, got {len(names)}")
    return mask


def choose_strength(x: np.ndarray, y: np.ndarray, clips: Sequence[str], seed: int) -> Dict[float, float]:
    """Held-out MAE (degrees) for each strength in ``RIDGE_GRID``, fitted on the rows
    :func:`held_out_mask` leaves in and scored on those it holds out."""
    mask = held_out_mask(clips, seed)
    return {s: float(np.abs(Ridge(x[~mask], y[~mask], s)(x[mask]) - y[mask]).mean()) for s in RIDGE_GRID}


def fit_with_held_out(generator, fit: Tuple[Path, str], visual_size, seed: int) -> Tuple[Ridge, set, dict]:
    """A probe fitted on four fifths of ``fit``'s single-source clips (two frames each, and their
    mirrors) at the strength that scores best on the fifth :func:`held_out_mask` holds out, for
    analyses that need clips the probe has not seen. Returns the probe, the held-out clips'
    names and ``{"held_out_mae_deg": {strength: MAE}, "strength", "fit_frames"}``."""
    frames = single_source_frames(*fit, 2, 0, seed)
    if not frames:
        raise ValueError(f"{fit[0]}:{fit[1]} has no clip with exactly one sounding source")
    clips = [c for _, _, c in frames]
    x, y = features(generator, frames, visual_size, "probe features")
    mask = held_out_mask(clips, seed)
    maes = choose_strength(x, y, clips, seed)
    best = min(maes, key=maes.get)
    held = {c for c, out in zip(clips, mask[: len(clips)]) if out}
    return Ridge(x[~mask], y[~mask], best), held, {"held_out_mae_deg": maes, "strength": best,
                                                   "fit_frames": int((~mask).sum())}


def box_centre_azimuths(frames: Sequence[ProbeFrame]) -> np.ndarray:
    """``(2N,)`` azimuths of the frames' box centres at their mean field of view, then of the
    mirrored frames (negated), in the order :func:`features` returns."""
    mean_hfov = float(np.mean([f.hfov_deg for f in frames]))
    az = np.array([column_to_azimuth(f.box_centre_px, f.width_px, mean_hfov) for f in frames])
    return np.concatenate([az, -az])


def score(pred: np.ndarray, true: np.ndarray, constant: float, box_centre: Optional[np.ndarray] = None) -> dict:
    near = np.abs(true) < NEAR_CENTRE_DEG
    off = ~near
    extra = {} if box_centre is None else {"box_centre_mae_deg": float(np.abs(box_centre - true).mean())}
    return {"frames": int(true.size), **extra,
            "mae_deg": float(np.abs(pred - true).mean()),
            "mae_near_centre_deg": float(np.abs(pred[near] - true[near]).mean()) if near.any() else None,
            "side_accuracy": float(np.mean(np.sign(pred[off]) == np.sign(true[off]))) if off.any() else None,
            "slope": float(np.polyfit(true, pred, 1)[0]) if np.ptp(true) > 0 else None,
            "constant_mae_deg": float(np.abs(constant - true).mean()),
            "mean_abs_azimuth_deg": float(np.abs(true).mean())}


def probe(checkpoint: str, fit: Tuple[Path, str], scored: Sequence[Tuple[Path, str]], frames_per_clip: int = 2,
          max_clips: int = 0, score_max_clips: int = 0, seed: int = 0) -> dict:
    """Fit the probe on ``fit`` and score it on each of ``scored`` (see the module docstring)."""
    generator, cfg = load_generator(checkpoint, mirror_average=False)
    generator.eval()
    size = tuple(cfg.model.visual_size)
    fit_frames = single_source_frames(*fit, frames_per_clip, max_clips, seed)
    if not fit_frames:
        raise ValueError(f"{fit[0]}:{fit[1]} has no clip with exactly one sounding source")
    x, y = features(generator, fit_frames, size, "fit")
    held_out = choose_strength(x, y, [c for _, _, c in fit_frames], seed)
    strength = min(held_out, key=held_out.get)
    model = Ridge(x, y, strength)
    result = {"checkpoint": checkpoint, "fit": f"{fit[0]}:{fit[1]}", "fit_frames": int(y.size),
              "feature_size": int(x.shape[1]), "ridge_strength": strength, "held_out_mae_deg": held_out,
              "fit_mae_deg": float(np.abs(model(x) - y).mean()), "frames_per_clip": frames_per_clip,
              "seed": seed, "splits": {}}
    for root, split in scored:
        labelled = labelled_frames(root, split, frames_per_clip, score_max_clips, seed + 1)
        if not labelled:
            raise ValueError(f"{root}:{split} has no clip with exactly one sounding source")
        xs, ys = features(generator, [f[:3] for f in labelled], size, f"{root.name}:{split}")
        pred, box = model(xs), box_centre_azimuths(labelled)
        scenes = np.array([f.scene for f in labelled] * 2)             # frames, then their mirror images
        result["splits"][f"{root}:{split}"] = {
            **score(pred, ys, model.offset, box),
            "by_scene": {name: score(pred[scenes == name], ys[scenes == name], model.offset, box[scenes == name])
                         for name in sorted(set(scenes))}}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.position_probe",
                                description="How precisely a checkpoint's visual feature encodes the sounding "
                                            "source's azimuth (a ridge probe; see the module docstring).")
    p.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
    p.add_argument("--fit", required=True, type=split_spec, help="DATA_ROOT:SPLIT to fit the probe on")
    p.add_argument("--score", required=True, nargs="+", type=split_spec, help="DATA_ROOT:SPLIT ... to score it on")
    p.add_argument("--frames-per-clip", type=int, default=2)
    p.add_argument("--max-clips", type=int, default=0, help="first N clips of the fitting split (0: all)")
    p.add_argument("--score-max-clips", type=int, default=0, help="first N clips of each scored split (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args(argv)
    if args.frames_per_clip < 1:
        p.error(f"--frames-per-clip must be >= 1, got {args.frames_per_clip}")
    if args.max_clips < 0 or args.score_max_clips < 0:
        p.error("--max-clips and --score-max-clips must be >= 0")
    flush_denormals()
    try:
        result = probe(args.checkpoint, args.fit, args.score, args.frames_per_clip, args.max_clips,
                       args.score_max_clips, args.seed)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"position_probe: {exc}", file=sys.stderr)
        return 2
    print(f"fit {result['fit']}: {result['fit_frames']} frames, feature {result['feature_size']}, "
          f"ridge {result['ridge_strength']:g}, fit MAE {result['fit_mae_deg']:.1f} deg")
    for name, s in result["splits"].items():
        near = "-" if s["mae_near_centre_deg"] is None else f"{s['mae_near_centre_deg']:.1f}"
        side = "-" if s["side_accuracy"] is None else f"{s['side_accuracy']:.3f}"
        slope = "-" if s["slope"] is None else f"{s['slope']:.2f}"
        print(f"{name}: {s['frames']} frames, MAE {s['mae_deg']:.1f} deg (constant {s['constant_mae_deg']:.1f}, "
              f"box centre {s['box_centre_mae_deg']:.1f}), "
              f"near the centre {near}, side {side}, slope {slope}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
