"""Mono2Binaural recipe (Gao & Grauman, "2.5D Visual Sound", CVPR 2019).

Generator: ResNet-18 + audio U-Net (``model.arch = "unet"``), one side mask. Loss: MSE between
the predicted side spectrogram ``mask * M`` and the true side spectrogram ``D`` (real/imag,
256 bins), both from the normalised crop (the dataset scales the mono to RMS 0.1).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from streambin.train.config import AudioConfig
from streambin.train.losses import mono_side_specs, side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import (LocalisationHead, add_localisation, localisation_inputs,
                                            localisation_options)


class Mono2BinauralStep(nn.Module):
    """``forward(audio (B, 2, n) L/R, frames (B, H, W, 3) uint8) -> {"side", "total"}``."""

    def __init__(self, generator: nn.Module, audio_cfg: AudioConfig, localisation_weight: float = 0.0):
        super().__init__()
        self.generator = generator
        self.audio_cfg = audio_cfg
        self.localisation_weight = float(localisation_weight)
        self.localisation = LocalisationHead() if self.localisation_weight > 0 else None

    def forward(self, audio: torch.Tensor, frames: torch.Tensor, source_x=None) -> Dict[str, torch.Tensor]:
        mono, side = mono_side_specs(audio, self.audio_cfg)
        fmap = self.generator.trunk_map(frames)
        out = self.generator.audio_outputs(mono, self.generator.feature_from_map(fmap))
        loss = side_loss(out["side"], mono, side)
        losses = {"side": loss, "total": loss}
        return add_localisation(self, losses, fmap, source_x)


@register_recipe
class Mono2BinauralRecipe(Recipe):
    name = "mono2binaural"
    arch = "unet"
    loss_names = ("side",)

    def __init__(self, config):
        super().__init__(config)
        if config.recipes.localisation_weight > 0:
            self.loss_names = type(self).loss_names + ("localisation",)

    def make_step_module(self, generator):
        return Mono2BinauralStep(generator, self.config.audio, self.config.recipes.localisation_weight)

    dataset_options = classmethod(lambda cls, config: localisation_options(config))

    def step_inputs(self, batch, device):
        return localisation_inputs(self.config, batch, device)
