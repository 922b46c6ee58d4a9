"""Distil a generator's visual net into a smaller trunk, keeping its audio net as it is.

Usage::

    python -m streambin.train.distill_visual --teacher runs/default_v3_recovered.pt \\
        --data /work/data/simdiv --out runs/distill_compact --steps 3000

The student is the teacher generator with its trunk replaced (``--trunk``, default
``"compact"``: :class:`streambin.nets.visual.CompactTrunk`); the teacher's 1x1 reducer and its
audio net are copied and frozen, so the student's feature feeds the audio net the teacher
trained. Only the trunk learns, to make the reducer's pre-activation (the feature before its
ReLU, ``(B, 8, h, w)``) match the teacher's on the same frames. Where the teacher's value is
<= 0 the ReLU hides it, so there the loss only pushes the student's value down to 0:

    loss = mean( (s - t)^2 where t > 0,  relu(s)^2 where t <= 0 )

Frames: the ``--splits`` (default ``train``) of a SimBinaural-lite root, ``--frames-per-clip``
frames per clip spread over the clip, each drawn with the training augmentation (the papers'
colour jitter, a horizontal flip half of the time) plus a random crop of 80-100 % of the frame
(the same crop for teacher and student), and a uniform-colour frame with probability
``--blank-prob`` (what the engine sees with no picture). The validation frames (``val``
split, two per clip, unaugmented) give ``val_loss`` and ``val_rel`` (the loss over the
teacher features' mean square) every ``--val-every`` steps.

Output in ``--out``: ``last.pt`` (every ``--checkpoint-every`` steps: weights, optimiser,
step; ``--resume`` continues it, and with a larger ``--steps`` extends it: the cosine is then
taken over the new total from the step reached, so the rate rises again), ``best.pt`` (lowest
``val_loss``), ``log.csv``. Both are
ordinary generator checkpoints (config ``model.visual_net`` = the student's trunk), for
``python -m export.to_onnx --checkpoint`` and ``python -m streambin.train.evaluate``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from streambin.nets import BinauralGenerator
from streambin.train.build import generator_kwargs
from streambin.train.checkpoint import GENERATOR_PREFIX, load_generator, read_checkpoint, save_checkpoint
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import colour_jitter

STUDENT_TRUNKS = ("compact",)
CROP_SCALE = (0.8, 1.0)
LOG_COLUMNS = ("step", "loss", "val_loss", "val_rel", "lr", "elapsed_s")


def _clip_frames(root: Path, splits: Sequence[str], per_clip: int) -> List[Path]:
    """``per_clip`` frame paths per clip of ``splits``, evenly spread over each clip."""
    paths: List[Path] = []
    for split in splits:
        listing = root / "splits" / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{root} has no split {split!r} ({listing} missing)")
        for clip in listing.read_text().split():
            frames = sorted((root / "frames" / clip).glob("*.png"))
            if not frames:
                raise FileNotFoundError(f"clip {clip} of {root} has no frames")
            picks = np.linspace(0, len(frames) - 1, min(per_clip, len(frames)) + 2)[1:-1]
            paths += [frames[int(round(i))] for i in picks]
    if not paths:
        raise ValueError(f"no frames in splits {list(splits)} of {root}")
    return paths


class DistillFrames(Dataset):
    """Frames for distillation: item ``i`` -> ``(H, W, 3) uint8`` RGB at ``size_hw``.

    ``augment``: random crop, colour jitter, flip and blank frames (module docstring), drawn
    from ``seed``, the item index and the epoch (:meth:`set_epoch`), so a resumed run draws anew.
    """

    def __init__(self, paths: Sequence[Path], size_hw: Tuple[int, int], augment: bool,
                 blank_prob: float = 0.05, seed: int = 0):
        if not 0.0 <= blank_prob <= 1.0:
            raise ValueError(f"blank_prob must be in [0, 1], got {blank_prob}")
        self.paths, self.size_hw, self.augment = list(paths), tuple(size_hw), bool(augment)
        self.blank_prob, self.seed, self.epoch = float(blank_prob), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        h, w = self.size_hw
        img = cv2.imread(str(self.paths[i]), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read frame {self.paths[i]}")
        if not self.augment:
            return torch.from_numpy(_resize_rgb(img, w, h))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if rng.random() < self.blank_prob:
            return torch.from_numpy(np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy())
        scale = rng.uniform(*CROP_SCALE)
        ch, cw = max(1, int(img.shape[0] * scale)), max(1, int(img.shape[1] * scale))
        y0 = int(rng.integers(0, img.shape[0] - ch + 1))
        x0 = int(rng.integers(0, img.shape[1] - cw + 1))
        frame = _resize_rgb(img[y0:y0 + ch, x0:x0 + cw], w, h)
        frame = colour_jitter(frame, rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3))
        if rng.random() < 0.5:
            frame = frame[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(frame))


def _resize_rgb(bgr: np.ndarray, w: int, h: int) -> np.ndarray:
    if bgr.shape[:2] != (h, w):
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def feature_preactivation(gen: BinauralGenerator, frames: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3) uint8`` -> the reducer's output before its ReLU, ``(B, C, h, w)``."""
    fmap = gen.trunk_map(frames)
    if gen.gate is not None:
        fmap = gen.gate(fmap)
    conv, bn = gen.reduce[0], gen.reduce[1]
    return bn(conv(fmap))


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The module docstring's loss on pre-activations of equal shape."""
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher pre-activations differ in shape: "
                         f"{tuple(student.shape)} vs {tuple(teacher.shape)}")
    positive = teacher > 0
    err = torch.where(positive, student - teacher, torch.relu(student))
    return err.pow(2).mean()


