"""Can the sound say which of several objects in the picture is the source?

An experiment kept so that its figures can be reproduced (docs/results.md, "Can the sound choose
the object?"), not a training command of the library. In a scene with silent distractors the
picture alone cannot say which object sounds; a listener (and a model) can, if the sound tells
what kind of thing makes it: a bark goes with the dog, a voice with the person. This measures
how much of that correspondence a read-out on the shipped visual trunk can learn from our
training pool, and whether it carries over to the held-out pool's unseen objects and sounds.

Data: scenes with one sounding source and 1-2 silent objects (composites only), drawn by
``python -m streambin.train.simulate --seconds 2 --max-sources 1 --no-photographs
--distractor-share 1.0`` from the train pool (fit on its "train" split, in-domain score on its
"val" split) and from the held-out pool (scored whole). From each clip ``--frames-per-clip``
frames, each also mirrored (azimuth negated, the sound unchanged, so the side must come from
the picture), and the mono mix's ``WINDOW_S`` seconds that end at the frame's time (scaled to
the signal contract's input RMS, as the audio net sees it) as a log-mel spectrogram.

Read-outs, all on the frozen trunk map ``(512, h, w)`` of ``--checkpoint`` (no mirror
averaging), trained with an L1 loss on the sounding source's azimuth:

- ``visual``: 1x1 conv to 16 channels, ReLU, flatten, a 64-unit MLP -> azimuth.
- ``audio_gated``: the same, with the map's channels first multiplied by
  ``sigmoid(W a + b)``, ``a`` a small CNN's embedding of the log-mel window: the form an
  audio-conditioned gate before the generator's reduction would take.

Scores (each set, each seed): azimuth MAE, side accuracy off the centre (|az| >= 10 deg), and
``object_choice``: the share of frames whose predicted azimuth is nearer the sounding object's
than every silent object's. ``audio_gated`` is also scored with each frame's sound taken from
another clip of the same set (``shuffled_sound``): if the read-out uses the sound to choose,
that must cost.

``--train-trunk`` trains a copy of the trunk with each read-out (rate 1e-4, a tenth of the
read-out's) instead of reading its frozen map; the frames are then kept instead of the maps.
``--stride 16`` reads the frozen trunk's ``layer3`` map ``(256, 2h, 2w)`` instead of its output:
twice the columns, for objects that sit close together.

    python scripts/experiments/audio_visual_correspondence.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --train /work/data/avc/train --score /work/data/avc/ood --out docs/results/avc_readout.json
"""
import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from tqdm import tqdm

from streambin.signal_contract import INPUT_RMS
from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.data import load_frame
from streambin.train.localisation_eval import sounding_sources

WINDOW_S = 0.64       # the audio net's context at 16 kHz (about 0.64 s)
N_FFT, HOP, N_MELS = 512, 160, 48
CENTRE_DEG = 10.0     # side accuracy counts sources at least this far off the centre
AZ_SCALE = 45.0       # azimuths are learned in units of 45 degrees


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular HTK-mel filters (no audio library with a mel
    filterbank is a dependency; this is the textbook construction)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(50.0), mel(sample_rate / 2), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, bins.size), np.float32)
    for i in range(n_mels):
        lo, mid, hi = edges[i:i + 3]
        fb[i] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0.0, None)
    return fb


def log_mel(mono: np.ndarray, sample_rate: int, fb: np.ndarray) -> np.ndarray:
    """``(n,)`` float mono -> ``(N_MELS, T)`` float32 log-mel of the window scaled to RMS
    ``INPUT_RMS`` (the network input's scale)."""
    rms = float(np.sqrt(np.mean(mono ** 2)))
    x = torch.from_numpy((mono * (INPUT_RMS / max(rms, 1e-4))).astype(np.float32))
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2
    return np.log(fb @ spec.numpy() + 1e-6).astype(np.float32)


def clip_names(root: Path, split: str) -> list:
    names = []
    for s in (("train", "val", "test") if split == "all" else (split,)):
        names += [c.strip() for c in (root / "splits" / f"{s}.txt").read_text().splitlines() if c.strip()]
    return sorted(names)


