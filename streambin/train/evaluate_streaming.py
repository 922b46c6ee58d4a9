"""Does streaming lose what offline has? Score the streaming engine against the offline protocol.

    python -m streambin.train.evaluate_streaming --bundle BUNDLE --data DIR --split test \\
        --max-clips 40 --lookahead 0 2 4 8 --json out.json --markdown out.md

For each clip of the split, the mono mix ``(L + R) / 2`` is spatialized

* by the streaming engine (:class:`streambin.Spatializer` at the model rate, 10 ms chunks,
  each camera frame handed over when its time is reached, the engine's fixed latency removed
  afterwards), once per ``--lookahead`` value, and
* by the papers' offline sliding-window protocol (:func:`streambin.train.evaluate.predict_clip`)
  with the same model (the bundle's weights.pt),

and every prediction is scored against the ground truth with all of :mod:`streambin.metrics`.
The report gives mean +- standard error per condition and the streaming/offline ratio of the
STFT and envelope distances (the target: within 5%).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Sequence

import numpy as np

from streambin import metrics as M


def stream_clip(sp, mono: np.ndarray, frames: np.ndarray, fps: float, chunk: int = 160) -> np.ndarray:
    """Spatialize ``mono`` (n,) through ``sp`` in chunks; frame i is handed over at i / fps.
    Returns ``(2, n)`` aligned with the input (latency removed)."""
    sp.reset()
    rate = sp.sample_rate
    out = np.zeros((2, len(mono) + sp.latency_samples), np.float32)
    next_frame = 0
    for pos in range(0, len(mono), chunk):
        frame = None
        while next_frame < len(frames) and next_frame / fps <= pos / rate:
            frame = frames[next_frame]
            next_frame += 1
        piece = mono[pos:pos + chunk]
        out[:, pos:pos + len(piece)] = sp.process(piece, frame)
    out[:, len(mono):] = sp.flush()
    return out[:, sp.latency_samples:]


def evaluate_streaming(bundle_path, data_root, split: str = "test", lookaheads: Sequence[int] = (0, 2, 4, 8),
                       block_frames: int = 1, max_clips: int = 40, normalize: bool = M.NORMALIZE_DEFAULT,
                       progress: bool = True) -> Dict:
    from tqdm import tqdm

    from streambin.bundle import load_bundle
    from streambin.spatializer import Spatializer
    from streambin.train.checkpoint import load_generator
    from streambin.train.data import SimBinauralDataset
    from streambin.train.evaluate import _aggregate, predict_clip

    bundle = load_bundle(bundle_path)
    if bundle.weights is None:
        raise ValueError(f"{bundle.path}: weights.pt is needed for the offline reference")
    model, cfg = load_generator(str(bundle.weights))
    data = SimBinauralDataset(data_root, split, mode="eval", visual_size=bundle.visual_size)
    n = min(len(data), max_clips)
    engines = {a: Spatializer(bundle.path, backend="onnxruntime", sample_rate=bundle.sample_rate,
                              block_frames=block_frames, lookahead_frames=a) for a in lookaheads}
    names = list(M.METRICS)
    per_clip: List[Dict] = []
    for i in tqdm(range(n), desc="streaming vs offline", unit="clip", disable=not progress):
        item = data[i]
        target = np.asarray(item["audio"], np.float32)
        frames = np.asarray(item["frames"])
        fps = float(item["fps"])
        mono = 0.5 * (target[0] + target[1])
        preds = {"offline": predict_clip(model, mono, frames, fps, cfg.audio),
                 "mono_mono": np.stack([mono, mono])}
        for a, sp in engines.items():
            preds[f"streaming_lookahead_{a}"] = stream_clip(sp, mono, frames, fps)
        per_clip.append({"clip": item["clip"], "metrics": {
            cond: {m: M.METRICS[m](p, target, sample_rate=bundle.sample_rate, normalize=normalize) for m in names}
            for cond, p in preds.items()}})
    conditions = list(per_clip[0]["metrics"])
    summary = {c: {m: _aggregate([p["metrics"][c][m] for p in per_clip]) for m in names} for c in conditions}
    ratios = {c: {m: summary[c][m]["mean"] / summary["offline"][m]["mean"] for m in ("stft", "env")}
              for c in conditions if c.startswith("streaming")}
    latency_ms = {a: sp.latency_ms for a, sp in engines.items()}
    return {"settings": {"bundle": str(bundle.path), "split": split, "n_clips": n, "block_frames": block_frames,
                         "lookaheads": list(lookaheads), "normalize": normalize, "chunk_ms": 10,
                         "latency_ms_at_model_rate": latency_ms},
            "summary": summary, "ratio_to_offline": ratios, "per_clip": per_clip}


def markdown(results: Dict) -> str:
    s = results["summary"]
    cols = ["stft", "env", "wave_l2", "snr", "direction_acc"]
    lines = ["| condition | latency (ms) | " + " | ".join(cols) + " | STFT / offline | ENV / offline |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    lat = results["settings"]["latency_ms_at_model_rate"]
    for cond, row in s.items():
        a = cond.rsplit("_", 1)[-1] if cond.startswith("streaming") else None
        r = results["ratio_to_offline"].get(cond)
        cells = [f"{row[c]['mean']:.4f} ± {row[c]['sem']:.4f}" for c in cols]
        lines.append(f"| {cond} | {lat[int(a)]:.1f} |" if a is not None else f"| {cond} | - |")
        lines[-1] += " " + " | ".join(cells) + " | " + (
            f"{r['stft']:.3f} | {r['env']:.3f} |" if r else "- | - |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--lookahead", type=int, nargs="+", default=[0, 2, 4, 8])
    p.add_argument("--block-frames", type=int, default=1)
    p.add_argument("--max-clips", type=int, default=40)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    res = evaluate_streaming(args.bundle, args.data, args.split, args.lookahead, args.block_frames, args.max_clips)
    table = markdown(res)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=lambda x: None if not np.isfinite(x) else x)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
