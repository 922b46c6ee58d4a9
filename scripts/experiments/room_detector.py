"""Can the engine tell from the mono alone whether the scene is in a room?

Blend weights fitted separately for clips in a room and in free field (the condition read from
the sidecar) leave much less of the side's error than one set for both
(``confidence_blend.py``, ``room oracle``). The engine has no sidecar; this measures how well a
small detector on the mono can tell the two apart, causally, from the last two seconds.

Features, per two-second window of the mono at 16 kHz (STFT Hann 512, hop 128, the power summed
into 8 octave-spaced bands from 62.5 Hz, in dB): per band, the 5th percentile of the frame-to-frame
level change (in free field a sound's level can fall as fast as the sound stops; in a room the
reverberation bounds how fast it decays) and the 10th percentile of the level below its 90th
percentile (how deep the gaps between sounds are: reverberation fills them). Both are
independent of the level. A logistic regression (L2, Newton) on the 16 standardised features is
fitted on ``--fit`` clips (each clip's first window) and scored on every window of the other sets:
accuracy at 0.5 and the area under the ROC curve.

    PYTHONPATH=. python scripts/experiments/room_detector.py --fit /work/data/probefit:train \\
        --score /work/data/blendfit:all /work/data/blendfit_leg:all /work/data/ood_val:all \\
        /work/data/simbin:test --out docs/results/room_detector.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import stft
from tqdm import tqdm

RATE = 16000
WINDOW_S = 2.0
N_BANDS = 8


#: STFT (window, hop) in samples at 16 kHz, 512-point FFT: this study's, and the streaming engine's
#: (the default model's analysis: the frames its runner already computes); "stream": the engine's
#: own detector (streambin.room_detector: its frames, bands and features, 49 of them)
ANALYSES = {"experiment": (512, 128), "engine": (400, 160), "stream": (400, 160)}


def band_levels_db(mono: np.ndarray, analysis: str = "experiment") -> np.ndarray:
    """``(N_BANDS, T)`` level in dB of ``mono (n,)`` in octave bands from 62.5 Hz."""
    win, hop = ANALYSES[analysis]
    _, _, z = stft(mono, fs=RATE, window="hann", nperseg=win, noverlap=win - hop, nfft=512)
    power = np.abs(z) ** 2
    freqs = np.arange(power.shape[0]) * RATE / 512
    band = np.clip(np.floor(np.log2(np.maximum(freqs, 62.5) / 62.5)).astype(int), 0, N_BANDS - 1)
    per_band = np.stack([power[band == b].sum(axis=0) for b in range(N_BANDS)])
    return 10 * np.log10(per_band + 1e-12 * max(float(per_band.max()), 1e-30))


FEATURE_SETS = {
    # (percentiles of the frame-to-frame level change, percentiles of the level below its 90th)
    "basic": ((5,), (10,)),
    "rich": ((1, 5, 10, 25), (5, 10, 25)),
}


def features(mono: np.ndarray, kind: str = "basic", analysis: str = "experiment") -> np.ndarray:
    """Level-independent features of one window (see the module docstring): per band, the
    ``FEATURE_SETS[kind]`` percentiles of the level change and of the gaps, ``(bands * k,)``."""
    decay_pcts, gap_pcts = FEATURE_SETS[kind]
    level = band_levels_db(mono, analysis)
    decay = np.percentile(np.diff(level, axis=1), decay_pcts, axis=1).ravel()
    gaps = np.percentile(level - np.percentile(level, 90, axis=1, keepdims=True), gap_pcts, axis=1).ravel()
    return np.concatenate([decay, gaps])


def stream_band_power(mono: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The engine's view of ``mono (n,)`` at 16 kHz: ``(band power (N, bands) of its streamed STFT
    frames, frames complete after each sample count (n + 1,))`` (streambin.room_detector)."""
    from streambin import dsp
    from streambin import room_detector as R
    win, hop = ANALYSES["stream"]
    frames = dsp.StreamingSTFT(512, win, hop).push(mono.astype(np.float32))
    bp = (np.abs(frames) ** 2).astype(np.float64) @ R.octave_summing(257, RATE).astype(np.float64)
    fresh = dsp.StreamingSTFT(512, win, hop)
    complete = np.array([fresh.frames_for(k) for k in range(0, len(mono) + 1, hop)])
    return bp, np.repeat(complete, hop)[:len(mono) + 1]


