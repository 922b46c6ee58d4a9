"""Train a checkpoint's visual path alone (trunk + reduction) to say where the sources are.

An experiment kept so that its figures can be reproduced (docs/results.md, "How precisely the
picture gives the azimuth"; ``--online``: "Online frames, a finer map and half the pictures"),
not a training command of the library. On SimBinaural-lite frames (with positions) it trains the
trunk and the reduction with the column loss, the within-column offset loss
(streambin.train.recipes.parts) and a linear read-out of the box centre from the flattened
feature (``--readout-weight`` x mean absolute error, single-source frames), at one rate, batch
32. ``--max-shift P`` shifts each frame sideways by up to P pixels (edge pixels repeated) and
moves the boxes with it, so a source's place cannot be learned from the background. ``--online``
draws every frame from a new scene of the generator's train pool
(``OnlineSimDataset(frames_only=True)``) instead of the data set's clips; ``--clipart-share S``
draws the objects of a share S of those scenes as clip art (``SceneOptions.clipart_share``). The audio net is left
as it was; the written checkpoint is for ``python -m streambin.train.position_probe``, not for
listening::

    python scripts/experiments/visual_position_only.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --data /work/data/simall --steps 1500 --max-shift 32 --out runs/visual_position_shift1500.pt
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader

from streambin.nets.weights import read_checkpoint
from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import OnlineSimDataset, SimBinauralDataset
from streambin.train.recipes.parts import LocalisationHead, PositionOffsetHead
from streambin.train.sim.scene import SceneOptions


def batches_forever(loader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def shift_frames(frames, source_x, max_shift, generator):
    """``(B, H, W, 3)`` uint8 frames shifted right by a random ``d`` in [-max_shift, max_shift]
    pixels each (edge pixels repeated), and ``source_x (B, S)`` moved to match (-1 where a centre
    leaves the frame)."""
    if max_shift == 0:
        return frames, source_x
    width = frames.shape[2]
    out, moved_x = frames.clone(), source_x.clone()
    for i in range(frames.shape[0]):
        d = int(torch.randint(-max_shift, max_shift + 1, (1,), generator=generator))
        out[i] = frames[i][:, (torch.arange(width) - d).clamp(0, width - 1)]
        moved = source_x[i] + d / width
        keep = (source_x[i] >= 0) & (moved >= 0) & (moved <= 1)
        moved_x[i] = torch.where(keep, moved, torch.full_like(moved, -1.0))
    return out, moved_x


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", help="SimBinaural-lite root with a train split and sidecars (not with --online)")
    p.add_argument("--out", required=True, help="checkpoint to write (the input's, visual weights replaced)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--max-shift", type=int, default=0, help="pixels; 0: no shifts")
    p.add_argument("--readout-weight", type=float, default=4.0)
    p.add_argument("--online", action="store_true",
                   help="frames of new generated scenes (train pool) instead of --data's clips")
    p.add_argument("--clipart-share", type=float, default=0.0,
                   help="with --online: share of scenes whose objects are clip-art drawings "
                        "(SceneOptions.clipart_share; default 0)")
    args = p.parse_args()
    if args.online == bool(args.data):
        p.error("give exactly one of --data and --online")
    if args.clipart_share and not args.online:
        p.error("--clipart-share needs --online")
    flush_denormals()
    torch.manual_seed(0)
    shifts = torch.Generator().manual_seed(1)
    gen, cfg = load_generator(args.checkpoint, mirror_average=False)
    size = tuple(cfg.model.visual_size)
    channels = cfg.model.visual_reduced_channels
    offset_head, column_head = PositionOffsetHead(channels), LocalisationHead()
    readout = torch.nn.Linear(gen.map_feature_shape[0], 1)
    if args.online:
        data = OnlineSimDataset(32 * args.steps, pool="train", seed=0, visual_size=size, flip_prob=0.5,
                                with_positions=True, frames_only=True,
                                options=SceneOptions(clipart_share=args.clipart_share))
    else:
        data = SimBinauralDataset(args.data, "train", visual_size=size, flip_prob=0.5, seed=0,
                                  with_positions=True, crop_samples=160)
    loader = DataLoader(data, batch_size=32, shuffle=not args.online, num_workers=1, drop_last=True,
                        persistent_workers=True)
    params = [*gen.trunk.parameters(), *gen.reduce.parameters(), *offset_head.parameters(),
              *column_head.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    start, batches = time.time(), batches_forever(loader)
    gen.train()
    for step in range(1, args.steps + 1):
        batch = next(batches)
        frames, source_x = shift_frames(batch["frame"], batch["source_x"], args.max_shift, shifts)
        fmap = gen.trunk_map(frames)
        feature = gen.feature_from_map(fmap)
        single = (source_x >= 0).sum(1) == 1
        centre = source_x.max(1).values
        err = (readout(feature)[:, 0] - centre).abs()[single].mean() if single.any() else feature.sum() * 0
        loss = (offset_head(feature.view(fmap.shape[0], channels, *fmap.shape[2:]), source_x)
                + column_head(fmap, source_x) + args.readout_weight * err)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(step, f"loss {loss.item():.3f} read-out error {err.item():.3f} (of the width)",
                  f"{time.time() - start:.0f}s", flush=True)
    ckpt = read_checkpoint(args.checkpoint)
    for k, v in gen.state_dict().items():
        ckpt["model"]["generator." + k] = v
    torch.save(ckpt, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
