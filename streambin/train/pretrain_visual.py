"""Pretrain the ResNet-18 visual trunk to localise sources (our stand-in for ImageNet weights).

The papers start their visual net from ImageNet weights, which cannot be downloaded on the
machines streambin is trained on. Trained from scratch with the papers' losses alone, the trunk
did not learn to localise in a CPU budget (docs/results.md). This command gives every recipe the
same starting point instead: a trunk trained, on frames alone, to say which columns of its
``(512, h, w)`` map hold a source (the simulator's boxes; :class:`LocalisationHead`, per-column
BCE). No audio is involved, so no recipe's loss is favoured. The output is a torchvision-named
``resnet18`` state_dict that ``model.imagenet_weights`` loads::

    python -m streambin.train.pretrain_visual --data /work/data/simbin --out runs/visual_pretrain \
        --steps 1500
    python -m streambin.train --recipe apnet --config configs/compare_cpu.yaml ...  # loads it

Writes ``<out>/resnet18.pth`` (trunk state_dict), ``<out>/log.csv`` (step, loss, elapsed_s) and
``<out>/summary.json`` (validation loss and column accuracy: the fraction of map columns whose
"holds a source" prediction is right, on the val split's frames, beside the accuracy of always
answering "no source", the trivial baseline).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from typing import List, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from streambin.nets.generator import IMAGENET_MEAN, IMAGENET_STD
from streambin.nets.resnet import ResNet18Trunk
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.recipes.parts import LocalisationHead


class LocaliserNet(torch.nn.Module):
    """``frames (B, H, W, 3) uint8`` -> trunk map; ``loss(frames, source_x (B, S))`` -> BCE scalar."""

    def __init__(self):
        super().__init__()
        self.trunk = ResNet18Trunk()
        self.head = LocalisationHead(ResNet18Trunk.out_channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[3] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be (B, H, W, 3) uint8 RGB, got {tuple(frames.shape)} {frames.dtype}")
        # The same normalisation as BinauralGenerator.trunk_map, so the trunk transfers as is.
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        return self.trunk((x - self.mean) / self.std)

    def loss(self, frames: torch.Tensor, source_x: torch.Tensor) -> torch.Tensor:
        return self.head(self(frames), source_x)

    @torch.no_grad()
    def column_hits(self, frames: torch.Tensor, source_x: torch.Tensor) -> Tuple[int, int, int]:
        """(right column decisions, columns, columns holding a source) for a batch: logit > 0
        vs "a box centre is in it"."""
        logits = self.head.conv(self(frames)).mean(dim=2)[:, 0]
        target = self.head.column_targets(logits, source_x)
        return int(((logits > 0).float() == target).sum()), int(target.numel()), int(target.sum())


def _dataset(root: str, split: str, visual_size, seed: int, flip_prob: float):
    from streambin.train.data import SimBinauralDataset

    # crop_samples is irrelevant here (audio unused); the smallest keeps reads cheap.
    return SimBinauralDataset(root, split, mode="train", visual_size=visual_size, crop_samples=160,
                              flip_prob=flip_prob, seed=seed, with_positions=True)


CHECKPOINT_EVERY_STEPS = 100


def pretrain(data: str, out: str, steps: int, visual_size=(64, 128), batch_size: int = 32, lr: float = 1e-3,
             seed: int = 0, num_workers: int = 1, progress: bool = True, resume: bool = False,
             ood_data: Optional[str] = None) -> dict:
    """Train :class:`LocaliserNet` for ``steps`` Adam steps; write the trunk; return the summary.

    The state (weights, optimiser, step, epoch) is saved to ``<out>/checkpoint.pt`` every
    :data:`CHECKPOINT_EVERY_STEPS` steps; ``resume=True`` continues from it (same data order).
    ``ood_data``: a set whose ``all`` split (e.g. the OOD validation set) is scored too.
    """
    from tqdm import tqdm

    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"steps and batch_size must be >= 1 and lr > 0, got {steps}, {batch_size}, {lr}")
    torch.manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    train_set = _dataset(data, "train", visual_size, seed, flip_prob=0.5)
    val_set = _dataset(data, "val", visual_size, seed + 1, flip_prob=0.0)
    net = LocaliserNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    ckpt_path = os.path.join(out, "checkpoint.pt")
    t0, step, epoch, done_s = time.time(), 0, 0, 0.0
    if resume:
        if not os.path.isfile(ckpt_path):
            raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step, epoch, done_s = state["step"], state["epoch"], state.get("elapsed_s", 0.0)
    log_path = os.path.join(out, "log.csv")
    with open(log_path, "a" if resume else "w", newline="") as f, tqdm(
            total=steps, initial=step, disable=not progress, desc="pretrain visual") as bar:
        log = csv.writer(f)
        if not resume:
            log.writerow(["step", "epoch", "loss", "elapsed_s"])
        net.train()
        while step < steps:
            train_set.set_epoch(epoch)
            # The shuffle order of an epoch depends on (seed, epoch) only, so a resumed run
            # skips the batches the first run already took and sees the same data order.
            order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True,
                                num_workers=num_workers, generator=order)
            skip = step - epoch * len(loader) if resume and step > epoch * len(loader) else 0
            for b_index, batch in enumerate(loader):
                if b_index < skip:
                    continue
                loss = net.loss(batch["frame"], batch["source_x"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"pretraining loss is {value} at step {step}")
                bar.update(1)
                if step % 25 == 0 or step == steps:
                    log.writerow([step, epoch, f"{value:.6f}", f"{done_s + time.time() - t0:.1f}"])
                    f.flush()
                    bar.set_postfix(loss=f"{value:.4f}")
                if step % CHECKPOINT_EVERY_STEPS == 0 or step == steps:
                    tmp = ckpt_path + ".tmp"
                    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step,
                                "epoch": epoch, "elapsed_s": done_s + time.time() - t0}, tmp)
                    os.replace(tmp, ckpt_path)
                if step >= steps:
                    break
            else:
                epoch += 1
                resume = False
    train_s = done_s + time.time() - t0
    summary = {"steps": steps, "batch_size": batch_size, "lr": lr, "visual_size": list(visual_size),
               "train_seconds": round(train_s, 1), **evaluate(net, val_set, batch_size)}
    if ood_data:
        ood = evaluate(net, _dataset(ood_data, "all", visual_size, seed + 2, flip_prob=0.0), batch_size)
        summary.update({f"ood_{k[4:]}": v for k, v in ood.items()})
    path = os.path.join(out, "resnet18.pth")
    tmp = path + ".tmp"
    torch.save(net.trunk.state_dict(), tmp)
    os.replace(tmp, path)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


@torch.no_grad()
def evaluate(net: LocaliserNet, val_set, batch_size: int) -> dict:
    """Mean BCE and column accuracy over ``val_set`` (eval-mode batch norm), with the accuracy
    of the trivial answer "no column holds a source" for comparison."""
    net.eval()
    loss_sum, n, hits, cols, positive = 0.0, 0, 0, 0, 0
    for batch in DataLoader(val_set, batch_size=batch_size, shuffle=False):
        b = batch["frame"].shape[0]
        loss_sum += float(net.loss(batch["frame"], batch["source_x"])) * b
        n += b
        h, c, pos = net.column_hits(batch["frame"], batch["source_x"])
        hits, cols, positive = hits + h, cols + c, positive + pos
    net.train()
    if n == 0:
        raise ValueError("the val split is empty")
    return {"val_loss": round(loss_sum / n, 5), "val_column_accuracy": round(hits / cols, 4),
            "val_empty_answer_accuracy": round(1 - positive / cols, 4), "val_items": n}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.pretrain_visual", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="SimBinaural-lite root (python -m streambin.train.simulate --out)")
    p.add_argument("--out", required=True, help="output directory (resnet18.pth, log.csv, summary.json)")
    p.add_argument("--steps", type=int, default=1500, help="Adam steps (default 1500)")
    p.add_argument("--visual-size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"),
                   help="frame size the trunk sees (default 64 128, the CPU models')")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--ood-data", default=None,
                   help="also score the 'all' split of this set (e.g. the OOD validation set)")
    a = p.parse_args(argv)
    flush_denormals()
    try:
        summary = pretrain(a.data, a.out, a.steps, tuple(a.visual_size), a.batch_size, a.lr, a.seed,
                           a.num_workers, progress=not a.no_progress, resume=a.resume,
                           ood_data=a.ood_data)
    except (ValueError, FileNotFoundError) as exc:
        print(f"pretrain_visual: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
