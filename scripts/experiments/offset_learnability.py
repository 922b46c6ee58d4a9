"""Can a checkpoint's visual path learn the within-column offset, on frames alone, at a given rate?

An experiment kept so that its figures can be reproduced (docs/results.md, "How precisely the
picture gives the azimuth"). It trains the trunk and reduction with a fresh offset head and the
column loss (streambin.train.recipes.parts) on SimBinaural-lite training frames, batch 32, and
prints the offset head's mean absolute error on six validation batches (0.25: always answering
the middle of the column) before training and every 100 steps. Nothing is written::

    python scripts/experiments/offset_learnability.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --data /work/data/simall --val-split val320 --lr 0.001 --steps 300
"""
import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import SimBinauralDataset
from streambin.train.recipes.parts import LocalisationHead, PositionOffsetHead
from visual_position_only import batches_forever  # this script's folder is on sys.path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--val-split", default="val")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    flush_denormals()
    torch.manual_seed(0)
    gen, cfg = load_generator(args.checkpoint, mirror_average=False)
    size = tuple(cfg.model.visual_size)
    channels = cfg.model.visual_reduced_channels
    offset_head, column_head = PositionOffsetHead(channels), LocalisationHead()

    def dataset(split, seed):
        return SimBinauralDataset(args.data, split, visual_size=size, flip_prob=0.5, seed=seed, with_positions=True,
                                  crop_samples=160)

    train = DataLoader(dataset("train", 0), batch_size=32, shuffle=True, num_workers=1, drop_last=True)
    val = [b for _, b in zip(range(6), DataLoader(dataset(args.val_split, 1), batch_size=32, shuffle=False))]
    params = [*gen.trunk.parameters(), *gen.reduce.parameters(), *offset_head.parameters(),
              *column_head.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)

    def val_error():
        gen.eval()
        errors = []
        with torch.no_grad():
            for b in val:
                fmap = gen.trunk_map(b["frame"])
                feature = gen.feature_from_map(fmap).view(fmap.shape[0], channels, *fmap.shape[2:])
                errors.append(float(offset_head(feature, b["source_x"])))
        gen.train()
        return np.mean(errors)

    print("validation offset error before", round(val_error(), 4), flush=True)
    start, batches = time.time(), batches_forever(train)
    for step in range(1, args.steps + 1):
        batch = next(batches)
        fmap = gen.trunk_map(batch["frame"])
        feature = gen.feature_from_map(fmap)
        loss = (offset_head(feature.view(fmap.shape[0], channels, *fmap.shape[2:]), batch["source_x"])
                + column_head(fmap, batch["source_x"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(step, "validation offset error", round(val_error(), 4), f"{time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
