"""Sep-Stereo recipe (Zhou, Xu, Liu & Lin, "Sep-Stereo: Visually Guided Stereophonic Audio
Generation by Associating Source Separation", ECCV 2020): stereophonic learning (the APNet
recipe) trained jointly with separative learning on mono-only mixtures.

Stereophonic learning (``model.arch = "apnet"``), as :mod:`streambin.train.recipes.apnet`:
``L_stereo = MSE(side_mask * M, D) + MSE(maskL*M - M, D) + MSE(M - maskR*M, D)``.

Separative learning, per batch:

- mono-only clips: the mono ``m_a = (L + R)/2`` of each item ``a`` and of its partner
  ``b = a - 1 (mod B)`` (the batch rolled by one); the mixture ``x = m_a + m_b`` is scaled
  (with both sources) so its RMS is ``audio.input_rms``, as every network input is;
- "rearrangement": the visual maps of both frames are max-pooled over positions to
  ``f_a, f_b`` (512,) and placed on the left-most and right-most columns (all rows) of an
  all-zero map of the trunk map's size ``(512, h, w)``: source a plays the left, b the right;
- separation: the shared U-Net backbone (mixture spectrogram, reduced rearranged map) and a
  second set of APNet parameters ``APNet_sep`` give two masks; the left mask applied to the
  mixture spectrogram ``X`` estimates source a, the right one source b:
  ``L_sep = MSE(mask_l * X, S_a) + MSE(mask_r * X, S_b)`` (real/imag, 256 bins);
- ``total = L_stereo + lambda_sep * L_sep``, ``lambda_sep = recipes.sepstereo_lambda_sep = 1``.

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

from streambin.train.config import Config
from streambin.train.losses import complex_mul, left_right_loss, mono_side_specs, side_loss, spectrogram
from streambin.train.models.apnet import APNet
from streambin.train.models.resnet import ResNet18Trunk
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import UNET_BINS


def rearranged_map(pooled_a: torch.Tensor, pooled_b: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, C)``, ``(B, C)`` -> ``(B, C, h, w)``: zeros with ``a`` on column 0, ``b`` on column w-1."""
    if pooled_a.shape != pooled_b.shape or pooled_a.dim() != 2 or w < 2:
        raise ValueError(f"pooled features must both be (B, C) and w >= 2, got {tuple(pooled_a.shape)}, "
                         f"{tuple(pooled_b.shape)}, w={w}")
    left = pooled_a[:, :, None, None].expand(-1, -1, h, 1)
    right = pooled_b[:, :, None, None].expand(-1, -1, h, 1)
    middle = pooled_a.new_zeros(pooled_a.shape[0], pooled_a.shape[1], h, w - 2)
    return torch.cat([left, middle, right], dim=3)


class SepStereoStep(nn.Module):
    """``forward(audio, frames) -> {"backbone", "heads", "sep", "total"}``."""

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
        self.sep_apnet = APNet(config.model.ngf, ResNet18Trunk.out_channels, h * w)

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        mono, side = mono_side_specs(audio, self.audio_cfg)
        fmap = self.generator.trunk_map(frames)
        out = self.generator.audio_outputs(mono, self.generator.feature_from_map(fmap))
        backbone = side_loss(out["side"], mono, side)
        heads = left_right_loss(out["left_right"], mono, side)

        src_a = 0.5 * (audio[:, 0] + audio[:, 1])                                  # (B, n)
        src_b = torch.roll(src_a, 1, dims=0)
        mix = src_a + src_b
        rms = mix.pow(2).mean(dim=1, keepdim=True).sqrt()
        scale = self.audio_cfg.input_rms / rms.clamp_min(self.audio_cfg.rms_floor)
        x = spectrogram(mix * scale, self.audio_cfg)[:, :, :UNET_BINS]
        s_a = spectrogram(src_a * scale, self.audio_cfg)[:, :, :UNET_BINS]
        s_b = spectrogram(src_b * scale, self.audio_cfg)[:, :, :UNET_BINS]
        pooled = fmap.amax(dim=(2, 3))
        arranged = rearranged_map(pooled, torch.roll(pooled, 1, dims=0), fmap.shape[2], fmap.shape[3])
        _, decoder = self.generator.unet.forward_features(x, self.generator.reduce(arranged).flatten(1))
        masks = self.sep_apnet(decoder, arranged)
        sep = F.mse_loss(complex_mul(masks[:, 0], x), s_a) + F.mse_loss(complex_mul(masks[:, 1], x), s_b)
        return {"backbone": backbone, "heads": heads, "sep": sep,
                "total": backbone + heads + self.lambda_sep * sep}


@register_recipe
class SepStereoRecipe(Recipe):
    name = "sepstereo"
    arch = "apnet"
    loss_names = ("backbone", "heads", "sep")

    def make_step_module(self, generator):
        return SepStereoStep(generator, self.config)