def make_student(teacher: BinauralGenerator, cfg, trunk: str):
    """``(student generator, its Config)``: the teacher with a fresh ``trunk``; everything but the
    trunk is a frozen copy of the teacher's."""
    if trunk not in STUDENT_TRUNKS:
        raise ValueError(f"trunk must be one of {STUDENT_TRUNKS}, got {trunk!r}")
    if teacher.arch != "unet" or teacher.visual_net == "c3d":
        raise ValueError(f"distillation needs a unet generator with a single-frame trunk, got "
                         f"{teacher.arch} with {teacher.visual_net}")
    student_cfg = copy.deepcopy(cfg)
    student_cfg.model.visual_net = trunk
    student_cfg.model.imagenet_weights = None
    student_cfg.model.mirror_average = False
    student = BinauralGenerator(**generator_kwargs(student_cfg))
    own = {k: v for k, v in teacher.state_dict().items() if not k.startswith("trunk.")}
    missing, unexpected = student.load_state_dict(own, strict=False)
    if unexpected or any(not k.startswith("trunk.") for k in missing):
        raise ValueError(f"teacher and student differ outside the trunk: missing {missing}, unexpected {unexpected}")
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith("trunk."))
    return student, student_cfg


class _Student(torch.nn.Module):
    """Keeps every part but the trunk in eval mode (frozen BatchNorm statistics) while training."""

    def __init__(self, gen: BinauralGenerator):
        super().__init__()
        self.gen = gen

    def train(self, mode: bool = True):
        super().train(False)
        self.gen.trunk.train(mode)
        return self


def _evaluate(wrapper: _Student, teacher, loader) -> Tuple[float, float]:
    """``(val_loss, val_rel)`` over ``loader``'s frames."""
    wrapper.eval()
    student = wrapper.gen
    total, power, n = 0.0, 0.0, 0
    with torch.inference_mode():
        for frames in loader:
            t = feature_preactivation(teacher, frames)
            s = feature_preactivation(student, frames)
            total += distill_loss(s, t).item() * len(frames)
            power += torch.relu(t).pow(2).mean().item() * len(frames)
            n += len(frames)
    return total / n, (total / power if power > 0 else float("nan"))