@torch.no_grad()
def extract(generator, root: Path, split: str, frames_per_clip: int, seed: int, keep_frames: bool = False,
            stride: int = 32) -> dict:
    """Trunk maps (``keep_frames``: the ``(H_v, W_v, 3) uint8`` frames instead), log-mel windows,
    azimuths of the sounding and silent objects for every usable frame of the split; the mirrored
    frames come second in each array."""
    rng = np.random.default_rng(seed)
    size = tuple(generator.visual_size)
    fb = None
    maps, mels, az, others, kinds, clips = [], [], [], [], [], []
    for clip in tqdm(clip_names(root, split), desc=f"{root.name}:{split}", unit="clip", leave=False):
        meta = json.loads((root / "meta" / f"{clip}.json").read_text())
        sounding = sounding_sources(meta)
        silent = [s for s in meta["sources"] if s.get("silent", False)]
        if len(sounding) != 1 or not silent or meta.get("scene_kind") != "composite":
            continue
        audio, sr = sf.read(root / "binaural_audios" / f"{clip}.wav", dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if fb is None:
            fb = mel_filterbank(sr, N_FFT, N_MELS)
        window = int(round(WINDOW_S * sr))
        fps, n_frames = float(meta["fps"]), int(meta["n_frames"])
        first = int(np.ceil(WINDOW_S * fps))            # the first frame with a whole window before it
        if first >= n_frames:
            raise ValueError(f"clip {clip} is too short for a {WINDOW_S} s window")
        for k in rng.choice(np.arange(first, n_frames), size=min(frames_per_clip, n_frames - first), replace=False):
            end = int(round((k + 0.5) / fps * sr))
            frame = load_frame(root / "frames" / clip / f"{int(k) + 1:06d}.png", size)
            pair = np.stack([frame, frame[:, ::-1].copy()])
            maps.append(pair if keep_frames else generator.trunk_map(torch.from_numpy(pair), stride).half().numpy())
            mels.append(log_mel(mono[max(0, end - window):end], sr, fb))
            az.append(float(sounding[0]["azimuth_deg"][min(k, len(sounding[0]["azimuth_deg"]) - 1)]))
            others.append([float(s["azimuth_deg"][min(k, len(s["azimuth_deg"]) - 1)]) for s in silent]
                          + [np.nan] * (2 - len(silent)))
            kinds.append(sounding[0].get("sound_kind", "?"))
            clips.append(clip)
    if not maps:
        raise ValueError(f"{root}:{split} has no composite clip with one sounding source and silent objects")
    maps = np.stack(maps)                   # (N, 2, C, h, w) trunk maps or (N, 2, H_v, W_v, 3) frames
    az, others = np.array(az), np.array(others)
    return {"maps": np.concatenate([maps[:, 0], maps[:, 1]]),
            "mels": np.concatenate([np.stack(mels)] * 2),
            "az": np.concatenate([az, -az]), "others": np.concatenate([others, -others]),
            "kinds": np.array(kinds * 2), "clips": np.array(clips * 2)}


class AudioEncoder(nn.Module):
    """``(B, N_MELS, T)`` log-mel -> ``(B, 64)`` embedding (three conv stages, global average)."""

    def __init__(self, width: int = 64):
        super().__init__()
        layers, c_in = [], 1
        for c_out in (16, 32, width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, mel):
        return self.net(mel[:, None]).mean(dim=(2, 3))


class ReadOut(nn.Module):
    """Trunk map (+ log-mel) -> azimuth / AZ_SCALE (see the module docstring); with ``generator``
    (a copy, trained along) the input is its ``(B, H_v, W_v, 3) uint8`` frames instead."""

    def __init__(self, map_shape, audio_gated: bool, generator=None):
        super().__init__()
        self.generator = generator
        c, h, w = map_shape
        self.reduce = nn.Conv2d(c, 16, 1)
        self.mlp = nn.Sequential(nn.Linear(16 * h * w, 64), nn.ReLU(), nn.Linear(64, 1))
        self.audio = AudioEncoder() if audio_gated else None
        if audio_gated:
            self.gate = nn.Linear(64, c)
            nn.init.normal_(self.gate.weight, 0.0, 0.01)
            nn.init.constant_(self.gate.bias, 2.0)      # start near a pass-through gate

    def forward(self, fmap, mel):
        if self.generator is not None:
            fmap = self.generator.trunk_map(fmap)
        if self.audio is not None:
            fmap = fmap * torch.sigmoid(self.gate(self.audio(mel)))[:, :, None, None]
        return self.mlp(torch.relu(self.reduce(fmap)).flatten(1))[:, 0]


def train(data: dict, audio_gated: bool, epochs: int, seed: int, generator=None) -> ReadOut:
    """A read-out fitted to ``data`` (with ``generator``: its trunk trained too, at a tenth of
    the read-out's rate, as the joint fine-tunes train it)."""
    torch.manual_seed(seed)
    maps, mels = torch.from_numpy(data["maps"]), torch.from_numpy(data["mels"])
    target = torch.from_numpy(data["az"] / AZ_SCALE).float()
    trunk = None if generator is None else copy.deepcopy(generator)
    map_shape = maps.shape[1:] if trunk is None else trunk.visual_map_shape
    model = ReadOut(map_shape, audio_gated, trunk)
    head = [p for n, p in model.named_parameters() if not n.startswith("generator.")]
    groups = [{"params": head, "lr": 1e-3}]
    if trunk is not None:
        for p in trunk.parameters():
            p.requires_grad_(False)
        for p in trunk.trunk.parameters():
            p.requires_grad_(True)
        groups.append({"params": list(trunk.trunk.parameters()), "lr": 1e-4})
    opt = torch.optim.Adam(groups, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc=f"{'audio_gated' if audio_gated else 'visual'} seed {seed}", leave=False):
        model.train()
        for idx in torch.randperm(len(target), generator=gen).split(128):
            x = maps[idx] if trunk is not None else maps[idx].float()
            loss = (model(x, mels[idx]) - target[idx]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: ReadOut, maps: np.ndarray, mels: np.ndarray) -> np.ndarray:
    def prepare(x):
        x = torch.from_numpy(x)
        return x if model.generator is not None else x.float()
    out = [model(prepare(maps[i:i + 512]), torch.from_numpy(mels[i:i + 512])).numpy()
           for i in range(0, len(maps), 512)]
    return np.concatenate(out) * AZ_SCALE


def scores(pred: np.ndarray, data: dict) -> dict:
    az, others = data["az"], data["others"]
    off = np.abs(az) >= CENTRE_DEG
    nearer = np.abs(pred - az) < np.nanmin(np.abs(pred[:, None] - others), axis=1)
    out = {"frames": int(az.size), "mae_deg": float(np.abs(pred - az).mean()),
           "side_accuracy": float(np.mean(np.sign(pred[off]) == np.sign(az[off]))),
           "object_choice": float(nearer.mean())}
    out["by_sound_kind"] = {k: {"frames": int((data["kinds"] == k).sum()),
                                "mae_deg": float(np.abs(pred - az)[data["kinds"] == k].mean()),
                                "object_choice": float(nearer[data["kinds"] == k].mean())}
                            for k in sorted(set(data["kinds"]))}
    return out


def shuffled_sound(data: dict, seed: int) -> np.ndarray:
    """Each frame's log-mel replaced by that of a frame of another clip (a derangement by clip)."""
    rng = np.random.default_rng(seed)
    n = len(data["clips"])
    perm = rng.permutation(n)
    same = data["clips"][perm] == data["clips"]
    while same.any():                                   # re-draw the few that landed on their own clip
        perm[same] = rng.permutation(n)[: same.sum()]
        same = data["clips"][perm] == data["clips"]
    return data["mels"][perm]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--train", required=True, type=Path, help="train-pool distractor set (its train and val splits)")
    p.add_argument("--score", nargs="+", type=Path, default=[], help="held-out sets, scored whole")
    p.add_argument("--frames-per-clip", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--stride", type=int, choices=(16, 32), default=32,
                   help="read the frozen trunk's map at stride 32 (its output) or 16 (layer3: twice the columns)")
    p.add_argument("--train-trunk", action="store_true",
                   help="train a copy of the trunk with each read-out (rate 1e-4) instead of reading its frozen map")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    if min(args.frames_per_clip, args.epochs, args.seeds) < 1:
        p.error("--frames-per-clip, --epochs and --seeds must be >= 1")
    for root in [args.train, *args.score]:
        if not (root / "splits").is_dir() or not (root / "meta").is_dir():
            p.error(f"{root} is not a simulated set (no splits/ or meta/; make it with streambin.train.simulate)")
    flush_denormals()
    torch.set_num_threads(2)
    generator, _ = load_generator(args.checkpoint, mirror_average=False)
    generator.eval()
    t0 = time.time()
    if args.train_trunk and args.stride != 32:
        p.error("--train-trunk reads the trunk's output (stride 32)")
    keep = args.train_trunk
    fit = extract(generator, args.train, "train", args.frames_per_clip, 0, keep, args.stride)
    sets = {f"{args.train}:val": extract(generator, args.train, "val", args.frames_per_clip, 1, keep, args.stride)}
    for root in args.score:
        sets[f"{root}:all"] = extract(generator, root, "all", args.frames_per_clip, 2, keep, args.stride)
    result = {"checkpoint": args.checkpoint, "fit": f"{args.train}:train", "fit_frames": int(fit["az"].size),
              "frames_per_clip": args.frames_per_clip, "epochs": args.epochs, "window_s": WINDOW_S,
              "trunk": "trained (rate 1e-4)" if args.train_trunk else "frozen", "map_stride": args.stride,
              "extract_s": round(time.time() - t0, 1), "runs": []}
    for seed in range(args.seeds):
        for audio_gated in (False, True):
            t1 = time.time()
            model = train(fit, audio_gated, args.epochs, seed, generator if args.train_trunk else None)
            run = {"readout": "audio_gated" if audio_gated else "visual", "seed": seed,
                   "train_s": round(time.time() - t1, 1), "fit": scores(predict(model, fit["maps"], fit["mels"]), fit),
                   "sets": {}}
            for name, data in sets.items():
                run["sets"][name] = scores(predict(model, data["maps"], data["mels"]), data)
                if audio_gated:
                    run["sets"][name]["shuffled_sound"] = scores(
                        predict(model, data["maps"], shuffled_sound(data, seed)), data)
            result["runs"].append(run)
            line = "; ".join(f"{n.split('/')[-1]} MAE {s['mae_deg']:.1f} side {s['side_accuracy']:.3f} "
                             f"choice {s['object_choice']:.3f}"
                             + (f" (shuffled sound: choice {s['shuffled_sound']['object_choice']:.3f})"
                                if "shuffled_sound" in s else "")
                             for n, s in run["sets"].items())
            print(f"{run['readout']:>11} seed {seed}: fit MAE {run['fit']['mae_deg']:.1f}; {line}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
