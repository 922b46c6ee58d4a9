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


class Mono2BinauralStep(nn.Module):
    """``forward(audio (B, 2, n) L/R, frames (B, H, W, 3) uint8) -> {"side", "total"}``."""

    def __init__(self, generator: nn.Module, audio_cfg: AudioConfig):
        super().__init__()
        self.generator = generator
        self.audio_cfg = audio_cfg

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        mono, side = mono_side_specs(audio, self.audio_cfg)
        out = self.generator.audio_outputs(mono, self.generator.visual(frames))
        loss = side_loss(out["side"], mono, side)
        return {"side": loss, "total": loss}


@register_recipe
class Mono2BinauralRecipe(Recipe):
    name = "mono2binaural"
    arch = "unet"
    loss_names = ("side",)

    def make_step_module(self, generator):
        return Mono2BinauralStep(generator, self.config.audio)
