"""Training checkpoints: save, load for resume, and load a generator for evaluation/export.

A checkpoint is a ``torch.save`` dict::

    {"format": "streambin-checkpoint", "format_version": 1,
     "config": Config.to_dict(), "recipe": str,
     "model": state_dict of the recipe's step module (generator weights under "generator."),
     "optimizer": ..., "scheduler": ..., "epoch": int, "step": int, "best_val": float | None,
     "versions": {"streambin", "torch", "python"}}

Storing the step module (not just the generator) keeps recipe-only heads for resume;
:func:`load_generator` extracts the ``generator.`` part.
"""

from __future__ import annotations

import os
import platform
import tempfile
from typing import Any, Dict, Optional, Tuple

import torch

from streambin._version import __version__
from streambin.train.config import Config, ConfigError, config_from_dict

FORMAT = "streambin-checkpoint"
FORMAT_VERSION = 1
_GEN_PREFIX = "generator."


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not a streambin checkpoint."""


def versions() -> Dict[str, str]:
    return {"streambin": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save_checkpoint(path: str, *, config: Config, model: torch.nn.Module, optimizer=None, scheduler=None,
                    epoch: int = 0, step: int = 0, best_val: Optional[float] = None) -> None:
    """Write a checkpoint atomically (temp file + rename) so a crash never leaves half a file.

    ``model`` is the recipe's step module (unwrap DDP first) or a bare generator.
    """
    state = model.state_dict()
    if not any(k.startswith(_GEN_PREFIX) for k in state):
        state = {_GEN_PREFIX + k: v for k, v in state.items()}  # bare generator
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "config": config.to_dict(), "recipe": config.recipe,
        "model": state,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch), "step": int(step), "best_val": best_val,
        "versions": versions(),
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_checkpoint(path: str, map_location="cpu") -> Dict[str, Any]:
    """The raw checkpoint dict, checked for the expected keys; raises :class:`CheckpointError`."""
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
    missing = [k for k in ("config", "model", "epoch", "step", "recipe") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks entries {missing}")
    return ckpt


def config_from_checkpoint(ckpt: Dict[str, Any], path: str = "checkpoint") -> Config:
    try:
        return config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored config is invalid: {exc}") from exc


def load_generator(path: str, map_location="cpu") -> Tuple[torch.nn.Module, Config]:
    """``(generator in eval mode, Config)`` from a checkpoint written by :func:`save_checkpoint`."""
    from streambin.train.models import BinauralGenerator  # local: keep this module light
    from streambin.train.models.generator import generator_kwargs

    ckpt = read_checkpoint(path, map_location=map_location)
    cfg = config_from_checkpoint(ckpt, path)
    gen = BinauralGenerator(**generator_kwargs(cfg))
    state = {k[len(_GEN_PREFIX):]: v for k, v in ckpt["model"].items() if k.startswith(_GEN_PREFIX)}
    try:
        gen.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored config: {exc}") from exc
    gen.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    return gen.eval(), cfg
