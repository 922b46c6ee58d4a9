"""Mono2Binaural recipe (Gao & Grauman, "2.5D Visual Sound", CVPR 2019).

Generator: ResNet-18 + audio U-Net (``model.arch = "unet"``), one side mask. Loss: MSE between
the predicted side spectrogram ``mask * M`` and the true side spectrogram ``D`` (real/imag,
256 bins), both from the normalised crop (the dataset scales the mono to RMS 0.1).
``recipes.level_difference_weight > 0`` adds :func:`level_difference_loss` (ours, not the
paper's), which keeps the predicted left/right level differences from shrinking toward zero;
``recipes.newest_frames_weight > 0`` adds the side loss on the frames the engine plays
(:func:`newest_frames_side_loss`, ours), ``recipes.newest_frames_level_difference_weight > 0``
the level-difference loss on them (:func:`newest_frames_level_difference_loss`, ours).
"""

from __future__ import annotations

from streambin.train.losses import (level_difference_loss, newest_frames_level_difference_loss,
                                    newest_frames_side_loss, side_loss)
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import LocalisationRecipeMixin, LocalisedStep


class Mono2BinauralStep(LocalisedStep):
    """``forward(audio (B, 2, n) L/R, frames (B, H, W, 3) uint8) -> {"side", "total"}``."""

    level_difference_weight = 0.0
    level_difference_error = "absolute"   # of both level-difference terms (config.LEVEL_DIFFERENCE_ERRORS)
    # (side weight, level-difference weight, frames, lookahead) of the losses on the frames the
    # engine plays; a weight of 0 turns its term off
    newest_frames = (0.0, 0.0, 3, 1)

    def losses(self, mono, side, out):
        loss = side_loss(out["side"], mono, side)
        losses = {"side": loss, "total": loss}
        if self.level_difference_weight > 0:
            ld = level_difference_loss(out["side"], mono, side, error=self.level_difference_error)
            losses.update(level_difference=ld, total=losses["total"] + self.level_difference_weight * ld)
        side_weight, level_weight, frames, lookahead = self.newest_frames
        if side_weight > 0:
            newest = newest_frames_side_loss(out["side"], mono, side, frames, lookahead)
            losses.update(side_newest=newest, total=losses["total"] + side_weight * newest)
        if level_weight > 0:
            newest = newest_frames_level_difference_loss(out["side"], mono, side, frames, lookahead,
                                                         self.level_difference_error)
            losses.update(level_difference_newest=newest, total=losses["total"] + level_weight * newest)
        return losses


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
        if config.recipes.newest_frames_weight > 0:
            self.loss_names = self.loss_names + ("side_newest",)
        if config.recipes.newest_frames_level_difference_weight > 0:
            self.loss_names = self.loss_names + ("level_difference_newest",)

    def make_step_module(self, generator):
        step = super().make_step_module(generator)
        r = self.config.recipes
        step.level_difference_weight = float(r.level_difference_weight)
        step.level_difference_error = r.level_difference_error
        step.newest_frames = (float(r.newest_frames_weight), float(r.newest_frames_level_difference_weight),
                              int(r.newest_frames), int(r.newest_frames_lookahead))
        return step
