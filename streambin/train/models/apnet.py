"""APNet, the Associative Pyramid Network of Sep-Stereo (Zhou et al., ECCV 2020).

Associative-Conv: every spatial position of the visual map acts as a 1x1 kernel over an audio
feature map. For a visual map ``(B, C_v, h, w)`` (``P = h*w`` positions) and an audio map
``(B, C_a, H, W)``, a 1x1 conv maps the visual channels to ``C_a``; the result, read as ``P``
kernels of length ``C_a``, is applied to the audio map by a batched matmul, giving ``P``
channels at the audio resolution. (We divide by sqrt(C_a), a scaled dot product, so that the
fused maps start at unit scale for any ``ngf``; BN follows everywhere except the heads.)

Pyramid (scales are the U-Net decoder outputs up1..up4, i.e. 1/16 .. 1/2 of (256, T)):

    f1 = assoc(up1)                       (P, 16, T/16)
    x  = ConvT(P -> P)(f1)                 (P, 32, T/8)     each ConvT is k4 s2 p1 + BN + ReLU
    x  = ConvT(2P -> P)(x ++ assoc(up2))   (P, 64, T/4)
    x  = ConvT(2P -> P)(x ++ assoc(up3))   (P, 128, T/2)
    x  = x ++ assoc(up4)                   (2P, 128, T/2)
    left, right = head_l(x), head_r(x)    ConvT(2P -> 2) + Sigmoid, *2-1: (2, 256, T) each

With the paper's 224x448 frames P = 7*14 = 98 (the reference's "ConvT 98->98"). Every
parameter is used in forward (DDP needs no find_unused_parameters).
"""

from __future__ import annotations

import math
from typing import List

import torch
from torch import nn

from streambin.train.models.unet import init_weights, mask_head, up_block


class AssociativeConv(nn.Module):
    """Visual positions as 1x1 kernels: ``(B, C_a, H, W)``, ``(B, C_v, h, w)`` -> ``(B, h*w, H, W)``."""

    def __init__(self, visual_channels: int, audio_channels: int):
        super().__init__()
        self.audio_channels = audio_channels
        self.to_kernels = nn.Conv2d(visual_channels, audio_channels, 1)
        self.scale = 1.0 / math.sqrt(audio_channels)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        kernels = self.to_kernels(visual).flatten(2).transpose(1, 2)        # (B, P, C_a)
        out = torch.bmm(kernels, audio.flatten(2)) * self.scale             # (B, P, H*W)
        return out.reshape(out.shape[0], out.shape[1], audio.shape[2], audio.shape[3])


class APNet(nn.Module):
    """Two complex masks (left, right) from the U-Net decoder features and the visual map.

    ``forward(decoder, visual)``: ``decoder`` = [up1, up2, up3, up4] of :class:`AudioUNet`
    (channels 8ngf, 4ngf, 2ngf, ngf), ``visual`` ``(B, C_v, h, w)`` with ``h*w == positions``;
    returns ``(B, 2, 2, 256, T)`` masks in [-1, 1] (left, right; real, imag).
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
        init_weights(self)

    def forward(self, decoder: List[torch.Tensor], visual: torch.Tensor) -> torch.Tensor:
        x = self.up1(self.assoc[0](decoder[0], visual))
        x = self.up2(torch.cat([x, self.assoc[1](decoder[1], visual)], dim=1))
        x = self.up3(torch.cat([x, self.assoc[2](decoder[2], visual)], dim=1))
        x = torch.cat([x, self.assoc[3](decoder[3], visual)], dim=1)
        left = self.head_left(x) * 2.0 - 1.0
        right = self.head_right(x) * 2.0 - 1.0
        return torch.stack([left, right], dim=1)
