"""SAGM recipe (Li, Zhao & Yuan, "SAGM": a visually guided adversarial generator of the side
signal; no public code). Implemented from the paper's description; loss weights are ours.

Generator ``G`` (``model.arch = "unet"``): the Mono2Binaural mask network, predicting the side
spectrogram ``D^ = G(M, v) * M`` from the mono spectrogram ``M`` and the visual feature ``v``.
Visual net: ResNet-18 (default) or, with ``model.visual_net = "c3d"``, a C3D-like spatio-
temporal net over ``model.visual_frames`` consecutive frames (3D convolutions, time
downsampled by 4, see :mod:`streambin.nets.visual`). The exported ``visual`` keeps the
one-frame interface: the c3d trunk then sees the frame repeated over time (a still clip) - at
run time there is one camera frame per feature, so training on clips and running on stills
is a train/test mismatch the user accepts by choosing "c3d" (moving scenes are where it helps).

Visual-guided discriminator ``Dis(S, v)``: a convolutional encoder of a side spectrogram ``S``
(no BatchNorm), pooled, concatenated with ``v``, MLP -> logit. With ``s = sigmoid``:

    L_dis = BCE(s(Dis(D, v)), 1) + BCE(s(Dis(sg(D^), v)), 0)          (discriminator step)
    L_G   = l1 * mean|D^ - D| + l_adv * BCE(s(Dis_sg(D^, v)), 1)       (generator step)
    total = L_G + L_dis,    (l1, l_adv) = recipes.sagm_lambdas = (1, 0.01)

``sg`` stops gradients; ``Dis_sg`` is the discriminator evaluated with its parameters detached
(``torch.func.functional_call``). One backward of ``total`` therefore gives each part exactly
the gradient of its own objective: the discriminator's parameters only from ``L_dis``, the
generator's only from ``L_G``, and the shared visual net from both (through ``v`` in ``L_dis``
and through ``v`` and ``D^`` in ``L_G``) - the generator and discriminator updates of the
alternating scheme, applied simultaneously from the same parameters (one optimizer step per
batch; the trainer is unchanged). Spectrograms in the normalised domain, 256 bins.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from streambin.train.config import Config
from streambin.train.losses import complex_mul, mono_side_specs
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import UNET_BINS, SpecEncoder


class VisualDiscriminator(nn.Module):
    """``(side spec (B, 2, 256, T), visual feature (B, F))`` -> logit ``(B,)`` (1 = real)."""

    def __init__(self, ngf: int, feature_size: int, hidden: int = 128):
        super().__init__()
        self.encoder = SpecEncoder(2, ngf, batch_norm=False)
        self.feature_size = feature_size
        self.mlp = nn.Sequential(nn.Linear(self.encoder.out_channels + feature_size, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, spec: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if feature.dim() != 2 or feature.shape[1] != self.feature_size:
            raise ValueError(f"feature must be (B, {self.feature_size}), got {tuple(feature.shape)}")
        a = self.encoder(spec).mean(dim=(2, 3))
        return self.mlp(torch.cat([a, feature], dim=1)).squeeze(1)


class SAGMStep(nn.Module):
    """``forward(audio, frames, clip_frames=None) -> {"l1", "adv", "dis", "total"}``."""

    def __init__(self, generator: nn.Module, config: Config):
        super().__init__()
        if generator.arch != "unet":
            raise ValueError("the sagm recipe needs a U-Net generator (model.arch 'unet')")
        if generator.mirror_average:
            raise ValueError("the sagm recipe trains through generator.visual: train without "
                             "model.mirror_average and switch it on at export (--mirror-average)")
        self.generator = generator
        self.audio_cfg = config.audio
        self.lambdas = config.recipes.sagm_lambdas
        self.discriminator = VisualDiscriminator(config.model.ngf, int(generator.feature_shape[0]))

    def forward(self, audio: torch.Tensor, frames: torch.Tensor,
                clip_frames: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        mono, side = mono_side_specs(audio, self.audio_cfg)
        if clip_frames is not None:
            feature = self.generator.visual_clip(clip_frames)
        else:
            feature = self.generator.visual(frames)
        mask = self.generator.audio_outputs(mono, feature)["side"]
        fake = complex_mul(mask, mono[:, :, :UNET_BINS])
        real = side[:, :, :UNET_BINS]
        l1 = (fake - real).abs().mean()

        ones = torch.ones(audio.shape[0], device=audio.device)
        d_real = self.discriminator(real, feature)
        d_fake = self.discriminator(fake.detach(), feature)
        dis = (F.binary_cross_entropy_with_logits(d_real, ones)
               + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(ones)))
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        d_gen = functional_call(self.discriminator, frozen, (fake, feature))
        adv = F.binary_cross_entropy_with_logits(d_gen, ones)
        w_l1, w_adv = self.lambdas
        return {"l1": l1, "adv": adv, "dis": dis, "total": w_l1 * l1 + w_adv * adv + dis}


@register_recipe
class SAGMRecipe(Recipe):
    name = "sagm"
    arch = "unet"
    loss_names = ("l1", "adv", "dis")

    @classmethod
    def dataset_options(cls, config):
        m = config.model
        return {"clip_frames": m.visual_frames} if m.visual_net == "c3d" else {}

    def step_inputs(self, batch, device):
        if self.config.model.visual_net != "c3d":
            return {}
        if "clip_frames" not in batch:
            raise ValueError("sagm with model.visual_net 'c3d' needs batch['clip_frames'] (B, K, H, W, 3) "
                             "uint8: build the dataset with clip_frames=model.visual_frames")
        return {"clip_frames": batch["clip_frames"].to(device, non_blocking=True)}

    def make_step_module(self, generator):
        return SAGMStep(generator, self.config)
