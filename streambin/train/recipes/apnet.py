"""APNet recipe (Zhou et al., "Sep-Stereo: Visually Guided Stereophonic Audio Generation by
Associating Source Separation", ECCV 2020), stereo branch only (no separation data).

Sep-Stereo trains APNet jointly with the Mono2Binaural U-Net backbone, whose decoder features
APNet consumes. Exactly what we do:

- generator ``model.arch = "apnet"``: ResNet-18 map ``(512, h, w)`` -> U-Net backbone (fed the
  1x1-reduced, flattened map) -> APNet on the backbone's 4 decoder outputs -> left and right
  complex masks. Export uses only the APNet masks (``mask_kind = "left_right"``).
- loss ``total = backbone + heads`` with ``backbone = MSE(side_mask * M, D)`` (the U-Net side
  loss) and ``heads = MSE(maskL*M - M, D) + MSE(M - maskR*M, D)`` - the side prediction of each
  head against the true side spectrogram (equivalently MSE on L and on R), unweighted sum,
  real/imag over 256 bins in the normalised domain. Every parameter gets a gradient.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from streambin.train.config import AudioConfig
from streambin.train.losses import left_right_loss, mono_side_specs, side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import (LocalisationHead, add_localisation, localisation_inputs,
                                            localisation_options)


class APNetStep(nn.Module):
    """``forward(audio, frames) -> {"backbone", "heads", "total"}`` (see module docstring)."""

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
        backbone = side_loss(out["side"], mono, side)
        heads = left_right_loss(out["left_right"], mono, side)
        losses = {"backbone": backbone, "heads": heads, "total": backbone + heads}
        return add_localisation(self, losses, fmap, source_x)


@register_recipe
class APNetRecipe(Recipe):
    name = "apnet"
    arch = "apnet"
    loss_names = ("backbone", "heads")

    def __init__(self, config):
        super().__init__(config)
        if config.recipes.localisation_weight > 0:
            self.loss_names = type(self).loss_names + ("localisation",)

    def make_step_module(self, generator):
        return APNetStep(generator, self.config.audio, self.config.recipes.localisation_weight)

    dataset_options = classmethod(lambda cls, config: localisation_options(config))

    def step_inputs(self, batch, device):
        return localisation_inputs(self.config, batch, device)
