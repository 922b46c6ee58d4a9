"""The papers' test-time evaluation protocol, with the three standard baselines.

Command line::

    python -m streambin.train.evaluate --checkpoint CKPT --data DIR --split test \\
        [--window-hop 0.1] [--max-clips N] [--lateral-only] [--out results.json] [--markdown results.md] \\
        [--audio-only-checkpoint CKPT2] [--no-normalize] [--batch-size 32] [--device cpu]
    python -m streambin.train.evaluate --bundle streambin/models/default --data DIR --split test \\
        [--sample-rate 48000] [--lookahead A] [--block-frames 1] [--backend onnxruntime] ...

``--checkpoint`` runs the offline protocol below in torch (``--streamed``: through the
Spatializer on the torch backend instead); ``--bundle`` streams every clip through
:class:`streambin.Spatializer` (ONNX Runtime) at ``--sample-rate`` as an app would (see
:class:`streambin.train.evaluate_streaming.StreamedPredictor`); the conditions below are then
the engine's output with the true, grey and mirrored frames. Beside the papers' metrics the
report has the localisation measures of :mod:`streambin.train.localisation_eval` (direction
accuracy per scene kind, mirror flip rate, predicted / true level difference, grey-frame bias),
computed from the same model, audio-only and flipped-visual outputs.

Procedure for each whole clip (Mono2Binaural / Sep-Stereo test time, minus the reference
code's bugs):

1. ``mono = (L + R) / 2`` of the ground-truth binaural clip.
2. Windows of ``crop = (context_frames - 1) * hop`` samples (10080 at 16 kHz = 0.63 s) start
   every ``window_hop_s`` seconds (0.1 s), plus one window ending exactly at the clip end; every
   window takes its OWN samples of the mix (the reference re-used the previous window's mix for
   the last one). A clip shorter than one window is zero-padded to one window.
3. Per window, the network input is the centred STFT of the window (``torch.stft``, n_fft 512,
   hop 160, win 400 periodic Hann, ``center=True``; real/imag as two channels,
   (2, 257, T=64)) scaled by ``input_rms / max(rms(window), rms_floor)``; the visual feature is
   the one of the frame showing the window centre: frame ``i`` (0-based) covers
   ``[i / fps, (i + 1) / fps)`` (FAIR-Play's convention, as streambin.train.data picks the
   training frame), so time ``t`` uses frame ``floor(t * fps)``.
4. The masks multiply the RAW (un-normalised) window spectrogram: mask kind ``"side"``:
   ``D = mask * M``, ``L = M + D``, ``R = M - D``; ``"left_right"``: ``L = m0 * M``,
   ``R = m1 * M``. Each channel is inverted with ``torch.istft`` at the same n_fft 512 (the
   reference ran its ISTFT at 510) and ``length = crop``.
5. Overlapping window outputs are blended by averaging: per-sample sum / number of windows.

Conditions scored on the same clips:

- ``model``: the network with the true frames.
- ``mono_mono``: both channels = mono.
- ``audio_only``: the network with its visual input removed. The papers trained a separate
  audio-only network; our definition, when no separate model is given, is the SAME network fed
  the *neutral visual feature* = its visual net's output on a uniform mid-grey frame (uint8 128
  in every channel, at the frames' size). With ``--audio-only-checkpoint`` a separately trained
  model is scored instead (also fed the grey frame, so its visual branch carries no picture).
- ``flipped_visual``: the network with every frame mirrored horizontally at test time (the sound
  is not mirrored): a model that uses the picture must get worse.

Metrics: all of :data:`streambin.train.metrics.METRICS`, with the papers' peak normalisation by
default (``--no-normalize`` turns it off), per clip and as mean, sample standard deviation
(ddof 1) and standard error ``std / sqrt(n)`` over clips. Non-finite per-clip values (``inf`` SNR
on an exact match, ``nan`` direction accuracy when no frame is lateral) are left out of the
aggregates (their count is reported) and written as ``null`` in the JSON file.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from streambin.cli_options import (add_camera_hfov_option, add_mirror_average_options, add_side_gain_option,
                                   add_side_renderer_option)
from streambin.signal_contract import (apply_masks_torch, check_side_gain, input_scale_torch, network_input_torch,
                                       scale_side_output, stft_torch)
from streambin.train import localisation_eval as L
from streambin.train import metrics as M
from streambin.train.cpu_numerics import flush_denormals

# (mono (n,) float at the model rate, frames (n_frames, H, W, 3) uint8, fps, visual_mode) ->
# (2, n) float32 left/right at the model rate; visual_mode as in predict_clip.
Predictor = Callable[[Any, Any, float, str], np.ndarray]
# A predictor may also have ``start_clip(meta)``: called with each clip's meta (or None) before
# its predictions (the streamed engine reads a clip's own camera view from it).

CONDITIONS = ("model", "mono_mono", "audio_only", "flipped_visual")
VISUAL_MODES = ("true", "flipped", "none")
NEUTRAL_GREY = 128  # uint8 value of the neutral (audio-only) frame
_CONDITION_LABELS = {
    "model": "Model (true frames)",
    "mono_mono": "Mono-Mono",
    "audio_only": "Audio-only",
    "flipped_visual": "Flipped-visual",
}
_METRIC_LABELS = {
    "stft": "STFT",
    "env": "ENV",
    "wave_l2": "Wave L2",
    "mrstft": "MRSTFT",
    "snr": "SNR (dB)",
    "spl": "SPL (dB)",
    "direction_acc": "Dir. acc.",
}


# ----------------------------------------------------------------------------- framing helpers


def _audio_params(audio_cfg) -> Dict[str, Any]:
    """Read the signal parameters from an AudioConfig-like object (attributes or dict keys)."""
    names = ("sample_rate", "n_fft", "win_length", "hop", "context_frames", "input_rms", "rms_floor")
    out = {}
    for name in names:
        if isinstance(audio_cfg, dict):
            if name not in audio_cfg:
                raise ValueError(f"audio_cfg is missing {name!r}; needs {names}")
            out[name] = audio_cfg[name]
        else:
            if not hasattr(audio_cfg, name):
                raise ValueError(f"audio_cfg is missing attribute {name!r}; needs {names}")
            out[name] = getattr(audio_cfg, name)
    for name in names[:5]:
        if int(out[name]) != out[name] or int(out[name]) < 1:
            raise ValueError(f"audio_cfg.{name} must be a positive int, got {out[name]!r}")
        out[name] = int(out[name])
    for name in ("input_rms", "rms_floor"):
        if not float(out[name]) > 0:
            raise ValueError(f"audio_cfg.{name} must be > 0, got {out[name]!r}")
        out[name] = float(out[name])
    out["crop"] = (out["context_frames"] - 1) * out["hop"]
    return out


def window_starts(n_samples: int, window: int, hop: int) -> List[int]:
    """Start samples of the sliding windows over a clip of ``n_samples`` (>= ``window``).

    ``0, hop, 2*hop, ...`` while the window fits, plus ``n_samples - window`` (a window aligned to
    the clip end) when that is not already a start.
    """
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got {window}, {hop}")
    if n_samples < window:
        raise ValueError(f"clip of {n_samples} samples is shorter than one window ({window})")
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] != n_samples - window:
        starts.append(n_samples - window)
    return starts


def frame_index_at(time_s: float, fps: float, n_frames: int) -> int:
    """0-based index of the video frame showing ``time_s`` when frame i covers
    ``[i / fps, (i + 1) / fps)``, clipped to ``[0, n_frames - 1]``."""
    return int(min(max(math.floor(time_s * fps), 0), n_frames - 1))


def _as_tensor(x, dtype=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t if dtype is None else t.to(dtype)


def _model_device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------- prediction


@torch.no_grad()
def predict_clip(model, audio_mono, frames, fps, audio_cfg, window_hop_s: float = 0.1,
                 visual_mode: str = "true", batch_size: int = 32,
                 pad_mode: str = "reflect") -> np.ndarray:
    """Binaural prediction of one whole clip by the sliding-window protocol (module docstring).

    model: object with ``visual(frames uint8 (B, H, W, 3)) -> feature (B, ...)``,
        ``audio(spec (B, 2, 257, T), feature) -> mask (B, n_masks, 2, 257, T)`` and
        ``mask_kind`` in {"side", "left_right"} (docs/architecture.md). Put in eval mode for the
        call (its previous mode is restored).
    audio_mono: (n,) float mono at ``audio_cfg.sample_rate``.
    frames: (n_frames, H, W, 3) uint8 RGB, already at the model's visual size.
    fps: frame rate of ``frames`` (frame i covers [i / fps, (i + 1) / fps)).
    audio_cfg: sample_rate, n_fft, win_length, hop, context_frames, input_rms, rms_floor.
    window_hop_s: seconds between window starts (0.1 in the papers but 2.5D's 0.05).
    visual_mode: "true" (frames as given), "flipped" (mirrored left-right) or "none" (the
        neutral feature of a mid-grey frame, see :data:`NEUTRAL_GREY`).
    pad_mode: ``torch.stft`` padding of each window's analysis (``center=True``); "reflect" is
        torch's default and what librosa < 0.9 (the reference's training) used.
    Returns (2, n) float32 (left, right).
    """
    p = _audio_params(audio_cfg)
    if visual_mode not in VISUAL_MODES:
        raise ValueError(f"visual_mode must be one of {VISUAL_MODES}, got {visual_mode!r}")
    kind = getattr(model, "mask_kind", None)
    if kind not in ("side", "left_right"):
        raise ValueError(f"model.mask_kind must be 'side' or 'left_right', got {kind!r}")
    n_masks = 1 if kind == "side" else 2
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (window_hop_s > 0):
        raise ValueError(f"window_hop_s must be > 0 seconds, got {window_hop_s}")
    if not (float(fps) > 0):
        raise ValueError(f"fps must be > 0, got {fps!r}")

    mono = _as_tensor(audio_mono)
    if mono.ndim != 1 or mono.numel() < 1 or not mono.dtype.is_floating_point:
        raise ValueError(f"audio_mono must be a (n,) float array, got shape {tuple(mono.shape)} "
                         f"dtype {mono.dtype}")
    if not torch.isfinite(mono).all():
        raise ValueError("audio_mono must be finite, (n,) float")
    frames_t = _as_tensor(frames)
    if frames_t.ndim != 4 or frames_t.shape[-1] != 3 or frames_t.shape[0] < 1:
        raise ValueError(f"frames must have shape (n_frames, H, W, 3), got {tuple(frames_t.shape)}")
    if frames_t.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 (n_frames, H, W, 3) RGB, got dtype {frames_t.dtype}")

    device = _model_device(model)
    n = mono.numel()
    crop, sr = p["crop"], p["sample_rate"]
    mono = mono.to(device=device, dtype=torch.float32)
    if n < crop:  # shorter than one window: pad with silence, crop the output back
        mono = torch.nn.functional.pad(mono, (0, crop - n))
    n_padded = mono.numel()
    hop_samples = max(1, int(round(window_hop_s * sr)))
    starts = window_starts(n_padded, crop, hop_samples)

    was_training = model.training if isinstance(model, torch.nn.Module) else None
    if was_training is not None:
        model.eval()
    try:
        features = _window_features(model, frames_t, fps, starts, crop, sr, visual_mode,
                                    batch_size, device)
        window = torch.hann_window(p["win_length"], periodic=True, device=device)
        stft_kw = dict(n_fft=p["n_fft"], hop_length=p["hop"], win_length=p["win_length"],
                       window=window, center=True)
        n_bins = p["n_fft"] // 2 + 1
        out = torch.zeros(2, n_padded, device=device)
        count = torch.zeros(n_padded, device=device)
        for b0 in range(0, len(starts), batch_size):
            bstarts = starts[b0:b0 + batch_size]
            x = torch.stack([mono[s:s + crop] for s in bstarts])  # (B, crop)
            spec = stft_torch(x, p["n_fft"], p["hop"], p["win_length"], pad_mode=pad_mode)
            B, T = spec.shape[0], spec.shape[-1]
            if T != p["context_frames"]:  # cannot happen with crop = (T - 1) * hop
                raise RuntimeError(f"window STFT has {T} frames, expected {p['context_frames']}")
            scale = input_scale_torch(x, p["input_rms"], p["rms_floor"])
            mask = model.audio(network_input_torch(spec, scale), features[b0:b0 + B])
            expected = (B, n_masks, 2, n_bins, T)
            if tuple(mask.shape) != expected:
                raise ValueError(f"model.audio returned mask of shape {tuple(mask.shape)}, expected "
                                 f"(B, n_masks, 2, 257, T) = {expected} for mask_kind {kind!r}")
            lr = apply_masks_torch(spec, mask, kind)                         # (B, 2, F, T)
            wav = torch.istft(lr.reshape(B * 2, n_bins, T), length=crop, **stft_kw)
            wav = wav.reshape(B, 2, crop)
            for i, s in enumerate(bstarts):
                out[:, s:s + crop] += wav[i]
                count[s:s + crop] += 1
    finally:
        if was_training:
            model.train()
    out = out / count  # every sample is covered by >= 1 window
    return out[:, :n].cpu().numpy().astype(np.float32)


def neutral_feature(model, height: int, width: int, device=None) -> torch.Tensor:
    """The visual net's output on one uniform mid-grey frame (uint8 128): our audio-only input.

    Returns the feature of shape (1, *feature_shape).
    """
    device = device if device is not None else _model_device(model)
    grey = torch.full((1, height, width, 3), NEUTRAL_GREY, dtype=torch.uint8, device=device)
    return model.visual(grey)


def _window_features(model, frames, fps, starts, crop, sr, visual_mode, batch_size, device):
    """Visual feature per window, (n_windows, *feature_shape); each distinct frame runs once."""
    n_frames, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    if visual_mode == "none":
        feat = neutral_feature(model, height, width, device)
        return feat.expand(len(starts), *feat.shape[1:])
    idx = [frame_index_at((s + crop / 2) / sr, float(fps), n_frames) for s in starts]
    unique = sorted(set(idx))
    chosen = frames[unique]
    if visual_mode == "flipped":
        chosen = torch.flip(chosen, dims=[2])  # mirror the width axis of (N, H, W, 3)
    feats = []
    for b0 in range(0, len(unique), batch_size):
        feats.append(model.visual(chosen[b0:b0 + batch_size].to(device)))
    feats = torch.cat(feats)
    where = {f: i for i, f in enumerate(unique)}
    return feats[[where[i] for i in idx]]


# ----------------------------------------------------------------------------- evaluation


def _item_fields(item, index):
    for key in ("audio", "frames", "fps"):
        if key not in item:
            raise KeyError(f"dataset item {index} has no {key!r}; eval items need "
                           f"audio (2, n), frames (n_frames, H, W, 3) uint8, fps, clip")
    audio = item["audio"]
    audio = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] != 2 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"dataset item {index}: audio must be float (2, n) left/right, got "
                         f"shape {audio.shape} dtype {audio.dtype}")
    fps = item["fps"]
    fps = float(fps.item() if hasattr(fps, "item") else fps)
    return audio.astype(np.float32), item["frames"], fps, str(item.get("clip", index))


def _aggregate(values: Sequence[float]) -> Dict[str, Any]:
    finite = np.array([v for v in values if np.isfinite(v)], dtype=np.float64)
    n = int(finite.size)
    out = {"mean": float(finite.mean()) if n else float("nan"), "std": float("nan"),
           "sem": float("nan"), "n": n, "n_nonfinite": len(values) - n}
    if n >= 2:
        out["std"] = float(finite.std(ddof=1))
        out["sem"] = out["std"] / math.sqrt(n)
    return out


def offline_predictor(model, audio_cfg, window_hop_s: float = 0.1, batch_size: int = 32,
                      pad_mode: str = "reflect", side_gain: float = 1.0) -> Predictor:
    """The papers' sliding-window protocol (:func:`predict_clip`) as a :data:`Predictor`;
    ``side_gain`` other than 1 scales the prediction's side as the engine's option does
    (:func:`streambin.signal_contract.scale_side_output`)."""
    side_gain = check_side_gain(side_gain)

    def predict(mono, frames, fps, visual_mode):
        out = predict_clip(model, mono, frames, fps, audio_cfg, window_hop_s=window_hop_s,
                           visual_mode=visual_mode, batch_size=batch_size, pad_mode=pad_mode)
        return out if side_gain == 1.0 else scale_side_output(out, side_gain)
    return predict


#: The visual mode whose output, ears swapped, mirror averaging pairs with each mode's.
MIRRORED_MODE = {"true": "flipped", "flipped": "true", "none": "none"}


def cached_predictor(predict: Predictor) -> Predictor:
    """``predict`` remembering its outputs per (mono samples, frames' shape, visual mode): for
    analyses that ask for the same prediction several times (each scored variant of one model)."""
    cache: Dict[Any, np.ndarray] = {}

    def cached(mono, frames, fps, visual_mode):
        key = (hashlib.sha1(np.ascontiguousarray(mono).tobytes()).hexdigest(), tuple(frames.shape), visual_mode)
        if key not in cache:
            cache[key] = predict(mono, frames, fps, visual_mode)
        return cache[key]
    return cached


def mirror_averaged_predictor(predict: Predictor) -> Predictor:
    """Mirror averaging on the outputs of a plain ``predict``: each mode's output averaged with
    the mirrored mode's output, ears swapped (the engine averages the masks, which is the same:
    masks act linearly). Wrap ``predict`` in :func:`cached_predictor` when the plain outputs are
    also scored, so each is computed once."""
    def averaged(mono, frames, fps, visual_mode):
        own = predict(mono, frames, fps, visual_mode)
        other = predict(mono, frames, fps, MIRRORED_MODE[visual_mode])
        return 0.5 * (own + other[::-1])  # (2, n): the mirrored picture's output, ears swapped
    return averaged


def localisation_record(predict: Predictor, clip: str, meta, target, mono, frames, fps,
                        pred=None, grey=None, mirrored=None) -> Dict[str, Any]:
    """The clip's :func:`streambin.train.localisation_eval.clip_record`; the outputs with true
    (``pred``), grey and mirrored frames are predicted with ``predict`` unless given (mirrored
    ones only for lateral single-source clips)."""
    if pred is None:
        pred = predict(mono, frames, fps, "true")
    if grey is None:
        grey = predict(mono, frames, fps, "none")
    if mirrored is None and L.qualify(meta)["qualifies"]:
        mirrored = predict(mono, frames, fps, "flipped")
    return L.clip_record(clip, meta, target, pred, grey, mirrored)


def evaluate_model(model, config, dataset, window_hop_s: float = 0.1,
                   max_clips: Optional[int] = None, normalize: bool = M.NORMALIZE_DEFAULT,
                   audio_only_model=None, conditions: Sequence[str] = CONDITIONS,
                   batch_size: int = 32, pad_mode: str = "reflect",
                   progress: bool = True, predict: Optional[Predictor] = None,
                   localisation: bool = True, protocol: Optional[str] = None,
                   lateral_only: bool = False, side_gain: float = 1.0) -> Dict[str, Any]:
    """Score ``model`` and the baselines on whole clips of ``dataset``.

    model: generator (see :func:`predict_clip`), scored by the offline protocol; or None when
        ``predict`` is given. config: object with ``.audio`` (AudioConfig or a Bundle: the
        model's sample rate and STFT parameters).
    predict: another engine for every condition that uses the network, e.g. the streaming
        engine (:class:`streambin.train.evaluate_streaming.StreamedPredictor`); its
        ``visual_mode`` "none" is its output with uniform grey frames. ``protocol`` describes
        it in the settings.
    localisation: also compute the localisation measures (:mod:`streambin.train.localisation_eval`);
        they reuse the model / audio-only / flipped-visual predictions of the same engine.
    dataset: sequence (``len`` and ``[i]``) of eval items ``{"audio": (2, n) float at the model
        rate, "frames": (n_frames, H, W, 3) uint8 at the visual size, "fps", "clip"}``.
    max_clips: score only the first ``max_clips`` clips.
    lateral_only: of those, score only the lateral single-source clips (the ones the direction,
        mirror and level-difference measures count, ``localisation_eval.qualify``): the
        localisation measures on many more clips per CPU second. Items need a ``"meta"``.
    normalize: peak-normalise prediction and target before scoring (the papers' default).
    audio_only_model: separately trained audio-only generator; default None = the same model
        with the neutral grey-frame feature.
    conditions: subset of :data:`CONDITIONS`.
    side_gain: offline protocol only: the model's predictions with their side scaled
        (streambin.signal_contract; an engine given as ``predict`` applies its own).
    Returns a dict with ``settings``, ``conditions``, ``metrics``, ``higher_is_better``,
    ``summary[condition][metric] = {mean, std, sem, n, n_nonfinite}`` and ``per_clip`` (list of
    ``{"clip", "n_samples", "metrics": {condition: {metric: value}}}``), and with
    ``localisation`` also ``localisation = {"summary": localisation_eval.summarize(...),
    "per_clip": [clip_record, ...]}``. ``settings`` has the protocol and the wall time
    (``wall_s``, ``wall_s_per_clip``: prediction and scoring, not loading the model).
    """
    from tqdm import tqdm

    conditions = tuple(conditions)
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        raise ValueError(f"conditions must be a non-empty subset of {CONDITIONS}, got {conditions}")
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be >= 1 or None, got {max_clips}")
    audio_cfg = config.audio
    sr = _audio_params(audio_cfg)["sample_rate"]
    n_clips = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    if n_clips == 0:
        raise ValueError("dataset has no clips to evaluate")
    if (model is None) == (predict is None):
        raise ValueError("give either model (offline protocol) or predict (another engine), not both")
    if predict is not None and audio_only_model is not None:
        raise ValueError("audio_only_model is scored by the offline protocol: use it without predict")
    names = list(M.METRICS)
    per_clip, records = [], []
    kw = dict(window_hop_s=window_hop_s, batch_size=batch_size, pad_mode=pad_mode)
    if predict is not None and side_gain != 1.0:
        raise ValueError("side_gain applies to the offline protocol: give it to the engine passed as predict")
    if predict is None:
        predict = offline_predictor(model, audio_cfg, side_gain=side_gain, **kw)
    predict_ao = offline_predictor(audio_only_model, audio_cfg, **kw) if audio_only_model is not None else predict
    visual_modes = {"model": "true", "audio_only": "none", "flipped_visual": "flipped"}
    t0 = time.perf_counter()
    for i in tqdm(range(n_clips), desc="evaluate", unit="clip", disable=not progress):
        item = dataset[i]
        if lateral_only and not L.qualify(item.get("meta"))["qualifies"]:
            continue
        target, frames, fps, clip = _item_fields(item, i)
        for engine in [predict] if predict_ao is predict else [predict, predict_ao]:
            if hasattr(engine, "start_clip"):
                engine.start_clip(item.get("meta"))
        mono = 0.5 * (target[0] + target[1])
        preds = {}
        for cond in conditions:
            if cond == "mono_mono":
                preds[cond] = np.stack([mono, mono])
            else:
                net = predict_ao if cond == "audio_only" else predict
                preds[cond] = net(mono, frames, fps, visual_modes[cond])
        scores = {
            cond: {name: M.METRICS[name](pred, target, sample_rate=sr, normalize=normalize)
                   for name in names}
            for cond, pred in preds.items()
        }
        per_clip.append({"clip": clip, "n_samples": int(target.shape[1]), "metrics": scores})
        if localisation:
            records.append(localisation_record(
                predict, clip, item.get("meta"), target, mono, frames, fps, pred=preds.get("model"),
                grey=preds.get("audio_only") if audio_only_model is None else None,
                mirrored=preds.get("flipped_visual")))
    wall_s = time.perf_counter() - t0
    if not per_clip:
        raise ValueError(f"none of the {n_clips} clips is a lateral single-source clip (lateral_only)")
    summary = {
        cond: {name: _aggregate([c["metrics"][cond][name] for c in per_clip]) for name in names}
        for cond in conditions
    }
    results = {
        "settings": {
            "protocol": protocol or (f"offline sliding-window protocol, window hop {window_hop_s} s"
                                     + (f", side gain {side_gain:g}" if side_gain != 1.0 else "")),
            "side_gain": float(side_gain),
            "wall_s": wall_s,
            "wall_s_per_clip": wall_s / len(per_clip),
            "window_hop_s": window_hop_s,
            "window_samples": _audio_params(audio_cfg)["crop"],
            "sample_rate": sr,
            "normalize": bool(normalize),
            "stft_pad_mode": pad_mode,
            # the STFT metric's own padding: its default (not forced here)
            "metric_stft_pad_mode": inspect.signature(M.stft_distance).parameters["pad_mode"].default,
            "n_clips": len(per_clip),
            "clip_selection": (f"lateral single-source clips only: {len(per_clip)} of the first {n_clips}"
                               if lateral_only else f"the first {n_clips}"),
            "audio_only": ("separate model, grey-frame visual input" if audio_only_model is not None
                           else "same model, neutral feature of a uint8 128 grey frame"
                           if protocol is None else "same engine, uniform uint8 128 grey frames"),
        },
        "conditions": list(conditions),
        "metrics": names,
        "higher_is_better": sorted(M.HIGHER_IS_BETTER),
        "summary": summary,
        "per_clip": per_clip,
    }
    if localisation:
        results["localisation"] = {"summary": L.summarize(records), "per_clip": records}
    return results


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"


def markdown_table(results: Dict[str, Any]) -> str:
    """Markdown table of ``results["summary"]``: one row per condition, ``mean ± sem`` cells."""
    names = results["metrics"]
    hib = set(results["higher_is_better"])
    head = ["Condition"] + [f"{_METRIC_LABELS.get(m, m)} {'↑' if m in hib else '↓'}" for m in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cond in results["conditions"]:
        row = [_CONDITION_LABELS.get(cond, cond)]
        for m in names:
            s = results["summary"][cond][m]
            cell = _fmt(s["mean"])
            if np.isfinite(s["sem"]):
                cell += f" ± {_fmt(s['sem'])}"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    st = results["settings"]
    lines.append("")
    lines.append(f"{st['n_clips']} clips; {st['protocol']}; mean ± standard error over clips; "
                 f"peak normalisation {'on' if st['normalize'] else 'off'}; "
                 f"audio-only = {st['audio_only']}; {st['wall_s_per_clip']:.2f} s wall time per clip.")
    table = "\n".join(lines) + "\n"
    if "localisation" in results:
        table += "\n" + L.markdown_table(results["localisation"]["summary"])
    return table


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_results(results: Dict[str, Any], json_path: Optional[str] = None,
                  markdown_path: Optional[str] = None) -> None:
    """Write the results as strict JSON (non-finite -> null) and/or the Markdown table."""
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(_json_safe(results), f, indent=2, allow_nan=False)
    if markdown_path:
        with open(markdown_path, "w", encoding="utf-8") as f:
            f.write(markdown_table(results))


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m streambin.train.evaluate",
        description="Evaluation of a trained generator (checkpoint) or a model bundle on whole "
                    "clips: the papers' metrics for the model and the Mono-Mono, Audio-only and "
                    "Flipped-visual baselines, and the localisation measures.")
    model = ap.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="generator checkpoint (.pt): offline protocol in torch "
                                            "(or --streamed)")
    model.add_argument("--bundle", help="model bundle directory (e.g. streambin/models/default): "
                                        "streamed through the Spatializer")
    ap.add_argument("--data", required=True, help="data set root directory")
    ap.add_argument("--split", nargs="+", default=["test"],
                    help="split name(s), scored one after the other (default: test; e.g. "
                         "'train val test' for a whole evaluation set)")
    ap.add_argument("--window-hop", type=float, default=0.1,
                    help="offline protocol: seconds between window starts (default 0.1; 2.5D used 0.05)")
    ap.add_argument("--max-clips", type=int, default=None, help="score only the first N clips")
    add_mirror_average_options(
        ap, on_help="score with mirror averaging on (the output averaged with the ear-swapped output for the "
                    "mirrored frames): the generator's model.mirror_average offline, the Spatializer's "
                    "mirror_average streamed (default: as the checkpoint or bundle says)",
        off_help="score with mirror averaging off")
    add_side_gain_option(
        ap, help="scale the output's side (L - R) / 2 by G, keeping its mid, G in [0, 4]: the Spatializer's "
                 "side_gain streamed, the same on the predictions offline (default: as the bundle says "
                 "streamed, 1 offline)")
    ap.add_argument("--lateral-only", action="store_true",
                    help="of those, score only the lateral single-source clips (the ones the direction, mirror "
                         "and level-difference measures count)")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--markdown", default=None, help="Markdown table file")
    ap.add_argument("--audio-only-checkpoint", default=None,
                    help="separately trained audio-only generator (default: same network with "
                         "the neutral grey-frame feature); offline protocol only")
    ap.add_argument("--no-normalize", action="store_true",
                    help="score without the papers' peak normalisation")
    ap.add_argument("--no-localisation", action="store_true",
                    help="skip the localisation measures (and their extra runs)")
    ap.add_argument("--batch-size", type=int, default=32, help="offline protocol: windows per forward pass")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    st = ap.add_argument_group("streamed evaluation (--bundle, or --checkpoint with --streamed)")
    st.add_argument("--streamed", action="store_true",
                    help="stream a --checkpoint through the Spatializer (torch backend) instead of "
                         "the offline protocol")
    st.add_argument("--sample-rate", type=int, default=48000,
                    help="device sample rate the clips are streamed at (default 48000, as an app)")
    st.add_argument("--lookahead", type=int, default=None,
                    help="Spatializer lookahead_frames (default: the engine's default)")
    st.add_argument("--block-frames", type=int, default=1,
                    help="Spatializer block_frames (default 1: deterministic, not measured speed)")
    st.add_argument("--backend", default="onnxruntime",
                    help="Spatializer backend for a --bundle (default onnxruntime)")
    add_side_renderer_option(st)
    add_camera_hfov_option(
        st, per_clip=True,
        help="the camera's horizontal field of view the side renderer reads the frames at, in degrees, or 'clip': "
             "each clip's own (its meta's hfov_deg), as an app that knows its lens (default: as the bundle says)")
    return ap


def run(args, load_generator: Optional[Callable] = None,
        make_dataset: Optional[Callable] = None) -> Dict[str, Any]:
    """Run the evaluation described by parsed ``args``; returns the results dict.

    load_generator(path) -> (model, config) and make_dataset(root, split, visual_size) ->
    dataset default to streambin.train.checkpoint.load_generator and
    streambin.train.data.SimBinauralDataset(root, split, mode="eval", visual_size=...); several
    ``--split`` names are concatenated in the order given.
    Streamed runs load the frames at the model's visual size: the loader and the Spatializer
    resize with the same INTER_AREA, so the engine sees what a full-size frame would give it.
    With a side renderer (a second net at another size) they load the frames as stored.
    """
    if make_dataset is None:
        from streambin.train.data import SimBinauralDataset

        def make_dataset(root, split, visual_size):
            return SimBinauralDataset(root, split, mode="eval", visual_size=visual_size)

    streamed = bool(args.bundle) or args.streamed
    if not streamed and getattr(args, "camera_hfov", None) is not None:
        raise ValueError("--camera-hfov is read by the engine's side renderer: give it with --bundle or --streamed")
    if streamed and args.audio_only_checkpoint:
        raise ValueError("--audio-only-checkpoint is scored by the offline protocol; it cannot be "
                         "combined with --bundle or --streamed")
    localisation = not args.no_localisation
    if streamed:
        results = _run_streamed(args, make_dataset, localisation)
    else:
        results = _run_offline(args, load_generator, make_dataset, localisation)
    results["settings"].update(checkpoint=args.checkpoint, bundle=args.bundle, data=args.data,
                               split="+".join(args.split), audio_only_checkpoint=args.audio_only_checkpoint)
    write_results(results, args.out, args.markdown)
    return results


def _splits(make_dataset, args, visual_size):
    """The data set of ``args.split`` (one name or a list, concatenated in order)."""
    names = [args.split] if isinstance(args.split, str) else list(args.split)
    parts = [make_dataset(args.data, name, visual_size) for name in names]
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


def _run_offline(args, load_generator, make_dataset, localisation):
    if load_generator is None:
        from streambin.train.checkpoint import load_generator
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # Injected loaders (tests' stand-ins) take only the path; the keyword goes only where asked.
    model, config = (load_generator(args.checkpoint) if args.mirror_average is None
                     else load_generator(args.checkpoint, mirror_average=args.mirror_average))
    model = model.to(device)
    audio_only = None
    if args.audio_only_checkpoint:
        audio_only, ao_config = load_generator(args.audio_only_checkpoint)
        if _audio_params(ao_config.audio) != _audio_params(config.audio):
            raise ValueError("the audio-only checkpoint's audio config differs from the model's")
        if tuple(ao_config.model.visual_size) != tuple(config.model.visual_size):
            raise ValueError("the audio-only checkpoint's visual_size differs from the model's")
        audio_only = audio_only.to(device)
    dataset = _splits(make_dataset, args, tuple(config.model.visual_size))
    results = evaluate_model(model, config, dataset, window_hop_s=args.window_hop,
                             max_clips=args.max_clips, normalize=not args.no_normalize,
                             audio_only_model=audio_only, batch_size=args.batch_size,
                             progress=not args.no_progress, localisation=localisation,
                             lateral_only=args.lateral_only,
                             side_gain=1.0 if args.side_gain is None else args.side_gain)
    results["settings"]["mirror_average"] = bool(getattr(model, "mirror_average", False))
    return results


def _run_streamed(args, make_dataset, localisation):
    from types import SimpleNamespace

    from streambin.train.evaluate_streaming import StreamedPredictor

    kw = {} if args.lookahead is None else {"lookahead_frames": args.lookahead}
    if args.bundle:
        kw["backend"] = args.backend
    else:
        kw.update(backend="torch", device=args.device or "auto")
    if getattr(args, "side_renderer", None) is not None:
        kw["side_renderer"] = args.side_renderer
    if getattr(args, "camera_hfov", None) is not None:
        kw["camera_hfov_deg"] = args.camera_hfov
    predictor = StreamedPredictor(args.bundle or args.checkpoint, sample_rate=args.sample_rate,
                                  block_frames=args.block_frames, mirror_average=args.mirror_average,
                                  side_gain=args.side_gain, **kw)
    bundle = predictor.spatializer.bundle
    size = tuple(bundle.visual_size)
    if predictor.spatializer.side_renderer:
        # Two nets at two input sizes: the engine resizes the stored frames for each, as it
        # resizes a camera's (for the visual net alone the same as loading them at its size).
        from streambin.train.data import stored_frame_size

        size = stored_frame_size(args.data)
    dataset = _splits(make_dataset, args, size)
    results = evaluate_model(None, SimpleNamespace(audio=bundle), dataset, max_clips=args.max_clips,
                             normalize=not args.no_normalize, progress=not args.no_progress,
                             predict=predictor, localisation=localisation,
                             protocol=predictor.description, lateral_only=args.lateral_only)
    results["settings"]["mirror_average"] = bool(predictor.spatializer.mirror_average)
    results["settings"]["side_gain"] = predictor.spatializer.side_gain
    results["settings"]["camera_hfov_deg"] = predictor.camera_hfov_deg
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    flush_denormals()
    results = run(args)
    sys.stdout.write(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
