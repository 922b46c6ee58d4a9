"""Calibrate a model's side gain on validation data: how much larger its side should be.

Usage::

    python -m streambin.train.calibrate_side_gain --checkpoint runs/m2b/best.pt --data data/simbin \\
        --split val [--max-clips 80] [--no-mirror-average] [--out gain.json] [--plot gain.png]
    python -m export.to_onnx --checkpoint runs/m2b/best.pt --out my_bundle --engine-mirror-average --side-gain G

A model trained with an MSE on the side spectrogram under-predicts its side wherever it is
unsure, and an under-trained one more so. Each clip is predicted by the offline protocol
(mirror-averaged unless ``--no-mirror-average``, as the bundle will run); with ``P`` the STFT of
the prediction's side ``(L - R) / 2`` and ``T`` the truth's (the STFT metric's 512 / 160 / 400),
the gain ``g`` minimising ``sum |g P - T|^2`` over every bin and frame of every clip is

    g = sum Re(conj(P) T) / sum |P|^2,

the least-squares calibration of the training objective on data the model did not train on.
The same ratio per frequency bin is written too (``gain_per_bin``; noisy, for diagnosis: the
engine takes one gain). Give ``g`` to the export (``--side-gain``) or to
``Spatializer(side_gain=g)``.

Writes a JSON with the gain, the clip count, the per-bin gains and each bin's share of the
truth's and the prediction's side energy; ``--plot`` draws them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional, Sequence

import numpy as np

from streambin.train import metrics as M

class SideGainStatistics:
    """Running sums over clips of ``Re(conj(P) T)``, ``|P|^2`` and ``|T|^2`` per STFT bin."""

    def __init__(self):
        self.cross = self.power = self.truth = None
        self.n_clips = 0

    def add(self, pred: np.ndarray, target: np.ndarray) -> None:
        """pred, target: ``(2, n)`` float (left, right) at the model rate, the same length."""
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.ndim != 2 or pred.shape[0] != 2 or pred.shape != target.shape:
            raise ValueError(f"pred and target must both be (2, n) left/right, got {pred.shape} and {target.shape}")
        P = M.stft(0.5 * (pred[0] - pred[1]))
        T = M.stft(0.5 * (target[0] - target[1]))
        if self.cross is None:
            self.cross, self.power, self.truth = (np.zeros(P.shape[0]) for _ in range(3))
        self.cross += np.sum(np.real(np.conj(P) * T), axis=1)
        self.power += np.sum(np.abs(P) ** 2, axis=1)
        self.truth += np.sum(np.abs(T) ** 2, axis=1)
        self.n_clips += 1

    def gain(self) -> float:
        """The least-squares gain over every bin; ValueError when nothing (or only silence) was added."""
        if self.power is None or self.power.sum() <= 0:
            raise ValueError("no clip with a non-zero predicted side was added: nothing to calibrate")
        return float(self.cross.sum() / self.power.sum())

    def summary(self, sample_rate: int) -> Dict[str, Any]:
        g = self.gain()
        n_bins = len(self.cross)
        return {
            "side_gain": g,
            "n_clips": self.n_clips,
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
    ax[0].axhline(summary["side_gain"], color="k", ls="--", label=f"all bins: {summary['side_gain']:.2f}")
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
    from streambin.train.data import SimBinauralDataset
    from streambin.train.evaluate import offline_predictor

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
    g = summary["side_gain"]
    print(f"least-squares side gain {g:.3f} over {summary['n_clips']} clips of {args.data} ({args.split}); "
          f"export with --side-gain {g:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
