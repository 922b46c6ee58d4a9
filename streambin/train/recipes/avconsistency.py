"""Audio-visual consistency recipe (Lin & Wang, "Exploiting Audio-Visual Consistency with
Partial Supervision for Spatial Audio Generation", AAAI 2021), from the paper's description.

Generator (``model.arch = "unet"``): Mono2Binaural, side mask ``G``; predicted
``L^ = M + G*M``, ``R^ = M - G*M``. Extra, training-only parts:

- audio features ``a_i`` (``i`` = each of the ``16 x T/16`` positions of a spectrogram encoder
  on the mono spectrogram) and visual features ``u_j`` (``j`` = each of the ``h x w`` positions
  of the trunk map), both projected to 64 channels by 1x1 convs;
- co-attention: cosine similarity ``c_ij = <a_i, u_j> / (|a_i| |u_j|)``,
  ``A_ij = softmax_j(c_ij / tau)`` (``tau = recipes.avc_temperature``);
- left/right weighting with sigmoid ramps over the image column ``x_j`` in (0, 1):
  ``r_L(x) = sigmoid((1/2 - x) / width)``, ``r_R = 1 - r_L`` (``width = recipes.avc_ramp_width``);
  the visual prediction that position ``i`` is left-dominant is ``p_i = sum_j A_ij r_L(x_j)``;
- interaural level difference of a binaural spectrogram pair over the time-frequency patch of
  position ``i``: ``ILD_i = 10 log10(E_L,i / E_R,i)`` (patch energies), turned into a soft label
  ``t_i = sigmoid(ILD_i / s)`` (``s = recipes.avc_ild_scale_db``); each position weighs by its
  share ``w_i`` of the patch energy (silent patches say nothing about direction);
- consistency losses (weighted BCE, ``BCE(p, t) = -t log p - (1 - t) log(1 - p)``):
  ``L_gt = sum_i w_i BCE(p_i, t_i(L, R))`` on ground-truth spectrograms trains the attention;
  ``L_pred = sum_i w_i^ BCE(t_i(L^, R^), sg(p_i))`` on the predicted ones trains the generator
  to agree with what the picture says (``sg``: the attention is not moved by this term);
- ``total = l_side * L_side + l_cons * (L_gt + L_pred)``, ``(l_side, l_cons) =
  recipes.avc_lambdas = (1, 0.01)`` (ours).

Semi-supervised mode: ``recipes.avc_labelled_fraction = f``; a clip is labelled when
``crc32(clip name) / 2**32 < f`` (deterministic, the same in every process and run). The
side loss ``L_side = MSE(G*M, D)`` and ``L_gt`` use labelled clips only; unlabelled clips train
through ``L_pred`` alone (its input is the mono mix, always available). Its supervised control,
``recipes.avc_unlabelled_clips = false``, trains on the labelled clips only (same steps, same
losses), so the difference between the two runs is what the unlabelled clips add.
"""

from __future__ import annotations

import functools
import zlib
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from streambin.nets.resnet import ResNet18Trunk
from streambin.train.config import Config
from streambin.train.losses import complex_mul, mono_side_specs
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import UNET_BINS, SpecEncoder, masked_mean

EPS = 1e-8


def is_labelled(clip: str, fraction: float) -> bool:
    """Whether ``clip`` has binaural ground truth in a run with ``fraction`` labelled (crc32 hash)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return zlib.crc32(str(clip).encode("utf-8")) / 2 ** 32 < fraction


def weighted_bce(p: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-item ``sum_i w_i * BCE(p_i, t_i)`` for ``(B, P)`` tensors -> ``(B,)``."""
    p = p.clamp(1e-6, 1 - 1e-6)
    return (w * -(t * torch.log(p) + (1 - t) * torch.log(1 - p))).sum(dim=1)


class CoAttention(nn.Module):
    """Visual left-probability ``p (B, P_a)`` of each audio position, see the module docstring."""

    def __init__(self, ngf: int, visual_channels: int, ramp_width: float, temperature: float, dim: int = 64):
        super().__init__()
        self.encoder = SpecEncoder(2, ngf)
        self.audio_proj = nn.Conv2d(self.encoder.out_channels, dim, 1)
        self.visual_proj = nn.Conv2d(visual_channels, dim, 1)
        self.ramp_width, self.temperature = float(ramp_width), float(temperature)

    def forward(self, mono: torch.Tensor, visual_map: torch.Tensor) -> torch.Tensor:
        a = F.normalize(self.audio_proj(self.encoder(mono[:, :, :UNET_BINS])).flatten(2), dim=1)  # (B, C, Pa)
        u = F.normalize(self.visual_proj(visual_map).flatten(2), dim=1)                          # (B, C, Pv)
        attn = torch.softmax(torch.bmm(a.transpose(1, 2), u) / self.temperature, dim=2)        # (B, Pa, Pv)
        w = visual_map.shape[3]
        x = (torch.arange(w, device=visual_map.device, dtype=attn.dtype) + 0.5) / w
        r_left = torch.sigmoid((0.5 - x) / self.ramp_width).repeat(visual_map.shape[2])         # (Pv,) row-major
        return attn @ r_left

    def patch_grid(self, t_frames: int):
        """Audio positions ``(16, T/16)`` of a ``(.., 256, T)`` spectrogram."""
        return UNET_BINS // 16, t_frames // 16


