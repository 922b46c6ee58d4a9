"""Sep-Stereo recipe (Zhou, Xu, Liu & Lin, "Sep-Stereo: Visually Guided Stereophonic Audio
Generation by Associating Source Separation", ECCV 2020): stereophonic learning (the APNet
recipe) trained jointly with separative learning on mono-only mixtures, through the SAME
backbone and APNet, as the reference code (SheldonTsui/SepStereo_ECCV2020) does.

Stereophonic learning (``model.arch = "apnet"``, the dilated ResNet-18 by default), as
:mod:`streambin.train.recipes.apnet`: ``backbone = MSE(side_mask * M, D)``,
``heads = MSE(L^ - M, D) + MSE(M - R^, D)``.

Separative learning, per batch:

- mono-only clips: the mono ``m_a = (L + R)/2`` of each item ``a`` and of its partner
  ``b = a - 1 (mod B)`` (the batch rolled by one); the mixture ``x = m_a + m_b`` is scaled
  (with both sources) so its RMS is ``audio.input_rms``, as every network input is;
- "rearrangement" (the reference's ``Rearrange``): each frame's visual map is max-pooled over
  its width, row by row, to ``f_a, f_b`` ``(512, h)``, placed on the left-most and right-most
  columns of an all-zero map of the trunk map's size ``(512, h, w)``: source a plays the left,
  b the right;
- separation: the backbone (mixture spectrogram, reduced rearranged map) gives a side mask and
  its decoder features, APNet (the stereo one) two masks. As the stereo masks multiply
  ``L + R``, these multiply the mixture spectrogram ``X`` (a sum): the left one estimates source
  a, the right one source b. ``sep_backbone = MSE(side_mask * X, S_a - S_b)``,
  ``sep_heads = MSE(mask_l * X, S_a) + MSE(mask_r * X, S_b)`` (real/imag, 256 bins);
- ``total = backbone + heads / 2 + lambda_sep * (sep_backbone / 4 + sep_heads / 2)``,
  ``lambda_sep = recipes.sepstereo_lambda_sep = 1`` (the reference's default ``sep_loss_weight``).
  The weights are the reference's loss in our units: it sums ``MSE(mask (L + R), L - R)`` and
  the mean of its heads' ``MSE(2 L^ - (L + R), L - R)``, i.e. ``4 backbone + 2 heads``, and the
  same two terms on the mixture (``sep_backbone + 2 sep_heads``, already in its units: X is a
  sum); everything is divided by 4.

The mono-only clips come from the training set itself (pairs of clips' mono mixes) rather
than from a separate solo-instrument set: on the synthetic scenes a clip is often a single
source, and for multi-source clips the "sources" are that clip's mono mix, which is still a
valid separation target for the mixture of two clips. Only the stereo generator is exported.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from streambin.signal_contract import input_scale_torch
from streambin.train.config import Config
from streambin.train.losses import complex_mul, left_right_loss, mono_side_specs, side_loss, spectrogram
from streambin.train.recipes.apnet import HEADS_WEIGHT
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import UNET_BINS

# The separation terms' weights inside lambda_sep (module docstring: the reference's, / 4).
SEP_BACKBONE_WEIGHT = 0.25
SEP_HEADS_WEIGHT = 0.5


def rearranged_map(rows_a: torch.Tensor, rows_b: torch.Tensor, w: int) -> torch.Tensor:
    """``(B, C, h)``, ``(B, C, h)`` -> ``(B, C, h, w)``: zeros with ``a`` on column 0, ``b`` on column w-1."""
    if rows_a.shape != rows_b.shape or rows_a.dim() != 3 or w < 2:
        raise ValueError(f"row features must both be (B, C, h) and w >= 2, got {tuple(rows_a.shape)}, "
                         f"{tuple(rows_b.shape)}, w={w}")
    middle = rows_a.new_zeros(*rows_a.shape, w - 2)
    return torch.cat([rows_a[..., None], middle, rows_b[..., None]], dim=3)


class SepStereoStep(nn.Module):
    """``forward(audio, frames) -> {"backbone", "heads", "sep_backbone", "sep_heads", "total"}``."""

    def __init__(self, generator: nn.Module, config: Config):
        super().__init__()
        if generator.arch != "apnet":
            raise ValueError("the sepstereo recipe needs an APNet generator (model.arch 'apnet')")
        _, h, w = generator.visual_map_shape
        if w < 2:
            raise ValueError(f"the rearranged map needs a visual map at least 2 wide, got {w} "
                             "(use a wider model.visual_size)")
        self.generator = generator
        self.audio_cfg = config.audio
        self.lambda_sep = config.recipes.sepstereo_lambda_sep

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        gen = self.generator
        mono, side = mono_side_specs(audio, self.audio_cfg)
        fmap = gen.trunk_map(frames)
        out = gen.audio_outputs(mono, gen.feature_from_map(fmap))
        backbone = side_loss(out["side"], mono, side)
        heads = left_right_loss(out["left_right"], mono, side)

        src_a = 0.5 * (audio[:, 0] + audio[:, 1])                                  # (B, n)
        src_b = torch.roll(src_a, 1, dims=0)
        mix = src_a + src_b
        scale = input_scale_torch(mix, self.audio_cfg.input_rms, self.audio_cfg.rms_floor)[:, None]
        x_full = spectrogram(mix * scale, self.audio_cfg)
        x = x_full[:, :, :UNET_BINS]
        s_a = spectrogram(src_a * scale, self.audio_cfg)[:, :, :UNET_BINS]
        s_b = spectrogram(src_b * scale, self.audio_cfg)[:, :, :UNET_BINS]
        rows = fmap.amax(dim=3)                                                    # (B, 512, h)
        arranged = rearranged_map(rows, torch.roll(rows, 1, dims=0), fmap.shape[3])
        sep_side, decoder = gen.unet.forward_features(x_full[:, :, :gen.unet_input_bins],
                                                      gen.reduce(arranged).flatten(1))
        masks = gen.apnet(decoder, arranged)                                       # on the sum X
        sep_backbone = F.mse_loss(complex_mul(sep_side, x), s_a - s_b)
        sep_heads = F.mse_loss(complex_mul(masks[:, 0], x), s_a) + F.mse_loss(complex_mul(masks[:, 1], x), s_b)
        sep = SEP_BACKBONE_WEIGHT * sep_backbone + SEP_HEADS_WEIGHT * sep_heads
        return {"backbone": backbone, "heads": heads, "sep_backbone": sep_backbone, "sep_heads": sep_heads,
                "total": backbone + HEADS_WEIGHT * heads + self.lambda_sep * sep}


@register_recipe
class SepStereoRecipe(Recipe):
    name = "sepstereo"
    arch = "apnet"
    loss_names = ("backbone", "heads", "sep_backbone", "sep_heads")

    def make_step_module(self, generator):
        return SepStereoStep(generator, self.config)
