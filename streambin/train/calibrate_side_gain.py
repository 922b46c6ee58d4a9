"""Calibrate a model's side gain on validation data: how much larger its side should be.

Usage::

    python -m streambin.train.calibrate_side_gain --checkpoint runs/m2b/best.pt --data data/simbin \\
        --split val [--max-clips N] [--no-mirror-average] [--out gain.json] [--plot gain.png]
    python -m export.to_onnx --checkpoint runs/m2b/best.pt --out my_bundle --engine-mirror-average --side-gain G

A model trained with an MSE on the side spectrogram under-predicts its side wherever it is
unsure, and an under-trained one more so. Each clip is predicted by the offline protocol
(mirror-averaged unless ``--no-mirror-average``, as the bundle will run); with ``P`` the STFT of
the prediction's side ``(L - R) / 2`` and ``T`` the truth's (the STFT metric's 512 / 160 / 400),
both divided by the truth's peak sample as the STFT metric divides each clip, the gain ``g``
minimising ``sum |g P - T|^2`` over every bin and frame of every clip is

    g = sum Re(conj(P) T) / sum |P|^2,

the least-squares calibration of the side on data the model did not train on. The 95 % interval
comes from resampling the clips (bootstrap), so a gain fitted on a few clips says how sure it is.
This gain minimises the side's own error. Two other criteria ask for more: the STFT distance as
the papers score it also divides the prediction by its own peak, so it keeps falling with larger
gains while the prediction's peak stays below the truth's, and the level-difference ratio of
``python -m streambin.train.evaluate`` reaches 1 only at the gain that undoes the shrinking of the
lateral clips' level differences. ``scripts/side_gain_sweep.py`` scores both at several gains.
The same ratio per frequency bin is written too (``gain_per_bin``; noisy, for diagnosis: the
engine takes one gain). Give ``g`` to the export (``--side-gain``) or to
``Spatializer(side_gain=g)``.

Writes a JSON with the gain, its interval, the clip count, the per-bin gains and each bin's
share of the truth's and the prediction's side energy; ``--plot`` draws them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from streambin.train import metrics as M

class SideGainStatistics:
    """Running sums over clips of ``Re(conj(P) T)``, ``|P|^2`` and ``|T|^2`` per STFT bin, and
    each clip's totals (for the interval), every clip at its truth's peak normalisation."""

    def __init__(self):
        self.cross = self.power = self.truth = None
        self.clip_cross: list = []
        self.clip_power: list = []

    @property
    def n_clips(self) -> int:
        return len(self.clip_cross)

    def add(self, pred: np.ndarray, target: np.ndarray) -> None:
        """pred, target: ``(2, n)`` float (left, right) at the model rate, the same length."""
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.ndim != 2 or pred.shape[0] != 2 or pred.shape != target.shape:
            raise ValueError(f"pred and target must both be (2, n) left/right, got {pred.shape} and {target.shape}")
        peak = float(np.max(np.abs(target))) if target.size else 0.0
        scale = 1.0 / max(peak, 1e-20)  # the STFT metric's weighting of the clip
        P = M.stft(0.5 * scale * (pred[0] - pred[1]))
        T = M.stft(0.5 * scale * (target[0] - target[1]))
        if self.cross is None:
            self.cross, self.power, self.truth = (np.zeros(P.shape[0]) for _ in range(3))
        cross = np.sum(np.real(np.conj(P) * T), axis=1)
        power = np.sum(np.abs(P) ** 2, axis=1)
        self.cross += cross
        self.power += power
        self.truth += np.sum(np.abs(T) ** 2, axis=1)
        self.clip_cross.append(float(cross.sum()))
        self.clip_power.append(float(power.sum()))

    def gain(self) -> float:
        """The least-squares gain over every bin; ValueError when nothing (or only silence) was added."""
        if self.power is None or self.power.sum() <= 0:
            raise ValueError("no clip with a non-zero predicted side was added: nothing to calibrate")
        return float(self.cross.sum() / self.power.sum())

    def interval(self, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Tuple[float, float]:
        """The gain's bootstrap interval: the clips drawn with replacement ``resamples`` times,
        the central ``level`` of the gains (draws whose side is all silence left out)."""
        self.gain()  # the same error when there is nothing to calibrate
        if not 0 < level < 1 or resamples < 1:
            raise ValueError(f"need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
        cross, power = np.asarray(self.clip_cross), np.asarray(self.clip_power)
        idx = np.random.default_rng(seed).integers(0, len(cross), (resamples, len(cross)))
        c, p = cross[idx].sum(axis=1), power[idx].sum(axis=1)
        gains = c[p > 0] / p[p > 0]
        if gains.size == 0:
            raise ValueError("every resample drew only clips with a silent predicted side: no interval")
        lo, hi = np.percentile(gains, [50 * (1 - level), 50 * (1 + level)])
        return float(lo), float(hi)

    def summary(self, sample_rate: int) -> Dict[str, Any]:
        g = self.gain()
        n_bins = len(self.cross)
        return {
            "side_gain": g,
            "side_gain_ci95": list(self.interval()),
            "n_clips": self.n_clips,
            "weighting": "each clip divided by its truth's peak sample, as the STFT metric",
            "freq_hz": (np.arange(n_bins) * sample_rate / (2 * (n_bins - 1))).tolist(),
            "gain_per_bin": (self.cross / np.maximum(self.power, 1e-30)).tolist(),
            "truth_energy_share": (self.truth / max(self.truth.sum(), 1e-30)).tolist(),
            "pred_energy_share": (self.power / self.power.sum()).tolist(),
        }


def calibrate(predict, dataset, max_clips: Optional[int] = None, mirror_average: bool = True,
              progress: bool = True) -> SideGainStatistics:
    """Sums over the first ``max_clips`` clips of ``dataset`` (eval items, as for
    :func:`streambin.train.evaluate.evaluate_model`); ``predict`` is a plain (not averaged)
    :data:`streambin.train.evaluate.Predictor`, averaged here with its mirrored-frame output
    when ``mirror_average``."""
    from tqdm import tqdm

    from streambin.train.evaluate import _item_fields, mirror_averaged_predictor

    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be >= 1 or None, got {max_clips}")
    n = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    if n == 0:
        raise ValueError("the data set has no clips to calibrate on")
    if mirror_average:
        predict = mirror_averaged_predictor(predict)
    stats = SideGainStatistics()
    for i in tqdm(range(n), desc="calibrate", unit="clip", disable=not progress):
        target, frames, fps, _ = _item_fields(dataset[i], i)
        mono = 0.5 * (target[0] + target[1])
        stats.add(predict(mono, frames, fps, "true"), target)
    return stats


def plot(summary: Dict[str, Any], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = np.asarray(summary["freq_hz"]) / 1e3
    fig, ax = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    ax[0].plot(f, summary["gain_per_bin"], lw=1, label="per bin (noisy; not used)")
    lo, hi = summary["side_gain_ci95"]
    ax[0].axhline(summary["side_gain"], color="k", ls="--", label=f"all bins: {summary['side_gain']:.2f}")
    ax[0].axhspan(lo, hi, color="k", alpha=0.12, label=f"95 % interval over clips: {lo:.2f}-{hi:.2f}")
    ax[0].axhline(1.0, color="grey", lw=0.8)
    ax[0].set_ylabel("least-squares side gain")
    ax[0].set_title(title, fontsize=10)
    ax[0].legend(fontsize=8)
    ax[1].semilogy(f, summary["truth_energy_share"], label="truth")
    ax[1].semilogy(f, summary["pred_energy_share"], label="prediction (before the gain)")
    ax[1].set_ylabel("share of side energy")
    ax[1].set_xlabel("frequency (kHz)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streambin.train.calibrate_side_gain",
                                description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="generator checkpoint (.pt)")
    p.add_argument("--data", required=True, help="data set root directory")
    p.add_argument("--split", default="val", help="split to calibrate on (default val; never the test split)")
    p.add_argument("--max-clips", type=int, default=None, help="use only the first N clips")
    p.add_argument("--no-mirror-average", action="store_true",
                   help="calibrate the plain output (for a bundle run with mirror_average=False)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", default=None, help="JSON file for the gain and its per-bin diagnosis")
    p.add_argument("--plot", default=None, help="figure of the per-bin gains and side energy (png/pdf/svg)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from streambin.train.checkpoint import CheckpointError, load_generator
    from streambin.train.cpu_numerics import flush_denormals
    from streambin.train.data import SimBinauralDataset
    from streambin.train.evaluate import offline_predictor

    flush_denormals()
    try:
        model, cfg = load_generator(args.checkpoint, mirror_average=False)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dataset = SimBinauralDataset(args.data, args.split, mode="eval", visual_size=tuple(cfg.model.visual_size))
        stats = calibrate(offline_predictor(model.to(device), cfg.audio), dataset, max_clips=args.max_clips,
                          mirror_average=not args.no_mirror_average, progress=not args.no_progress)
        summary = stats.summary(cfg.audio.sample_rate)
    except (CheckpointError, OSError, ValueError, KeyError) as exc:
        print(f"calibrate_side_gain: error: {exc}", file=sys.stderr)
        return 1
    summary.update(checkpoint=str(args.checkpoint), data=str(args.data), split=args.split,
                   mirror_average=not args.no_mirror_average)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    if args.plot:
        plot(summary, args.plot, f"{args.split} split of {args.data}, {summary['n_clips']} clips"
                                 + (", mirror-averaged" if summary["mirror_average"] else ""))
    g, (lo, hi) = summary["side_gain"], summary["side_gain_ci95"]
    print(f"least-squares side gain {g:.3f} (95 % interval {lo:.3f}-{hi:.3f}) over {summary['n_clips']} clips "
          f"of {args.data} ({args.split}); export with --side-gain {g:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
