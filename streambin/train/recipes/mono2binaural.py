"""Mono2Binaural recipe (Gao & Grauman, "2.5D Visual Sound", CVPR 2019).

Generator: ResNet-18 + audio U-Net (``model.arch = "unet"``), one side mask. Loss: MSE between
the predicted side spectrogram ``mask * M`` and the true side spectrogram ``D`` (real/imag,
256 bins), both from the normalised crop (the dataset scales the mono to RMS 0.1).
``recipes.level_difference_weight > 0`` adds :func:`level_difference_loss` (ours, not the
paper's), which keeps the predicted left/right level differences from shrinking toward zero.
"""

from __future__ import annotations

from streambin.train.losses import level_difference_loss, side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import LocalisationRecipeMixin, LocalisedStep


class Mono2BinauralStep(LocalisedStep):
    """``forward(audio (B, 2, n) L/R, frames (B, H, W, 3) uint8) -> {"side", "total"}``."""

    level_difference_weight = 0.0

    def losses(self, mono, side, out):
        loss = side_loss(out["side"], mono, side)
        if self.level_difference_weight <= 0:
            return {"side": loss, "total": loss}
        ld = level_difference_loss(out["side"], mono, side)
        return {"side": loss, "level_difference": ld, "total": loss + self.level_difference_weight * ld}


@register_recipe
class Mono2BinauralRecipe(LocalisationRecipeMixin, Recipe):
    name = "mono2binaural"
    arch = "unet"
    loss_names = ("side",)
    step_class = Mono2BinauralStep

    def __init__(self, config):
        super().__init__(config)
        if config.recipes.level_difference_weight > 0:
            self.loss_names = self.loss_names + ("level_difference",)

    def make_step_module(self, generator):
        step = super().make_step_module(generator)
        step.level_difference_weight = float(self.config.recipes.level_difference_weight)
        return step