def windows(root: Path, split: str, first_only: bool, kind: str = "basic",
            analysis: str = "experiment") -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Features ``(N, d)``, labels ``(N,)`` (1: room) and clip names of the set's windows."""
    names = [c.strip() for c in (root / "splits" / f"{split}.txt").read_text().splitlines() if c.strip()]
    X, y, which = [], [], []
    n = int(WINDOW_S * RATE)
    for name in tqdm(names, desc=f"{root.name}:{split}", unit="clip", leave=False):
        audio, sr = sf.read(root / "binaural_audios" / f"{name}.wav", dtype="float64", always_2d=True)
        if sr != RATE:
            raise ValueError(f"{name}: expected {RATE} Hz, got {sr}")
        mono = audio.mean(axis=1)
        room = bool(json.loads((root / "meta" / f"{name}.json").read_text()).get("room"))
        starts = [0] if first_only else range(0, max(len(mono) - n, 0) + 1, n)
        if analysis == "stream":
            from streambin import room_detector as R
            bp, complete = stream_band_power(mono)
        for s in starts:
            piece = mono[s:s + n]
            if np.max(np.abs(piece)) == 0:
                continue
            if analysis == "stream":   # the frames a tracker holds when the window ends
                X.append(R.features(bp[complete[s]:complete[min(s + n, len(mono))]]))
            else:
                X.append(features(piece, kind, analysis))
            y.append(float(room))
            which.append(name)
    return np.array(X), np.array(y), which


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Weights ``(d + 1,)`` (bias last) of an L2-regularised logistic regression, by Newton."""
    A = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(A.shape[1])
    reg = l2 * len(X) * np.diag(np.r_[np.ones(X.shape[1]), 0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-A @ w))
        grad = A.T @ (p - y) + reg @ w
        hess = (A * (p * (1 - p))[:, None]).T @ A + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random room window scores above a free-field one."""
    pos, neg = score[y == 1], score[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fit", required=True, help="DATA_ROOT:SPLIT of train-pool clips")
    p.add_argument("--score", nargs="+", required=True, help="DATA_ROOT:SPLIT sets scored (every window)")
    p.add_argument("--features", choices=sorted(FEATURE_SETS) + ["stream"], default="basic",
                   help="basic: the 5th / 10th percentiles (16 features); rich: 1-25th (56)")
    p.add_argument("--analysis", choices=sorted(ANALYSES), default="experiment",
                   help="STFT the levels come from: experiment (512 / 128) or engine (400 / 160, the model's); "
                        "stream: the engine's own detector (streambin.room_detector; --features ignored)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.analysis == "stream":
        args.features = "stream"
    start = time.time()
    root, split = args.fit.rsplit(":", 1)
    X, y, _ = windows(Path(root), split, first_only=True, kind=args.features, analysis=args.analysis)
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-9
    w = fit_logistic((X - mean) / std, y)

    def predict(Z):
        return 1 / (1 + np.exp(-(np.hstack([(Z - mean) / std, np.ones((len(Z), 1))]) @ w)))

    fitted = predict(X)
    result = {"command": "python " + " ".join(sys.argv), "fit": args.fit, "features": args.features, "analysis": args.analysis, "fit_windows": len(y),
              "fit_room_share": float(y.mean()), "fit_accuracy": float(np.mean((fitted > 0.5) == y)),
              "fit_auc": auc(fitted, y), "weights": w.tolist(), "feature_mean": mean.tolist(),
              "feature_std": std.tolist(), "scored": {}}
    print(f"{args.fit}: {len(y)} windows, rooms {y.mean():.2f}, accuracy {result['fit_accuracy']:.3f}, "
          f"AUC {result['fit_auc']:.3f} (in-sample)")
    for spec in args.score:
        root, split = spec.rsplit(":", 1)
        Z, t, names = windows(Path(root), split, first_only=False, kind=args.features, analysis=args.analysis)
        s = predict(Z)
        # per clip: the mean of its windows' probabilities
        clips = sorted(set(names))
        per_clip = {c: [] for c in clips}
        for c, v in zip(names, s):
            per_clip[c].append(v)
        label = {c: v for c, v in zip(names, t)}
        clip_score = np.array([np.mean(per_clip[c]) for c in clips])
        clip_label = np.array([label[c] for c in clips])
        row = {"windows": len(t), "room_share": float(t.mean()), "window_accuracy": float(np.mean((s > 0.5) == t)),
               "window_auc": auc(s, t), "clips": len(clips),
               "clip_accuracy": float(np.mean((clip_score > 0.5) == clip_label)), "clip_auc": auc(clip_score, clip_label)}
        result["scored"][spec] = row
        print(f"{spec}: {row['windows']} windows, rooms {row['room_share']:.2f}: accuracy {row['window_accuracy']:.3f}, "
              f"AUC {row['window_auc']:.3f}; per clip ({row['clips']}) accuracy {row['clip_accuracy']:.3f}, "
              f"AUC {row['clip_auc']:.3f}", flush=True)
    result["wall_s"] = round(time.time() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
