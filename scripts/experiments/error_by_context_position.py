"""How a model's side error depends on where in its 64-frame context an output frame lies.

An experiment kept so that its figures can be reproduced (docs/results.md, "What the visual path
should learn in joint fine-tuning"), not a command of the library. The streaming engine plays the
newest frames of each context; the offline protocol averages every place in a window. For each
checkpoint (mirror-averaged, side scaled by ``--side-gain`` as the engine does), on the clips of a
split with one static sounding source (``--scenes``: anechoic, room or all), windows of one
context every ``--hop-s`` seconds are run through the generator, and for each context position
the squared error of the predicted side spectrum against the true side (``(L - R) / 2``) is
summed over the bins, windows and clips (each clip at a peak of 1, as the STFT metric scales
it), over the true side's energy summed the same way. That is the STFT distance over
Mono-Mono's at that position (1 = no better than a silent side), for a prediction whose mid is
exact, as a side mask's is. With ``--framing stream`` each window is framed as the engine
frames its context (the newest frames hold real samples; the centred framing pads them). It
prints the mean over position groups::

    python scripts/experiments/error_by_context_position.py --data /work/data/ood_val --split all \\
        --max-clips 100 --checkpoints runs/ft_ma_step200_recovered.pt runs/frozentrunk/last.pt
"""
import argparse
import json
from pathlib import Path

import torch

from streambin.train.checkpoint import load_generator
from streambin.train.data import SimBinauralDataset
from streambin.train.evaluate import _audio_params, _window_features, window_starts
from streambin.signal_contract import (STFT_FRAMINGS, apply_masks_torch, input_scale_torch, network_input_torch,
                                       stft_torch)

GROUPS = (("oldest 16", slice(0, 16)), ("16-31", slice(16, 32)), ("32-46", slice(32, 47)),
          ("newest 17 (what the engine's graph computes)", slice(47, 64)),
          ("60-62 (what block 3, lookahead 1 plays)", slice(60, 63)))


def single_static(meta: dict, scenes: str) -> bool:
    sounding = [s for s in meta["sources"] if not s.get("silent", False)]
    if len(sounding) != 1 or sounding[0].get("moving", False):
        return False
    room = bool(meta.get("room"))
    return scenes == "all" or (scenes == "room") == room


@torch.no_grad()
def position_errors(model, cfg, item, hop_s: float, side_gain: float, framing: str = "centered"):
    """``(error (T,), energy (T,))``: the clip's squared side error per context position and
    the true side's energy there, each summed over the bins and the clip's windows, with the
    clip scaled to a peak of 1 as the STFT metric scales it."""
    p = _audio_params(cfg.audio)
    audio = item["audio"].float()                                    # (2, n) left, right
    audio = audio / audio.abs().max().clamp(min=1e-9)
    mono, side = (audio[0] + audio[1]) / 2, (audio[0] - audio[1]) / 2
    crop, sr = p["crop"], p["sample_rate"]
    starts = window_starts(mono.numel(), crop, max(1, int(round(hop_s * sr))))
    feats = _window_features(model, item["frames"], item["fps"], starts, crop, sr, "true", 32, torch.device("cpu"))
    x = torch.stack([mono[s:s + crop] for s in starts])
    d = torch.stack([side[s:s + crop] for s in starts])
    spec = stft_torch(x, p["n_fft"], p["hop"], p["win_length"], framing=framing)   # (B, F, T) complex
    true = stft_torch(d, p["n_fft"], p["hop"], p["win_length"], framing=framing)
    mask = model.audio(network_input_torch(spec, input_scale_torch(x, p["input_rms"], p["rms_floor"])), feats)
    lr = apply_masks_torch(spec, mask, model.mask_kind)              # (B, 2, F, T) left, right
    pred = (lr[:, 0] - lr[:, 1]) / 2 * side_gain
    return (pred - true).abs().pow(2).sum(dim=(0, 1)).numpy(), true.abs().pow(2).sum(dim=(0, 1)).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="all")
    ap.add_argument("--max-clips", type=int, default=100)
    ap.add_argument("--scenes", choices=("anechoic", "room", "all"), default="anechoic")
    ap.add_argument("--hop-s", type=float, default=0.3)
    ap.add_argument("--side-gain", type=float, default=1.179)
    ap.add_argument("--framing", choices=STFT_FRAMINGS, default="centered",
                    help="how each window is framed: 'centered' (the offline protocol's) or 'stream' "
                         "(the engine's, where the newest frames hold real samples)")
    ap.add_argument("--checkpoints", nargs="+", required=True)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    for ck in a.checkpoints:
        model, cfg = load_generator(ck, mirror_average=True)
        model.eval()
        ds = SimBinauralDataset(a.data, a.split, mode="eval", visual_size=tuple(cfg.model.visual_size))
        err, energy, clips = 0.0, 0.0, 0
        for i in range(min(a.max_clips, len(ds))):
            if not single_static(ds.meta(i), a.scenes):
                continue
            e, t = position_errors(model, cfg, ds[i], a.hop_s, a.side_gain, a.framing)
            err, energy, clips = err + e, energy + t, clips + 1
        if not clips:
            raise SystemExit(f"no {a.scenes} single static-source clip among the first {a.max_clips}")
        print(json.dumps({"checkpoint": ck, "scenes": a.scenes, "framing": a.framing, "clips": clips,
                          **{name: round(float(err[sl].sum() / energy[sl].sum()), 4) for name, sl in GROUPS}}))


if __name__ == "__main__":
    main()