def ild_targets(left: torch.Tensor, right: torch.Tensor, grid, scale_db: float):
    """``left``/``right`` ``(B, 2, 256, T)`` -> ``(t (B, P), w (B, P))``: soft left-label and
    energy weight per patch of the ``grid`` (``(F_a, T_a)``, row-major like the attention)."""
    el = F.adaptive_avg_pool2d(left.pow(2).sum(1, keepdim=True), grid).flatten(1)
    er = F.adaptive_avg_pool2d(right.pow(2).sum(1, keepdim=True), grid).flatten(1)
    ild_db = 10.0 * torch.log10((el + EPS) / (er + EPS))
    total = el + er
    return torch.sigmoid(ild_db / scale_db), total / total.sum(dim=1, keepdim=True).clamp_min(EPS)


class AVConsistencyStep(nn.Module):
    """``forward(audio, frames, labelled (B,) bool) -> {"side", "cons_gt", "cons_pred", "total"}``."""

    def __init__(self, generator: nn.Module, config: Config):
        super().__init__()
        if generator.arch != "unet":
            raise ValueError("the avconsistency recipe needs a U-Net generator (model.arch 'unet')")
        r = config.recipes
        self.generator = generator
        self.audio_cfg = config.audio
        self.lambdas, self.scale_db = r.avc_lambdas, r.avc_ild_scale_db
        self.coattention = CoAttention(config.model.ngf, ResNet18Trunk.out_channels, r.avc_ramp_width,
                                       r.avc_temperature)

    def forward(self, audio: torch.Tensor, frames: torch.Tensor,
                labelled: torch.Tensor) -> Dict[str, torch.Tensor]:
        if labelled.shape != (audio.shape[0],) or labelled.dtype != torch.bool:
            raise ValueError(f"labelled must be ({audio.shape[0]},) bool, got {tuple(labelled.shape)} {labelled.dtype}")
        mono, side = mono_side_specs(audio, self.audio_cfg)
        fmap = self.generator.trunk_map(frames)
        mask = self.generator.audio_outputs(mono, self.generator.feature_from_map(fmap))["side"]
        m = mono[:, :, :UNET_BINS]
        d_hat, d = complex_mul(mask, m), side[:, :, :UNET_BINS]
        l_side = masked_mean((d_hat - d).pow(2).mean(dim=(1, 2, 3)), labelled)

        p = self.coattention(mono, fmap)
        grid = self.coattention.patch_grid(m.shape[3])
        t_gt, w_gt = ild_targets(m + d, m - d, grid, self.scale_db)
        l_gt = masked_mean(weighted_bce(p, t_gt, w_gt), labelled)
        t_pred, w_pred = ild_targets(m + d_hat, m - d_hat, grid, self.scale_db)
        l_pred = weighted_bce(t_pred, p.detach(), w_pred.detach()).mean()
        w_side, w_cons = self.lambdas
        return {"side": l_side, "cons_gt": l_gt, "cons_pred": l_pred,
                "total": w_side * l_side + w_cons * (l_gt + l_pred)}


@register_recipe
class AVConsistencyRecipe(Recipe):
    name = "avconsistency"
    arch = "unet"
    loss_names = ("side", "cons_gt", "cons_pred")

    @classmethod
    def training_clip_filter(cls, config: Config):
        r = config.recipes
        if r.avc_unlabelled_clips or r.avc_labelled_fraction >= 1.0:
            return None
        return functools.partial(is_labelled, fraction=r.avc_labelled_fraction)

    def step_inputs(self, batch, device):
        clips: Sequence[str] = batch["clip"]
        f = self.config.recipes.avc_labelled_fraction
        labelled = torch.tensor([is_labelled(c, f) for c in clips], dtype=torch.bool, device=device)
        return {"labelled": labelled}

    def make_step_module(self, generator):
        return AVConsistencyStep(generator, self.config)
