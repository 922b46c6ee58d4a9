"""The checkpoint format, and reading a checkpoint's generator for inference.

A checkpoint (written by ``streambin.train.checkpoint.save_checkpoint``; a bundle's
``weights.pt`` is one reduced to the generator) is a ``torch.save`` dict::

    {"format": "streambin-checkpoint", "format_version": 1,
     "config": Config.to_dict(), "recipe": str,
     "model": state_dict of the recipe's step module (generator weights under "generator."),
     "optimizer": ..., "scheduler": ..., "epoch": int, "step": int, "best_val": float | None,
     "versions": {"streambin", "torch", "python"}}

This module owns that format (:data:`FORMAT`, :data:`FORMAT_VERSION`,
:data:`GENERATOR_PREFIX`) and needs only torch and :mod:`streambin.nets`, so the runtime's torch
backend loads a model with :func:`load_generator_weights` where the training package (and its
OmegaConf config) is not installed. Training reads and writes through the same constants.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Tuple

import torch

from streambin.nets.generator import BinauralGenerator, generator_kwargs_from_model

FORMAT = "streambin-checkpoint"
FORMAT_VERSION = 1
# The generator's weights sit under this prefix of the stored state_dict (the step module's
# ``generator`` attribute; a bare generator is saved with it added).
GENERATOR_PREFIX = "generator."
REQUIRED_ENTRIES = ("config", "model", "epoch", "step", "recipe")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not a streambin checkpoint."""


def read_checkpoint(path: str, map_location="cpu") -> Dict[str, Any]:
    """The raw checkpoint dict, checked for the expected entries; raises :class:`CheckpointError`."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only=False: the file holds plain dicts/lists/numbers plus tensors, written by
        # save_checkpoint; optimizer states need no custom classes either, but older torch
        # versions refuse some of their entries under weights_only.
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - rethrown with the file name
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a streambin checkpoint (no format={FORMAT!r} entry)")
    missing = [k for k in REQUIRED_ENTRIES if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks entries {missing}")
    return ckpt


def generator_state(ckpt: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The generator's state_dict of checkpoint dict ``ckpt`` (its keys without the prefix)."""
    n = len(GENERATOR_PREFIX)
    return {k[n:]: v for k, v in ckpt["model"].items() if k.startswith(GENERATOR_PREFIX)}


def load_weights_into(gen: BinauralGenerator, ckpt: Mapping[str, Any], path: str,
                      map_location="cpu") -> BinauralGenerator:
    """Load ``ckpt``'s generator weights into ``gen`` (strict), move it to ``map_location``'s
    device and return it in eval mode; :class:`CheckpointError` when they do not fit."""
    try:
        gen.load_state_dict(generator_state(ckpt), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored config: {exc}") from exc
    gen.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    return gen.eval()


def load_generator_weights(path: str, map_location="cpu") -> Tuple[BinauralGenerator, Dict[str, Any]]:
    """``(generator in eval mode, stored config dict)`` from a checkpoint or a bundle's weights.pt.

    The generator is built from the stored ``config["model"]`` and the checkpoint's recipe
    (:func:`streambin.nets.generator.generator_kwargs_from_model`); the config dict is returned
    as stored (``Config.to_dict()`` of the streambin that wrote it). Raises
    :class:`CheckpointError` for a missing, corrupt or foreign file, a stored config that does
    not describe a generator, or weights that do not match it.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    config = ckpt["config"]
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise CheckpointError(f"{path}: stored config has no model section")
    try:
        gen = BinauralGenerator(**generator_kwargs_from_model(config["model"], ckpt["recipe"]))
    except (ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: stored config is invalid: {exc}") from exc
    return load_weights_into(gen, ckpt, path, map_location), dict(config)
