"""Mono2Binaural recipe (Gao & Grauman, "2.5D Visual Sound", CVPR 2019).

Generator: ResNet-18 + audio U-Net (``model.arch = "unet"``), one side mask. Loss: MSE between
the predicted side spectrogram ``mask * M`` and the true side spectrogram ``D`` (real/imag,
256 bins), both from the normalised crop (the dataset scales the mono to RMS 0.1).
"""

from __future__ import annotations

from streambin.train.losses import side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import LocalisationRecipeMixin, LocalisedStep


class Mono2BinauralStep(LocalisedStep):
    """``forward(audio (B, 2, n) L/R, frames (B, H, W, 3) uint8) -> {"side", "total"}``."""

    def losses(self, mono, side, out):
        loss = side_loss(out["side"], mono, side)
        return {"side": loss, "total": loss}


@register_recipe
class Mono2BinauralRecipe(LocalisationRecipeMixin, Recipe):
    name = "mono2binaural"
    arch = "unet"
    loss_names = ("side",)
    step_class = Mono2BinauralStep
