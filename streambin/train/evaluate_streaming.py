"""Does streaming lose what offline has? Score the streaming engine against the offline protocol.

    python -m streambin.train.evaluate_streaming --bundle BUNDLE --data DIR --split test \\
        --max-clips 40 --lookahead 0 2 4 8 [--sample-rate 48000] [--no-localisation] \\
        --json out.json --markdown out.md

For each clip of the split, the mono mix ``(L + R) / 2`` is spatialized

* by the streaming engine as an app runs it (:class:`StreamedPredictor`:
  :class:`streambin.Spatializer` at ``--sample-rate``, default 48 kHz, 10 ms chunks, each
  camera frame handed over when its time is reached, the engine's fixed latency removed, the
  output resampled to the model rate for scoring), once per ``--lookahead`` value, and
* when the bundle has weights.pt, by the papers' offline sliding-window protocol
  (:func:`streambin.train.evaluate.predict_clip`) with the same model (bundles without it,
  like the shipped default, are scored streamed only),

and every prediction is scored against the ground truth with all of :mod:`streambin.train.metrics`
and, unless ``--no-localisation``, with the localisation measures of
:mod:`streambin.train.localisation_eval` (which add runs with grey frames on every clip and with
mirrored frames on the lateral single-source clips). The report gives mean +- standard error
per condition, the streaming/offline ratio of the STFT and envelope distances (the target:
within 5%) and each condition's STFT distance relative to Mono-Mono.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from streambin.cli_options import PER_CLIP
from streambin.train import metrics as M
from streambin.spatializer import DEFAULT_LOOKAHEAD_FRAMES
from streambin.train import localisation_eval as L


def stream_clip(sp, mono: np.ndarray, frames: np.ndarray, fps: float, chunk: int = 160) -> np.ndarray:
    """Spatialize ``mono`` (n,) at ``sp.sample_rate`` through ``sp`` in chunks of ``chunk``
    samples; frame i (of ``frames`` (n_frames, H, W, 3) uint8) is handed over with the first
    chunk that starts at or after i / fps. Returns ``(2, n)`` aligned with the input (latency
    removed)."""
    from streambin.offline import stream

    return stream(sp, mono, ((i / fps, frame) for i, frame in enumerate(frames)), chunk)


class StreamedPredictor:
    """Clips spatialized by :class:`streambin.Spatializer` as an app would, as a
    :data:`streambin.train.evaluate.Predictor`.

    The mono clip at the model rate is resampled to the device rate ``sample_rate`` (soxr,
    very high quality), streamed in chunks of ``chunk_ms`` with each camera frame handed over
    when its time is reached, the engine's fixed latency removed, and the output resampled back
    to the model rate for scoring against the ground truth.

    model: bundle directory, "default", or a checkpoint file (torch backend).
    mirror_average, side_gain, side_renderer: the Spatializer's (None: as the bundle says).
    camera_hfov_deg: the Spatializer's (None: as the bundle says), or "clip": each clip's own
    field of view, its meta's ``hfov_deg``, set by :meth:`start_clip` (an app that knows its lens).
    visual_mode of a call: "true" (the frames), "flipped" (every frame mirrored left-right) or
    "none" (every frame a uniform grey image, uint8 128).
    """

    def __init__(self, model, sample_rate: int = 48000, lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES,
                 block_frames: int = 1, backend: str = "onnxruntime", device: str = "auto",
                 chunk_ms: float = 10.0, mirror_average: Optional[bool] = None,
                 side_gain: Optional[float] = None, side_renderer: Optional[bool] = None,
                 camera_hfov_deg=None):
        from streambin.spatializer import Spatializer

        if not chunk_ms > 0:
            raise ValueError(f"chunk_ms must be > 0 milliseconds, got {chunk_ms!r}")
        #: the field of view asked for: None (the bundle's), degrees, or "clip"
        self.camera_hfov_deg = camera_hfov_deg
        per_clip = camera_hfov_deg == PER_CLIP
        self.spatializer = Spatializer(model, backend=backend, device=device, sample_rate=sample_rate,
                                       block_frames=block_frames, lookahead_frames=lookahead_frames,
                                       mirror_average=mirror_average, side_gain=side_gain,
                                       side_renderer=side_renderer,
                                       camera_hfov_deg=None if per_clip else camera_hfov_deg)
        sp = self.spatializer
        if per_clip and not sp.side_renderer:
            raise ValueError("camera_hfov_deg='clip': the field of view is read by the side renderer, which is off "
                             "here (the bundle has none, or side_renderer=False)")
        self.sample_rate, self.model_rate = sp.sample_rate, sp.model_rate
        self.chunk = max(1, int(round(chunk_ms * sp.sample_rate / 1000)))
        self.description = (f"streamed through the Spatializer ({sp.backend.name}) at {sp.sample_rate} Hz, "
                            f"{chunk_ms:g} ms chunks, block {sp.block_frames}, lookahead {sp.lookahead_frames} "
                            f"frames, latency {sp.latency_ms:.1f} ms"
                            + (", mirror-averaged" if sp.mirror_average else "")
                            + (f", side gain {sp.side_gain:g}" if sp.side_gain != 1.0 else "")
                            + (", side renderer" if sp.side_renderer else "")
                            + (", each clip's own camera view" if per_clip else
                               f", camera view {camera_hfov_deg:g} degrees" if camera_hfov_deg is not None else ""))

    def start_clip(self, meta: Optional[Dict]) -> None:
        """Before a clip's predictions: with ``camera_hfov_deg="clip"``, the engine reads its
        frames at the clip's own field of view (``meta["hfov_deg"]``)."""
        if self.camera_hfov_deg != PER_CLIP:
            return
        if not meta or meta.get("hfov_deg") is None:
            raise ValueError("camera_hfov_deg='clip' needs each clip's meta with its 'hfov_deg'")
        self.spatializer.camera_hfov_deg = float(meta["hfov_deg"])

    def __call__(self, mono, frames, fps: float, visual_mode: str = "true") -> np.ndarray:
        """mono (n,) float at the model rate; frames (n_frames, H, W, 3) uint8 RGB (numpy or
        torch); returns (2, n) float32 at the model rate."""
        import soxr

        if visual_mode not in ("true", "flipped", "none"):
            raise ValueError(f"visual_mode must be 'true', 'flipped' or 'none', got {visual_mode!r}")
        mono = np.asarray(mono, dtype=np.float32)
        if mono.ndim != 1 or mono.size < 1:
            raise ValueError(f"mono must be (n,) float at {self.model_rate} Hz, got shape {mono.shape}")
        frames = frames.numpy() if hasattr(frames, "numpy") else np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (n_frames, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if visual_mode == "flipped":
            frames = np.ascontiguousarray(frames[:, :, ::-1])
        elif visual_mode == "none":
            frames = np.full_like(frames, 128)
        n = mono.size
        x = mono
        if self.sample_rate != self.model_rate:
            x = soxr.resample(mono, self.model_rate, self.sample_rate, quality="VHQ").astype(np.float32)
        y = stream_clip(self.spatializer, x, frames, fps, self.chunk)
        if self.sample_rate != self.model_rate:
            y = soxr.resample(np.ascontiguousarray(y.T), self.sample_rate, self.model_rate, quality="VHQ").T
        out = np.zeros((2, n), np.float32)
        m = min(n, y.shape[1])
        out[:, :m] = y[:, :m]
        return out


def evaluate_streaming(bundle_path, data_root, split: str = "test", lookaheads: Sequence[int] = (0, 2, 4, 8),
                       block_frames: int = 1, max_clips: int = 40, normalize: bool = M.NORMALIZE_DEFAULT,
                       progress: bool = True, sample_rate: int = 48000, localisation: bool = True,
                       backend: str = "onnxruntime") -> Dict:
    """Score the streaming engine at each lookahead, and the offline protocol when the bundle
    has weights.pt, on the first ``max_clips`` clips of ``split`` (a name or a list of names,
    concatenated in order). ``localisation``: also the
    localisation measures of every condition (extra runs with grey frames on every clip and
    mirrored frames on the lateral single-source clips)."""
    from tqdm import tqdm

    import torch.utils.data

    from streambin.bundle import load_bundle
    from streambin.train.data import SimBinauralDataset
    from streambin.train.evaluate import _aggregate, localisation_record, offline_predictor

    bundle = load_bundle(bundle_path)
    predictors = {}
    if bundle.weights is not None:
        from streambin.train.checkpoint import load_generator

        model, cfg = load_generator(str(bundle.weights))
        predictors["offline"] = offline_predictor(model, cfg.audio)
    streamed = {a: StreamedPredictor(bundle.path, sample_rate=sample_rate, lookahead_frames=a,
                                     block_frames=block_frames, backend=backend) for a in lookaheads}
    predictors.update({f"streaming_lookahead_{a}": p for a, p in streamed.items()})
    splits = [split] if isinstance(split, str) else list(split)
    parts = [SimBinauralDataset(data_root, s, mode="eval", visual_size=bundle.visual_size) for s in splits]
    data = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
    n = min(len(data), max_clips)
    if n < 1:
        raise ValueError(f"split {split!r} of {data_root} has no clips")
    names = list(M.METRICS)
    per_clip: List[Dict] = []
    records: Dict[str, List[Dict]] = {c: [] for c in predictors}
    t0 = time.perf_counter()
    for i in tqdm(range(n), desc="streaming vs offline", unit="clip", disable=not progress):
        item = data[i]
        target = np.asarray(item["audio"], np.float32)
        frames = np.asarray(item["frames"])
        fps = float(item["fps"])
        mono = 0.5 * (target[0] + target[1])
        preds = {"mono_mono": np.stack([mono, mono])}
        for cond, predict in predictors.items():
            preds[cond] = predict(mono, frames, fps, "true")
            if localisation:
                records[cond].append(localisation_record(predict, item["clip"], item["meta"], target, mono,
                                                         frames, fps, pred=preds[cond]))
        per_clip.append({"clip": item["clip"], "metrics": {
            cond: {m: M.METRICS[m](p, target, sample_rate=bundle.sample_rate, normalize=normalize) for m in names}
            for cond, p in preds.items()}})
    wall_s = time.perf_counter() - t0
    conditions = list(per_clip[0]["metrics"])
    summary = {c: {m: _aggregate([p["metrics"][c][m] for p in per_clip]) for m in names} for c in conditions}
    ratios = {}
    if "offline" in summary:
        ratios = {c: {m: summary[c][m]["mean"] / summary["offline"][m]["mean"] for m in ("stft", "env")}
                  for c in conditions if c.startswith("streaming")}
    ratios_mono = {c: summary[c]["stft"]["mean"] / summary["mono_mono"]["stft"]["mean"] for c in conditions}
    out = {"settings": {"bundle": str(bundle.path), "split": "+".join(splits), "n_clips": n, "block_frames": block_frames,
                        "lookaheads": list(lookaheads), "normalize": normalize, "chunk_ms": 10,
                        "sample_rate": sample_rate, "backend": backend,
                        "latency_ms": {a: p.spatializer.latency_ms for a, p in streamed.items()},
                        "offline_reference": "offline" in predictors,
                        "wall_s": wall_s, "wall_s_per_clip": wall_s / n},
           "summary": summary, "ratio_to_offline": ratios, "stft_ratio_to_mono_mono": ratios_mono,
           "per_clip": per_clip}
    if localisation:
        out["localisation"] = {c: {"summary": L.summarize(r), "per_clip": r} for c, r in records.items()}
    return out


def markdown(results: Dict) -> str:
    s = results["summary"]
    cols = ["stft", "env", "wave_l2", "snr", "direction_acc"]
    lines = ["| condition | latency (ms) | " + " | ".join(cols) + " | STFT / offline | ENV / offline | STFT / Mono-Mono |",
             "|---|---|" + "---|" * (len(cols) + 3)]
    lat = results["settings"]["latency_ms"]
    for cond, row in s.items():
        a = cond.rsplit("_", 1)[-1] if cond.startswith("streaming") else None
        r = results["ratio_to_offline"].get(cond)
        cells = [f"{row[c]['mean']:.4f} ± {row[c]['sem']:.4f}" for c in cols]
        lines.append(f"| {cond} | {lat[int(a)]:.1f} |" if a is not None else f"| {cond} | - |")
        lines[-1] += " " + " | ".join(cells) + " | " + (
            f"{r['stft']:.3f} | {r['env']:.3f} |" if r else "- | - |")
        lines[-1] += f" {results['stft_ratio_to_mono_mono'][cond]:.3f} |"
    st = results["settings"]
    lines.append("")
    lines.append(f"{st['n_clips']} clips of split {st['split']!r} streamed at {st['sample_rate']} Hz "
                 f"({st['backend']}, block {st['block_frames']}); {st['wall_s_per_clip']:.1f} s wall time per clip.")
    for cond, loc in results.get("localisation", {}).items():
        lines += ["", L.markdown_table(loc["summary"], title=f"Localisation: {cond}").rstrip("\n")]
    return "\n".join(lines)


def main(argv=None) -> int:
    from streambin.train.evaluate import _json_safe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="model bundle directory (or 'default') to stream")
    p.add_argument("--data", required=True, help="data set root, as for streambin.train.evaluate")
    p.add_argument("--split", nargs="+", default=["test"], help="split name(s), concatenated in order")
    p.add_argument("--lookahead", type=int, nargs="+", default=[0, 2, 4, 8],
                   help="lookahead frames to score, one streamed run each (default 0 2 4 8)")
    p.add_argument("--block-frames", type=int, default=1, help="STFT frames per audio-net run (default 1)")
    p.add_argument("--max-clips", type=int, default=40, help="score at most this many clips (default 40)")
    p.add_argument("--sample-rate", type=int, default=48000,
                   help="device rate the clips are streamed at (default 48000, as an app)")
    p.add_argument("--backend", default="onnxruntime", help="Spatializer backend (default onnxruntime)")
    p.add_argument("--no-localisation", action="store_true",
                   help="skip the localisation measures (their grey- and mirrored-frame runs)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.add_argument("--markdown", default=None, help="also write the results as a Markdown table to this file")
    args = p.parse_args(argv)
    res = evaluate_streaming(args.bundle, args.data, args.split, args.lookahead, args.block_frames, args.max_clips,
                             progress=not args.no_progress, sample_rate=args.sample_rate,
                             localisation=not args.no_localisation, backend=args.backend)
    table = markdown(res)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_json_safe(res), f, indent=1, allow_nan=False)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
