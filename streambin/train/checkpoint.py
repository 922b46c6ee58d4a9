"""Training checkpoints: save, load for resume, and load a generator for evaluation/export.

The format (a ``torch.save`` dict) and its reader belong to :mod:`streambin.nets.weights`, which
the runtime's torch backend uses without this package. Storing the step module (not just the
generator) keeps recipe-only heads for resume; :func:`load_generator` extracts the
``generator.`` part and returns the stored config as a validated :class:`Config`.
"""

from __future__ import annotations

import os
import platform
import tempfile
from typing import Any, Dict, Optional, Tuple

import torch

from streambin._version import __version__
from streambin.nets import BinauralGenerator
from streambin.nets.weights import (FORMAT, FORMAT_VERSION, GENERATOR_PREFIX, CheckpointError,
                                    load_weights_into, read_checkpoint)
from streambin.train.build import generator_kwargs
from streambin.train.config import Config, ConfigError, config_from_dict

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "GENERATOR_PREFIX", "config_from_checkpoint",
           "load_generator", "read_checkpoint", "save_checkpoint", "versions"]


def versions() -> Dict[str, str]:
    return {"streambin": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save_checkpoint(path: str, *, config: Config, model: torch.nn.Module, optimizer=None, scheduler=None,
                    epoch: int = 0, step: int = 0, best_val: Optional[float] = None,
                    train_seconds: float = 0.0) -> None:
    """Write a checkpoint atomically (temp file + rename) so a crash never leaves half a file.

    ``model`` is the recipe's step module (unwrap DDP first) or a bare generator.
    ``train_seconds``: wall time spent training up to ``step`` (a resumed run continues its clock).
    """
    state = model.state_dict()
    if not any(k.startswith(GENERATOR_PREFIX) for k in state):
        state = {GENERATOR_PREFIX + k: v for k, v in state.items()}  # bare generator
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "config": config.to_dict(), "recipe": config.recipe,
        "model": state,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch), "step": int(step), "best_val": best_val, "train_seconds": float(train_seconds),
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


def config_from_checkpoint(ckpt: Dict[str, Any], path: str = "checkpoint") -> Config:
    try:
        return config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored config is invalid: {exc}") from exc


def load_generator(path: str, map_location="cpu",
                   mirror_average: Optional[bool] = None) -> Tuple[torch.nn.Module, Config]:
    """``(generator in eval mode, Config)`` from a checkpoint written by :func:`save_checkpoint`.

    ``mirror_average``: build the generator with ``model.mirror_average`` on (True) or off
    (False) whatever the checkpoint's config says (the option adds no weights); None: as stored.
    The returned Config says which."""
    ckpt = read_checkpoint(path, map_location=map_location)
    cfg = config_from_checkpoint(ckpt, path)
    if mirror_average is not None:
        cfg.model.mirror_average = bool(mirror_average)
    return load_weights_into(BinauralGenerator(**generator_kwargs(cfg)), ckpt, path, map_location), cfg
