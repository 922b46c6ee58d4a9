"""Does a finer visual map give a finer azimuth on unseen pictures? Stride 32 against stride 16.

An experiment kept so that its figures can be reproduced (docs/results.md, "Online frames, a
finer map and half the pictures"), not a training command of the library. From a checkpoint's
ResNet-18 trunk it trains a per-column azimuth read-out on the trunk's map at stride 32
(``layer4``, the map the shipped models reduce; 4 columns at 128 px) or at stride 16
(``layer3``, 8 columns): a 1x1 conv gives each map cell a logit, the rows are averaged, a
softmax over the columns gives where the sounding source is, and the expected column centre (a
soft arg-max, so it can fall between columns) is the predicted box centre as a fraction of the
width. The loss is the absolute error on frames with exactly one sounding source (``--data``'s
``--split``, default train; mirrored half the time); the trunk up to the tapped stage trains
with it (``--freeze-trunk``: the read-out alone, each stride's baseline). It then scores the
read-out, in degrees, on the position probe's frames of each ``--score`` split (each frame also
mirrored), converting the predicted centre to an azimuth at the split's mean field of view, as
the probe's box-centre baseline does::

    python scripts/experiments/visual_map_resolution.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --data /work/data/simall --stride 16 --steps 1000 \\
        --score /work/data/simall:val320 /work/data/ood_val:all --out runs/map_resolution16.json
"""
import argparse
import json
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from streambin.nets.resnet import ResNet18Trunk
from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import SimBinauralDataset, load_frame
from streambin.train.position_probe import NEAR_CENTRE_DEG, box_centre_azimuths, labelled_frames, split_spec
from streambin.train.sim.scene import column_to_azimuth


class ColumnReadout(torch.nn.Module):
    """uint8 frames ``(B, H, W, 3)`` -> predicted box centre ``(B,)`` as a fraction of the width,
    from the generator's trunk tapped at ``stride`` 16 or 32."""

    def __init__(self, generator, stride: int):
        super().__init__()
        if not isinstance(generator.trunk, ResNet18Trunk) or generator.trunk.dilated:
            raise ValueError("the experiment taps a plain ResNet-18 trunk")
        self.generator, self.stride = generator, stride
        self.logit = torch.nn.Conv2d(512 if stride == 32 else 256, 1, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.generator.trunk_map(frames, self.stride)
        p = self.logit(x).mean(dim=2)[:, 0].softmax(dim=1)                  # (B, w)
        w = p.shape[1]
        centres = (torch.arange(w, dtype=p.dtype) + 0.5) / w
        return (p * centres).sum(dim=1)


@torch.no_grad()
def score_split(readout, root, split, visual_size) -> dict:
    frames = labelled_frames(root, split, 2, 0, 1)   # the probe's scored frames (seed 0 + 1)
    preds = []
    for i in range(0, len(frames), 64):
        x = torch.from_numpy(np.stack([load_frame(f.path, visual_size) for f in frames[i:i + 64]]))
        preds.append(torch.cat([readout(x), 1.0 - readout(x.flip(2))]).numpy().reshape(2, -1))
    own = np.concatenate([p[0] for p in preds])
    mirrored = np.concatenate([p[1] for p in preds])  # the mirrored frames' read-out, in the frame's own coordinates
    mean_hfov = float(np.mean([f.hfov_deg for f in frames]))
    az = np.array([column_to_azimuth(u * f.width_px, f.width_px, mean_hfov) for u, f in zip(own, frames)])
    az_m = np.array([column_to_azimuth(u * f.width_px, f.width_px, mean_hfov) for u, f in zip(mirrored, frames)])
    pred = np.concatenate([az, az_m])
    true = np.array([f.azimuth_deg for f in frames] * 2)
    err = np.abs(pred - true)
    near = np.abs(true) < NEAR_CENTRE_DEG
    scenes = np.array([f.scene for f in frames] * 2)
    return {"frames": int(true.size), "mae_deg": float(err.mean()), "mae_near_centre_deg": float(err[near].mean()),
            "side_accuracy": float(np.mean(np.sign(pred[~near]) == np.sign(true[~near]))),
            "box_centre_mae_deg": float(np.abs(box_centre_azimuths(frames)[:len(frames)] - true[:len(frames)]).mean()),
            "by_scene_mae_deg": {name: float(err[scenes == name].mean()) for name in sorted(set(scenes))}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="SimBinaural-lite root with a train split and sidecars")
    p.add_argument("--split", default="train", help="the split of --data to train on (default train)")
    p.add_argument("--stride", type=int, choices=(16, 32), required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--trunk-lr", type=float, default=None, help="the trunk's rate (default: --lr)")
    p.add_argument("--seed", type=int, default=0, help="the read-out's initial weights and the frames' order")
    p.add_argument("--freeze-trunk", action="store_true",
                   help="train the read-out alone on the checkpoint's trunk (the baseline of each stride)")
    p.add_argument("--score", nargs="+", required=True, help="ROOT:SPLIT ...")
    p.add_argument("--out", required=True, help="JSON of the scores")
    args = p.parse_args()
    flush_denormals()
    torch.manual_seed(args.seed)
    gen, cfg = load_generator(args.checkpoint, mirror_average=False)
    size = tuple(cfg.model.visual_size)
    readout = ColumnReadout(gen, args.stride)
    data = SimBinauralDataset(args.data, args.split, visual_size=size, flip_prob=0.5, seed=args.seed,
                              with_positions=True, crop_samples=160)
    loader = DataLoader(data, batch_size=32, shuffle=True, num_workers=1, drop_last=True, persistent_workers=True)
    trunk = gen.trunk
    stages = [trunk.conv1, trunk.bn1, trunk.layer1, trunk.layer2, trunk.layer3] + ([trunk.layer4] if args.stride == 32 else [])
    trunk_lr = args.lr if args.trunk_lr is None else args.trunk_lr
    groups = [{"params": list(readout.logit.parameters()), "lr": args.lr}]
    if args.freeze_trunk:
        gen.requires_grad_(False)  # no backward pass through a trunk that never steps
    else:
        groups.append({"params": [q for m in stages for q in m.parameters()], "lr": trunk_lr})
    opt = torch.optim.Adam(groups)
    start, step = time.time(), 0
    gen.eval() if args.freeze_trunk else gen.train()  # frozen: the trunk's batch norms keep their statistics
    while step < args.steps:
        for batch in loader:
            source_x = batch["source_x"]
            single = (source_x >= 0).sum(1) == 1
            if not single.any():
                continue
            err = (readout(batch["frame"][single]) - source_x[single].max(1).values).abs().mean()
            opt.zero_grad()
            err.backward()
            opt.step()
            step += 1
            if step % 100 == 0:
                print(step, f"error {err.item():.3f} (of the width)", f"{time.time() - start:.0f}s", flush=True)
            if step == args.steps:
                break
    gen.eval()
    result = {"checkpoint": args.checkpoint, "data": f"{args.data}:{args.split}", "stride": args.stride,
              "steps": args.steps, "lr": args.lr, "trunk_lr": trunk_lr, "seed": args.seed,
              "freeze_trunk": args.freeze_trunk,
              "train_s": round(time.time() - start), "splits": {}}
    for spec in args.score:
        root, split = split_spec(spec)
        result["splits"][spec] = score_split(readout, root, split, size)
        print(spec, json.dumps(result["splits"][spec]), flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
