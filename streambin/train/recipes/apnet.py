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

from streambin.train.losses import left_right_loss, side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import LocalisationRecipeMixin, LocalisedStep


class APNetStep(LocalisedStep):
    """``forward(audio, frames) -> {"backbone", "heads", "total"}`` (see module docstring)."""

    def losses(self, mono, side, out):
        backbone = side_loss(out["side"], mono, side)
        heads = left_right_loss(out["left_right"], mono, side)
        return {"backbone": backbone, "heads": heads, "total": backbone + heads}


@register_recipe
class APNetRecipe(LocalisationRecipeMixin, Recipe):
    name = "apnet"
    arch = "apnet"
    loss_names = ("backbone", "heads")
    step_class = APNetStep
