"""APNet recipe (Zhou et al., "Sep-Stereo: Visually Guided Stereophonic Audio Generation by
Associating Source Separation", ECCV 2020), stereo branch only (no separation data).

Sep-Stereo trains APNet jointly with the Mono2Binaural U-Net backbone, whose decoder features
APNet consumes. Exactly what we do, as the reference code (SheldonTsui/SepStereo_ECCV2020) does:

- generator ``model.arch = "apnet"``: visual map ``(512, h, w)`` of the dilated ResNet-18 (the
  reference's default; ``model.visual_net = "auto"`` picks it for this recipe, "resnet18" gives
  the plain one) -> U-Net backbone (fed the 1x1-reduced, flattened map) -> APNet on the
  backbone's 4 decoder outputs -> left and right complex masks on ``L + R`` (in [-1, 1]; the
  generator reports them on ``M``, times 2). Export uses only the APNet masks
  (``mask_kind = "left_right"``).
- loss ``total = backbone + heads / 2`` with ``backbone = MSE(side_mask * M, D)`` (the U-Net
  side loss) and ``heads = MSE(L^ - M, D) + MSE(M - R^, D)`` - the side prediction of each head
  against the true side spectrogram (equivalently MSE on L and on R), real/imag over 256 bins
  in the normalised domain. The 1/2 is the reference's weighting: it averages its two head
  losses, each ``MSE(2 L^ - (L + R), L - R)``, and its backbone loss is ``MSE(mask (L + R),
  L - R)``; in our units (``M``, ``D``: halves of its sum and difference) that is
  ``4 backbone + 2 heads``. Every parameter gets a gradient.
"""

from __future__ import annotations

from streambin.train.losses import left_right_loss, side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import LocalisationRecipeMixin, LocalisedStep

# Weight of the two heads' loss against the backbone's, the reference's (module docstring).
HEADS_WEIGHT = 0.5


class APNetStep(LocalisedStep):
    """``forward(audio, frames) -> {"backbone", "heads", "total"}`` (see module docstring)."""

    def losses(self, mono, side, out):
        backbone = side_loss(out["side"], mono, side)
        heads = left_right_loss(out["left_right"], mono, side)
        return {"backbone": backbone, "heads": heads, "total": backbone + HEADS_WEIGHT * heads}


@register_recipe
class APNetRecipe(LocalisationRecipeMixin, Recipe):
    name = "apnet"
    arch = "apnet"
    loss_names = ("backbone", "heads")
    step_class = APNetStep
