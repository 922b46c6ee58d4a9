"""Recipe base class and registry.

A recipe ties together a generator architecture, its losses and its training step. The trainer
only talks to this interface, so a new recipe (flip classification, SAGM, ...) is a
subclass registered with :func:`register_recipe`::

    @register_recipe
    class MyRecipe(Recipe):
        name = "my_recipe"
        arch = "unet"
        loss_names = ("side", "extra")

        def make_step_module(self, generator):
            return MyStep(generator, self.config.audio)   # forward(audio, frames) -> dict

The step module is an ``nn.Module`` whose ``forward(audio (B, 2, n) float32, frames (B, H, W, 3)
uint8, **inputs)`` returns a dict of scalar losses including ``"total"``; ``inputs`` are what
:meth:`Recipe.step_inputs` takes from the batch (nothing by default). It owns the generator (and any
extra heads, which are trained but not exported), so the trainer can wrap it in
DistributedDataParallel and every parameter update goes through one module.

``default_visual_net`` (what ``model.visual_net = "auto"`` builds for the recipe) is not a
hook: :func:`register_recipe` sets it from :data:`streambin.nets.generator.RECIPE_VISUAL_NETS`,
the table the runtime resolves "auto" with too; a recipe with another trunk adds itself there.

Optional hooks: ``model_requires`` (model config values the recipe needs; the CLI sets them
with ``--recipe``, the constructor checks them),
:meth:`Recipe.dataset_options` (opt-in item fields of streambin.train.data the step needs, e.g.
``with_rir``), :meth:`Recipe.training_clip_filter` (train on some clips only) and
:meth:`Recipe.step_inputs`.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from streambin.nets import BinauralGenerator, default_visual_net
from streambin.nets.generator import DEFAULT_VISUAL_NET
from streambin.train.build import build_generator
from streambin.train.config import Config

_REGISTRY: Dict[str, Type["Recipe"]] = {}


class Recipe:
    """Builds the generator + step module for a config; runs one training/validation step."""

    name: ClassVar[str] = ""
    arch: ClassVar[str] = "unet"
    loss_names: ClassVar[Tuple[str, ...]] = ()
    model_requires: ClassVar[Dict[str, Any]] = {}
    # The visual trunk a config's model.visual_net "auto" means for this recipe (its paper's):
    # set by register_recipe from streambin.nets.generator.RECIPE_VISUAL_NETS.
    default_visual_net: ClassVar[str] = DEFAULT_VISUAL_NET

    def __init__(self, config: Config):
        if config.recipe != self.name:
            raise ValueError(f"config.recipe is {config.recipe!r} but this recipe is {self.name!r}")
        if config.model.arch != self.arch:
            raise ValueError(f"recipe {self.name!r} needs model.arch {self.arch!r}, "
                             f"got {config.model.arch!r}")
        for key, value in self.model_requires.items():
            if getattr(config.model, key) != value:
                raise ValueError(f"recipe {self.name!r} needs model.{key} = {value!r}, "
                                 f"got {getattr(config.model, key)!r}")
        self.config = config
        self.generator: BinauralGenerator = None
        self.step_module: nn.Module = None
        self.runner: nn.Module = None

    # -------------------------------------------------------------- to override
    def make_step_module(self, generator: BinauralGenerator) -> nn.Module:
        """Return the module computing the loss dict from ``(audio, frames)``."""
        raise NotImplementedError

    @classmethod
    def dataset_options(cls, config: Config) -> Dict[str, Any]:
        """Extra keyword arguments for the training/validation datasets (default none)."""
        return {}

    @classmethod
    def training_clip_filter(cls, config: Config) -> Optional[Callable[[str], bool]]:
        """Which clips of the training split the recipe trains on (``None``: all; validation
        always uses every clip)."""
        return None

    def step_inputs(self, batch: dict, device: torch.device) -> Dict[str, Any]:
        """Keyword inputs of the step module beyond ``(audio, frames)``, from the batch."""
        return {}

    # -------------------------------------------------------------- shared
    def build(self, generator: BinauralGenerator = None) -> BinauralGenerator:
        """Create (or adopt) the generator and the step module; returns the generator."""
        self.generator = generator if generator is not None else build_generator(self.config)
        if self.config.train.freeze_trunk:
            self.generator.freeze_trunk(True)
        self.step_module = self.make_step_module(self.generator)
        self.runner = self.step_module
        return self.generator

    def wrap(self, fn: Callable[[nn.Module], nn.Module]) -> None:
        """Replace the runner by ``fn(step_module)`` (e.g. a DistributedDataParallel wrapper)."""
        self.runner = fn(self.step_module)

    def parameter_groups(self) -> List[dict]:
        """Adam groups: visual (lr_visual) and audio (lr_audio, includes recipe-only heads)."""
        t = self.config.train
        groups = self.generator.param_groups()
        visual_ids = {id(p) for p in self.generator.trunk.parameters()}
        visual_ids |= {id(p) for p in self.generator.reduce.parameters()}
        audio = [p for p in self.step_module.parameters() if id(p) not in visual_ids and p.requires_grad]
        return [{"params": groups["visual"], "lr": t.lr_visual, "name": "visual"},
                {"params": audio, "lr": t.lr_audio, "name": "audio"}]

    def training_step(self, batch: dict) -> Dict[str, torch.Tensor]:
        """Losses for a collated batch ``{"audio": (B, 2, n), "frame": (B, H, W, 3) uint8, ...}``."""
        if self.runner is None:
            raise RuntimeError("call build() before training_step()")
        device = next(self.step_module.parameters()).device
        audio = batch["audio"].to(device, non_blocking=True)
        frames = batch["frame"].to(device, non_blocking=True)
        if audio.dim() != 3 or audio.shape[1] != 2 or audio.dtype != torch.float32:
            raise ValueError(f"batch['audio'] must be (B, 2, n) float32, got {tuple(audio.shape)} {audio.dtype}")
        losses = self.runner(audio, frames, **self.step_inputs(batch, device))
        if "total" not in losses:
            raise RuntimeError(f"recipe {self.name!r} returned no 'total' loss")
        return losses


def register_recipe(cls: Type[Recipe]) -> Type[Recipe]:
    """Class decorator adding ``cls`` to the registry under ``cls.name`` (and setting its
    ``default_visual_net`` from streambin.nets, the one owner of that table)."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"recipe name {cls.name!r} is empty or already registered")
    if "default_visual_net" in vars(cls):
        raise ValueError(f"recipe {cls.name!r} sets default_visual_net itself; add it to "
                         "streambin.nets.generator.RECIPE_VISUAL_NETS instead (the runtime reads it there)")
    cls.default_visual_net = default_visual_net(cls.name)
    _REGISTRY[cls.name] = cls
    return cls


def get_recipe(name: str) -> Type[Recipe]:
    """The recipe class registered as ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown recipe {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def available_recipes() -> Dict[str, Type[Recipe]]:
    return dict(_REGISTRY)
