"""The parity check every export runs before it writes anything: a candidate runtime's graphs
against a reference's on the same inputs.

``export.to_onnx`` compares ONNX Runtime with PyTorch, ``export.to_trt`` TensorRT with ONNX
Runtime; both through :func:`compare_graphs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Tuple, Type

import numpy as np

from export.probe_inputs import random_inputs, realistic_inputs

log = logging.getLogger("streambin")

GRAPHS = ("visual", "audio")


@dataclass(frozen=True)
class Graphs:
    """A model's two graphs as one runtime runs them, for :func:`compare_graphs`.

    ``name``: the runtime, in messages ("PyTorch", "ONNX Runtime", "TensorRT").
    ``visual``: frames (B, H_v, W_v, 3) uint8 -> feature (B, *feature_shape) float32.
    ``audio``: spec (B, 2, n_bins, T) float32, feature (B, *feature_shape) float32
    -> mask (B, n_masks, 2, n_bins, K) float32 (K = the bundle's output_frames, at most T).
    ``label``: how one graph is named in messages; ``{graph}`` stands for visual/audio
    (e.g. "{graph}.onnx", "{graph} engine").
    """

    name: str
    visual: Callable[[np.ndarray], np.ndarray]
    audio: Callable[[np.ndarray, np.ndarray], np.ndarray]
    label: str = "{graph}"


def compare_graphs(reference: Graphs, candidate: Graphs, fields: Dict, batches: Iterable[int],
                   tol: float, *, fp16: bool = False, audio_scale: float = 1.0,
                   data: Optional[str] = None,
                   error: Type[Exception] = RuntimeError) -> Dict[str, float]:
    """Run ``reference`` and ``candidate`` on the same inputs; returns the max abs errors
    ``{"visual": ..., "audio": ...}``.

    Inputs, at every batch size in ``batches``: :func:`~export.probe_inputs.random_inputs` and
    :func:`~export.probe_inputs.realistic_inputs` (from ``data``, a directory with a clip and a
    frame, else synthetic), seeded by the batch size. ``fields``: the bundle fields those need.
    The candidate's audio graph gets the reference's feature, so its error is its own.

    Raises ``error`` when the candidate's outputs are not float32 or not the reference's shape,
    when an error is not finite, or over the tolerance: ``tol * max(1, max|reference feature|)``
    on the feature (unbounded ReLU outputs), ``tol * audio_scale`` on the mask (its range).
    ``fp16`` only says which precision the message names.
    """
    errs = {g: 0.0 for g in GRAPHS}
    worst: Dict[str, Tuple[int, str]] = {}  # graph -> (batch, input kind) of its largest error
    feature_scale = 1.0
    for batch in batches:
        frames_r, spec_r = random_inputs(fields, batch, seed=batch)
        frames_s, spec_s, desc = realistic_inputs(fields, batch, data=data, seed=batch)
        for kind, frames, spec in (("random", frames_r, spec_r), ("realistic", frames_s, spec_s)):
            feat_ref = reference.visual(frames)
            mask_ref = reference.audio(spec, feat_ref)
            feat = candidate.visual(frames)
            mask = candidate.audio(spec, feat_ref)
            if feat.dtype != np.float32 or mask.dtype != np.float32:
                raise error(f"{candidate.name} outputs must be float32, got feature {feat.dtype}, "
                            f"mask {mask.dtype}")
            if feat.shape != feat_ref.shape or mask.shape != mask_ref.shape:
                raise error(f"{candidate.name} output shapes {feat.shape}, {mask.shape} differ "
                            f"from {reference.name} {feat_ref.shape}, {mask_ref.shape} at batch "
                            f"{batch}")
            step = {"visual": float(np.max(np.abs(feat - feat_ref))),
                    "audio": float(np.max(np.abs(mask - mask_ref)))}
            if not all(np.isfinite(e) for e in step.values()):
                raise error(f"non-finite {candidate.name} output on {kind} inputs at batch "
                            f"{batch} (fp16 overflow?)")
            feature_max = float(np.max(np.abs(feat_ref)))
            log.info("%s vs %s, batch %d %-9s (%s): max|visual err| %.3g (max|feature| %.3g), "
                     "max|mask err| %.3g", candidate.name, reference.name, batch, kind,
                     "random" if kind == "random" else desc, step["visual"], feature_max,
                     step["audio"])
            for g in GRAPHS:
                if step[g] > errs[g]:
                    errs[g], worst[g] = step[g], (batch, kind)
            feature_scale = max(feature_scale, feature_max)
    limits = {"visual": tol * feature_scale, "audio": tol * audio_scale}
    for g in GRAPHS:
        if errs[g] > limits[g]:
            batch, kind = worst[g]
            raise error(f"{candidate.label.format(graph=g)} differs from {reference.name} by "
                        f"{errs[g]:.3g} (max abs, batch {batch}, {kind} inputs), over the "
                        f"tolerance {limits[g]:.3g} ({'fp16' if fp16 else 'fp32'}); nothing was "
                        "written")
    return errs
