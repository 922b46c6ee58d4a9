"""APNet, the Associative Pyramid Network of Sep-Stereo (Zhou et al., ECCV 2020).

Associative-Conv (the reference's ``AVFusionBlock``): every spatial position of the visual map
acts as a 1x1 kernel over an audio feature map. For a visual map ``(B, C_v, h, w)`` (``P = h*w``
positions) and an audio map ``(B, C_a, H, W)``, a 1x1 conv maps the visual channels to ``C_a``
and a ReLU makes the kernels non-negative; the result, read as ``P`` kernels of length ``C_a``,
is applied to the audio map by a batched matmul, giving ``P`` channels at the audio resolution:

    K[b, p, c]       = relu(W v[b, :, p] + bias)[c]                   (B, P, C_a)
    out[b, p, y, x]  = sum_c K[b, p, c] * a[b, c, y, x]               (B, P, H, W)

(no 1/sqrt(C_a) scale: BN follows in the pyramid, and the heads' inputs are what the reference
feeds them.)

Pyramid (scales are the U-Net decoder outputs up1..up4, i.e. 1/16 .. 1/2 of (256, T));
concatenations put the new scale's fusion first, as the reference does:

    x = ConvT(P -> P)(assoc(up1))                  (P, 32, T/8)     each ConvT is k4 s2 p1 + BN + ReLU
    x = ConvT(2P -> P)(assoc(up2) ++ x)            (P, 64, T/4)
    x = ConvT(2P -> P)(assoc(up3) ++ x)            (P, 128, T/2)
    x = assoc(up4) ++ x                            (2P, 128, T/2)
    left, right = head_l(x), head_r(x)             ConvT(2P -> 2) + Sigmoid, *2-1: (2, 256, T) each

Mask convention (the reference's): ``left`` and ``right`` are complex masks in [-1, 1] that
multiply the spectrogram of the SUM ``L + R`` (``L^ = left * (L + R)``), so either ear can be up
to twice the mono mix ``M = (L + R) / 2``: a source panned hard to one side is representable
(left = 1, right = 0). :class:`~streambin.nets.generator.BinauralGenerator` turns them
into masks on ``M`` (times :data:`MASKS_ON_MONO_PER_MASK_ON_SUM` = 2, range [-2, 2]), the
convention of the runtime and the losses.

With the paper's 224x448 frames P = 7*14 = 98 (the reference's "ConvT 98->98"). Layers keep
PyTorch's default initialisation, as the reference (which applies its N(0, 0.02) init to the
U-Net only). Every parameter is used in forward (DDP needs no find_unused_parameters); the
reference's second, unused mapping conv (``channel_mapping_conv_b``) is left out.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from streambin.nets.unet import mask_head, up_block

# A mask on L + R is a mask on M = (L + R) / 2 divided by 2: mask_on_M = 2 * mask_on_sum.
MASKS_ON_MONO_PER_MASK_ON_SUM = 2.0


class AssociativeConv(nn.Module):
    """Visual positions as 1x1 kernels: ``(B, C_a, H, W)``, ``(B, C_v, h, w)`` -> ``(B, h*w, H, W)``."""

    def __init__(self, visual_channels: int, audio_channels: int):
        super().__init__()
        self.audio_channels = audio_channels
        self.to_kernels = nn.Conv2d(visual_channels, audio_channels, 1)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 4 or audio.shape[1] != self.audio_channels:
            raise ValueError(f"audio map must be (B, {self.audio_channels}, H, W), got {tuple(audio.shape)}")
        if visual.dim() != 4 or visual.shape[1] != self.to_kernels.in_channels:
            raise ValueError(f"visual map must be (B, {self.to_kernels.in_channels}, h, w), got {tuple(visual.shape)}")
        kernels = torch.relu(self.to_kernels(visual)).flatten(2).transpose(1, 2)   # (B, P, C_a)
        out = torch.bmm(kernels, audio.flatten(2))                                 # (B, P, H*W)
        return out.reshape(out.shape[0], out.shape[1], audio.shape[2], audio.shape[3])


class APNet(nn.Module):
    """Two complex masks (left, right) on ``L + R`` from the U-Net decoder features and the visual map.

    ``forward(decoder, visual)``: ``decoder`` = [up1, up2, up3, up4] of :class:`AudioUNet`
    (channels 8ngf, 4ngf, 2ngf, ngf), ``visual`` ``(B, C_v, h, w)`` with ``h*w == positions``;
    returns ``(B, 2, 2, 256, T)`` masks in [-1, 1] (left, right; real, imag) that multiply the
    spectrogram of ``L + R`` (module docstring).
    """

    def __init__(self, ngf: int, visual_channels: int, positions: int):
        super().__init__()
        if min(ngf, visual_channels, positions) < 1:
            raise ValueError(f"ngf, visual_channels, positions must be >= 1, got "
                             f"{ngf}, {visual_channels}, {positions}")
        p = positions
        self.positions = positions
        self.assoc = nn.ModuleList([AssociativeConv(visual_channels, c)
                                    for c in (8 * ngf, 4 * ngf, 2 * ngf, ngf)])
        self.up1 = up_block(p, p)
        self.up2 = up_block(2 * p, p)
        self.up3 = up_block(2 * p, p)
        self.head_left = mask_head(2 * p)
        self.head_right = mask_head(2 * p)

    def forward(self, decoder: List[torch.Tensor], visual: torch.Tensor) -> torch.Tensor:
        if visual.dim() != 4 or visual.shape[2] * visual.shape[3] != self.positions:
            raise ValueError(f"visual map must be (B, C_v, h, w) with h*w = {self.positions}, "
                             f"got {tuple(visual.shape)}")
        x = self.up1(self.assoc[0](decoder[0], visual))
        x = self.up2(torch.cat([self.assoc[1](decoder[1], visual), x], dim=1))
        x = self.up3(torch.cat([self.assoc[2](decoder[2], visual), x], dim=1))
        x = torch.cat([self.assoc[3](decoder[3], visual), x], dim=1)
        left = self.head_left(x) * 2.0 - 1.0
        right = self.head_right(x) * 2.0 - 1.0
        return torch.stack([left, right], dim=1)
