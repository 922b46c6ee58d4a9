"""The generator of a training :class:`~streambin.train.config.Config` (streambin.nets builds it
from the config's model section)."""

from __future__ import annotations

from typing import Any, Dict

from streambin.nets import BinauralGenerator, generator_kwargs_from_model, load_imagenet_weights
from streambin.train.config import Config


def generator_kwargs(cfg: Config) -> Dict[str, Any]:
    """The :class:`BinauralGenerator` constructor arguments of ``cfg.model`` (no weights)."""
    return generator_kwargs_from_model(cfg.to_dict()["model"], cfg.recipe)


def build_generator(cfg: Config) -> BinauralGenerator:
    """Generator for ``cfg.model`` (loads ``cfg.model.imagenet_weights`` into the trunk if set)."""
    gen = BinauralGenerator(**generator_kwargs(cfg))
    if cfg.model.imagenet_weights:
        load_imagenet_weights(gen.trunk, cfg.model.imagenet_weights)
    return gen
