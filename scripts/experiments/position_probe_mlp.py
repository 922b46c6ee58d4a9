"""A two-layer read-out of the azimuth from a checkpoint's visual feature.

An experiment kept so that its figures can be reproduced (docs/results.md, "How precisely the
picture gives the azimuth"): is the linear probe of ``python -m streambin.train.position_probe``
the limit, or does the feature hold more? Frames and features as that command takes them
(fitting on the first ``--max-clips`` training clips, two frames each, mirrored too); an MLP (256,
256 hidden units, ReLU, absolute error, AdamW at 1e-3, 3,000 batches of 256) is early-stopped
on the last fifth of the fitting frames, then scored on the other splits::

    python scripts/experiments/position_probe_mlp.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --fit /work/data/simall:train --score /work/data/simall:val320 /work/data/ood_val:all
"""
import argparse

import numpy as np
import torch

from streambin.train import position_probe as P
from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--fit", required=True, type=P.split_spec)
    p.add_argument("--score", required=True, nargs="+", type=P.split_spec)
    p.add_argument("--max-clips", type=int, default=3000)
    args = p.parse_args()
    flush_denormals()
    torch.manual_seed(0)
    gen, cfg = load_generator(args.checkpoint, mirror_average=False)
    gen.eval()
    size = tuple(cfg.model.visual_size)
    fit = P.single_source_frames(*args.fit, 2, args.max_clips, 0)
    x, y = P.features(gen, fit, size, "fit")
    scored = {f"{root}:{split}": P.features(gen, P.single_source_frames(root, split, 2, 0, 1), size, split)
              for root, split in args.score}
    mean, scale = x.mean(0), x.std(0) + 1e-8
    xt, yt = torch.tensor((x - mean) / scale, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    # Frames come in clip order, then their mirror images: hold out the last fifth of each half.
    n = len(fit)
    cut = int(n * 0.8)
    train_rows, held_rows = np.r_[0:cut, n:n + cut], np.r_[cut:n, n + cut:2 * n]
    for hidden, decay in ((256, 1e-4), (256, 1e-2)):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=decay)
        best = (float("inf"), None)
        for it in range(3000):
            rows = torch.from_numpy(np.random.default_rng(it).choice(train_rows, 256))
            loss = (net(xt[rows])[:, 0] - yt[rows]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if it % 100 == 99:
                with torch.no_grad():
                    held = float((net(xt[held_rows])[:, 0] - yt[held_rows]).abs().mean())
                if held < best[0]:
                    best = (held, {k: v.clone() for k, v in net.state_dict().items()})
        net.load_state_dict(best[1])
        line = [f"hidden {hidden}, weight decay {decay:g}: held-out fitting frames {best[0]:.1f} deg"]
        with torch.no_grad():
            for name, (xs, ys) in scored.items():
                pred = net(torch.tensor((xs - mean) / scale, dtype=torch.float32))[:, 0].numpy()
                near = np.abs(ys) < P.NEAR_CENTRE_DEG
                line.append(f"{name} MAE {np.abs(pred - ys).mean():.1f}, near the centre "
                            f"{np.abs(pred[near] - ys[near]).mean():.1f}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