def run(teacher_path: str, data: str, out: str, steps: int, trunk: str = "compact",
        splits: Sequence[str] = ("train",), frames_per_clip: int = 8, batch_size: int = 64,
        lr: float = 2e-3, blank_prob: float = 0.05, val_every: int = 250, checkpoint_every: int = 100,
        val_clips: Optional[int] = 200, resume: bool = False, seed: int = 0, workers: int = 1,
        progress: bool = True) -> dict:
    """Run (or continue) a distillation; returns ``{"step", "best_val", "train_seconds"}``."""
    if steps < 1 or batch_size < 1 or frames_per_clip < 1 or val_every < 1 or checkpoint_every < 1:
        raise ValueError("steps, batch_size, frames_per_clip, val_every and checkpoint_every must be >= 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    root, out_dir = Path(data), Path(out)
    teacher, cfg = load_generator(teacher_path, mirror_average=False)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student, student_cfg = make_student(teacher, cfg, trunk)
    wrapper = _Student(student)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))

    size = tuple(cfg.model.visual_size)
    train_set = DistillFrames(_clip_frames(root, splits, frames_per_clip), size, augment=True,
                              blank_prob=blank_prob, seed=seed)
    val_paths = _clip_frames(root, ["val"], 2)
    if val_clips is not None:
        val_paths = val_paths[:2 * val_clips]
    val_loader = DataLoader(DistillFrames(val_paths, size, augment=False), batch_size=batch_size,
                            num_workers=workers)

    step, epoch, best_val, seconds = 0, 0, None, 0.0
    last = out_dir / "last.pt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no {last} to continue")
        ckpt = read_checkpoint(str(last))
        student.load_state_dict({k[len(GENERATOR_PREFIX):]: v for k, v in ckpt["model"].items()})
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step, epoch, best_val, seconds = ckpt["step"], ckpt["epoch"], ckpt["best_val"], ckpt["train_seconds"]
    elif last.is_file():
        raise FileExistsError(f"{last} exists: pass --resume to continue it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.csv"
    new_log = not log_path.is_file()
    log_file = open(log_path, "a", newline="")
    log = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
    if new_log:
        log.writeheader()

    def save(path: Path) -> None:
        save_checkpoint(str(path), config=student_cfg, model=student, optimizer=opt, scheduler=sched,
                        epoch=epoch, step=step, best_val=best_val, train_seconds=seconds)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=step, desc="distil", unit="step")
    start = time.perf_counter() - seconds
    try:
        while step < steps:
            train_set.set_epoch(epoch)
            gen = torch.Generator().manual_seed(seed * 100003 + epoch)
            order = torch.randperm(len(train_set), generator=gen).tolist()
            loader = DataLoader(train_set, batch_size=batch_size, sampler=order, num_workers=workers, drop_last=True)
            for frames in loader:
                wrapper.train()
                with torch.no_grad():
                    target = feature_preactivation(teacher, frames)
                loss = distill_loss(feature_preactivation(student, frames), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                seconds = time.perf_counter() - start
                row = {"step": step, "loss": f"{loss.item():.6f}", "lr": f"{sched.get_last_lr()[0]:.3g}",
                       "elapsed_s": f"{seconds:.1f}"}
                if step % val_every == 0 or step == steps:
                    val_loss, val_rel = _evaluate(wrapper, teacher, val_loader)
                    row.update(val_loss=f"{val_loss:.6f}", val_rel=f"{val_rel:.4f}")
                    if best_val is None or val_loss < best_val:
                        best_val = val_loss
                        save(out_dir / "best.pt")
                log.writerow(row)
                log_file.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=row["loss"], val=row.get("val_loss", "-"))
                if step % checkpoint_every == 0 or step == steps:
                    save(last)
                if step >= steps:
                    break
            epoch += 1
    finally:
        log_file.close()
        if bar is not None:
            bar.close()
    return {"step": step, "best_val": best_val, "train_seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streambin.train.distill_visual",
                                 description="Distil a generator's visual net into a smaller trunk "
                                             "(module docstring).")
    ap.add_argument("--teacher", required=True, help="teacher generator checkpoint (.pt)")
    ap.add_argument("--data", required=True, help="SimBinaural-lite root (frames/, splits/)")
    ap.add_argument("--out", required=True, help="output directory (last.pt, best.pt, log.csv)")
    ap.add_argument("--steps", type=int, required=True, help="total optimiser steps")
    ap.add_argument("--trunk", default="compact", choices=STUDENT_TRUNKS)
    ap.add_argument("--splits", default="train", help="comma-separated training splits (default train)")
    ap.add_argument("--frames-per-clip", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay to 0)")
    ap.add_argument("--blank-prob", type=float, default=0.05)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--val-clips", type=int, default=200, help="validation clips (2 frames each)")
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="frame-loading processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue <out>/last.pt (a larger --steps extends it)")
    args = ap.parse_args(argv)
    flush_denormals()
    try:
        result = run(args.teacher, args.data, args.out, args.steps, trunk=args.trunk,
                     splits=[s for s in args.splits.split(",") if s], frames_per_clip=args.frames_per_clip,
                     batch_size=args.batch_size, lr=args.lr, blank_prob=args.blank_prob,
                     val_every=args.val_every, checkpoint_every=args.checkpoint_every,
                     val_clips=args.val_clips, resume=args.resume, seed=args.seed, workers=args.workers)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"step {result['step']}, best val_loss {result['best_val']}, {result['train_seconds']:.0f} s "
          f"-> {os.path.join(args.out, 'best.pt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
