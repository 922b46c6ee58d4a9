"""Can the sound, or the picture around each peak, choose which of the object localiser's peaks
is the sounding one?

An experiment kept so that its figures can be reproduced (docs/results.md, "Choosing among the
localiser's peaks"), not a training command of the library. The dense object localiser
(``object_localiser.py``) marks every object, sounding or silent; its strongest mirror-averaged
peak is the sounding object's on about 72 % of held-out frames, and the nearest of its four
strongest peaks is about 2.6 degrees off against the strongest's 6.5. This asks whether a small
chooser, trained on train-pool scenes, picks the right peak more often than "the strongest":

- ``picture``: each candidate peak described by the localiser's own features at its cell (the
  decoder's stride-4 features, the encoder's stride-16 features, the mask logit, box size, heat
  score, rank, distance from the centre column and row), every feature averaged with the
  mirrored frame's so that the choice is mirror-invariant (and the chosen column therefore
  mirror-equivariant, as the engine's mirror average requires); a 64-unit MLP gives each
  candidate a logit, a softmax over the candidates is trained with cross-entropy to pick the
  candidate nearest the sounding object's box centre.
- ``audio``: the same with a small CNN's embedding of the log-mel of the 0.64 s of mono before
  the frame (``audio_visual_correspondence.py``'s window and encoder) concatenated to every
  candidate's description: the sound can then say which kind of object it comes from.
  Also scored with each frame's sound taken from another clip (``audio, shuffled sound``).

Scored on each set's single-source frames (``position_probe.labelled_frames``, so the held-out
split's frames are the ones ``object_localiser.py score`` scores): azimuth MAE at the set's mean
field of view, side accuracy, and ``right_candidate``: the share of frames whose chosen peak is
the one nearest the box centre.

    PYTHONPATH=. python scripts/experiments/peak_chooser.py --localiser runs/objloc3/last.pt \\
        --fit /work/data/avc/train:train /work/data/probefit:train \\
        --score /work/data/avc/train:val /work/data/avc/ood:all /work/data/ood_val:all /work/data/simbin:test \\
        --out docs/results/peak_chooser.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling experiments
from audio_visual_correspondence import (N_FFT, N_MELS, WINDOW_S, AudioEncoder, log_mel,  # noqa: E402
                                         mel_filterbank, shuffled_sound)
from object_localiser import INPUT_W, load_frames, load_localiser, peaks  # noqa: E402

from streambin.train.cpu_numerics import flush_denormals  # noqa: E402
from streambin.train.position_probe import labelled_frames, score  # noqa: E402
from streambin.train.sim.scene import column_to_azimuth  # noqa: E402

K = 4                   # candidate peaks per frame
EMBED = 32              # the sound's embedding size


# ---------------------------------------------------------------- candidates and their descriptions

@torch.no_grad()
def candidates(net, frames_uint8: np.ndarray):
    """The ``K`` strongest mirror-averaged peaks of each frame: ``(B, K)`` columns (fractions of the
    width, exactly :func:`object_localiser.peaks`'s) and ``(B, K, D)`` descriptions, each read from
    the frame's and the mirrored frame's maps averaged (the mirrored one flipped back), so that a
    mirrored frame gets the same descriptions at the mirrored columns."""
    captured = {"up4": [], "down16": [], "head": []}
    hooks = [getattr(net, name).register_forward_hook(lambda m, i, o, name=name: captured[name].append(o))
             for name in captured]
    try:
        cols, sc, iy, ix = peaks(net, frames_uint8, k=K, mirror_average=True, cells=True)
    finally:
        for h in hooks:
            h.remove()
    maps = {name: 0.5 * (own + mirrored.flip(-1)) for name, (own, mirrored) in captured.items()}
    B, gh, gw = maps["head"].shape[0], maps["head"].shape[-2], maps["head"].shape[-1]
    iy_t, ix_t = torch.from_numpy(iy), torch.from_numpy(ix)
    b = torch.arange(B)[:, None].expand(B, K)
    fine = maps["up4"][b, :, iy_t, ix_t]                                              # (B, K, w)
    s16 = maps["down16"]
    coarse = s16[b, :, (iy_t * s16.shape[-2]) // gh, (ix_t * s16.shape[-1]) // gw]    # (B, K, 4w)
    head = maps["head"][b, :, iy_t, ix_t][..., [1, 4, 5]]                            # mask logit, box w, h
    where = torch.stack([torch.from_numpy(np.abs(cols - 0.5)).float(), iy_t.float() / gh], -1)
    rank = torch.eye(K)[None].expand(B, K, K)
    desc = torch.cat([fine, coarse, head, torch.from_numpy(sc)[..., None], where, rank], -1)
    return cols, desc.numpy().astype(np.float32)


def sound_windows(root: Path, frames) -> np.ndarray:
    """``(n, N_MELS, T)`` log-mel of the ``WINDOW_S`` s of mono (the binaural mix's mean) that end at
    each frame's time, zero-padded before the clip's start."""
    out, audio_of, fb = [], {}, None
    for f in frames:
        if f.clip not in audio_of:
            audio, sr = sf.read(root / "binaural_audios" / f"{f.clip}.wav", dtype="float32", always_2d=True)
            fps = float(json.loads((root / "meta" / f"{f.clip}.json").read_text())["fps"])
            audio_of = {f.clip: (audio.mean(axis=1), sr, fps)}     # frames come clip by clip
        mono, sr, fps = audio_of[f.clip]
        if fb is None:
            fb = mel_filterbank(sr, N_FFT, N_MELS)
        window = int(round(WINDOW_S * sr))
        end = int(round((int(Path(f.path).stem) - 0.5) / fps * sr))   # frame files count from 1
        piece = mono[max(0, end - window):end]
        out.append(log_mel(np.concatenate([np.zeros(window - piece.size, np.float32), piece]), sr, fb))
    return np.stack(out)


def extract(net, root: Path, split: str, seed: int, frames_per_clip: int = 2) -> dict:
    """Candidates, descriptions, sound windows and truths of a set's single-source frames."""
    frames = labelled_frames(root, split, frames_per_clip, 0, seed)
    if not frames:
        raise ValueError(f"{root}:{split} has no clip with exactly one sounding source")
    cols, desc = [], []
    for i in tqdm(range(0, len(frames), 64), desc=f"{root.name}:{split} peaks", unit="batch", leave=False):
        c, d = candidates(net, load_frames([f.path for f in frames[i:i + 64]]))
        cols.append(c); desc.append(d)
    cols = np.concatenate(cols)
    box = np.array([f.box_centre_px / f.width_px for f in frames])
    return {"cols": cols, "desc": np.concatenate(desc), "mels": sound_windows(root, frames),
            "target": np.argmin(np.abs(cols - box[:, None]), 1),
            "az": np.array([f.azimuth_deg for f in frames]), "box": box,
            "hfov": float(np.mean([f.hfov_deg for f in frames])),
            "clips": np.array([f.clip for f in frames]), "scenes": np.array([f.scene for f in frames])}


# ---------------------------------------------------------------- the chooser

class Chooser(nn.Module):
    """``(B, K, D)`` descriptions (+ ``(B, N_MELS, T)`` log-mel) -> ``(B, K)`` logits."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, audio: bool):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.audio = AudioEncoder(EMBED) if audio else None
        self.mlp = nn.Sequential(nn.Linear(mean.size + (EMBED if audio else 0), 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, desc, mel):
        x = (desc - self.mean) / self.std
        if self.audio is not None:
            x = torch.cat([x, self.audio(mel)[:, None].expand(-1, x.shape[1], -1)], -1)
        return self.mlp(x)[..., 0]


def train(fit: dict, audio: bool, epochs: int, seed: int) -> Chooser:
    torch.manual_seed(seed)
    desc, mels, target = (torch.from_numpy(fit[k]) for k in ("desc", "mels", "target"))
    flat = fit["desc"].reshape(-1, fit["desc"].shape[-1])
    model = Chooser(flat.mean(0), flat.std(0) + 1e-3, audio)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc=f"{'audio' if audio else 'picture'} seed {seed}", leave=False):
        model.train()
        for idx in torch.randperm(len(target), generator=gen).split(128):
            loss = nn.functional.cross_entropy(model(desc[idx], mels[idx]), target[idx])
            opt.zero_grad(); loss.backward(); opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def choose(model: Chooser, data: dict, mels: np.ndarray) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(data["desc"][i:i + 512]), torch.from_numpy(mels[i:i + 512]))
                           .argmax(1).numpy() for i in range(0, len(mels), 512)])


def scores(choice: np.ndarray, data: dict) -> dict:
    """Scores of the chosen candidates (``(n,)`` indices) on ``data``."""
    to_az = np.vectorize(lambda x: column_to_azimuth(x * INPUT_W, INPUT_W, data["hfov"]))
    pred = to_az(data["cols"][np.arange(len(choice)), choice])
    box = to_az(data["box"])
    out = score(pred, data["az"], 0.0, box)
    out["right_candidate"] = float(np.mean(choice == data["target"]))
    out["by_scene"] = {s: {"frames": int(m.sum()), "mae_deg": float(np.abs(pred[m] - data["az"][m]).mean()),
                           "right_candidate": float(np.mean(choice[m] == data["target"][m]))}
                       for s in sorted(set(data["scenes"])) for m in [data["scenes"] == s]}
    return out


def parse_set(text: str):
    root, _, split = text.partition(":")
    return Path(root), split or "all"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--localiser", required=True, help="an object_localiser.py train checkpoint")
    p.add_argument("--fit", nargs="+", required=True, help="ROOT:SPLIT train-pool sets to fit the chooser on")
    p.add_argument("--score", nargs="+", required=True, help="ROOT:SPLIT sets to score on")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--save", type=Path, help="a folder to keep each chooser's weights in (CHOOSER_seedN.pt)")
    a = p.parse_args(argv)
    if min(a.epochs, a.seeds) < 1:
        p.error("--epochs and --seeds must be >= 1")
    for root, _ in map(parse_set, a.fit + a.score):
        if not (root / "splits").is_dir() or not (root / "binaural_audios").is_dir():
            p.error(f"{root} is not a simulated set (no splits/ or binaural_audios/)")
    flush_denormals()
    torch.set_num_threads(2)
    net = load_localiser(a.localiser)
    t0 = time.time()
    parts = [extract(net, *parse_set(s), seed=10 + i) for i, s in enumerate(a.fit)]
    fit = {k: np.concatenate([d[k] for d in parts]) for k in ("desc", "mels", "target")}
    sets = {s: extract(net, *parse_set(s), seed=0) for s in a.score}
    result = {"localiser": a.localiser, "fit": a.fit, "fit_frames": int(fit["target"].size), "candidates": K,
              "epochs": a.epochs, "window_s": WINDOW_S, "extract_s": round(time.time() - t0, 1),
              "fit_target_rank_share": (np.bincount(fit["target"], minlength=K) / fit["target"].size).tolist(),
              "baselines": {}, "runs": []}
    for name, data in sets.items():
        n = len(data["target"])
        strongest, oracle = scores(np.zeros(n, int), data), scores(data["target"], data)
        result["baselines"][name] = {"strongest peak": strongest, "nearest peak (an oracle's choice)": oracle}
        print(f"{name}: {n} frames; strongest MAE {strongest['mae_deg']:.2f} right {strongest['right_candidate']:.3f}; "
              f"oracle MAE {oracle['mae_deg']:.2f}", flush=True)
    for seed in range(a.seeds):
        for audio in (False, True):
            t1 = time.time()
            model = train(fit, audio, a.epochs, seed)
            run = {"chooser": "audio" if audio else "picture", "seed": seed, "train_s": round(time.time() - t1, 1),
                   "sets": {}}
            for name, data in sets.items():
                run["sets"][name] = scores(choose(model, data, data["mels"]), data)
                if audio:
                    run["sets"][name]["shuffled_sound"] = scores(choose(model, data, shuffled_sound(data, seed)), data)
            result["runs"].append(run)
            if a.save:
                a.save.mkdir(parents=True, exist_ok=True)
                torch.save({"state": model.state_dict(), "audio": audio, "localiser": a.localiser},
                           a.save / f"{run['chooser']}_seed{seed}.pt")
            print(f"{run['chooser']:>7} seed {seed}: " + "; ".join(
                f"{Path(n.split(':')[0]).name} MAE {s['mae_deg']:.2f} right {s['right_candidate']:.3f}"
                + (f" (shuffled {s['shuffled_sound']['mae_deg']:.2f} / {s['shuffled_sound']['right_candidate']:.3f})"
                   if "shuffled_sound" in s else "") for n, s in run["sets"].items()), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
