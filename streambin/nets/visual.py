"""Optional visual parts of the generator: a spatio-temporal C3D-like trunk, a compact trunk and an attention gate.

- :class:`C3DTrunk` (SAGM's spatio-temporal visual net option): ``(B, 3, K, H, W)`` ImageNet-
  normalised clip of ``K`` frames -> ``(B, 512, h, w)``, the same map shape as the ResNet-18
  trunk (``h, w = trunk_output_hw(H, W)``) so everything downstream is unchanged. Five 3x3x3
  conv stages (64, 128, 256, 512, 512 channels, BN3d + ReLU), each followed by a max-pool that
  halves space (ceil mode, n -> (n+1)//2 like the ResNet); stages 2 and 3 also halve time, so
  time is downsampled by 4 (as C3D's pool2/pool3 do), then the ``K/4`` remaining time steps
  are averaged.
- :class:`CompactTrunk` (streambin's option, for CPUs): ``(B, 3, H, W)`` -> ``(B, 512, h, w)``,
  again the ResNet-18 trunk's map shape, from five stride-2 stages of 3x3 convs (one in the
  first stage, two in the others; 24, 32, 64, 128, 256 channels, BN + ReLU) and a 1x1 projection to 512 (BN + ReLU: the map
  is non-negative, like the ResNet's). About a ninth of the ResNet-18's multiply-adds and an
  eighth of its weights (32 M against 296 M at 64x128; 1.3 M against 11.2 M); trained by
  distillation from a ResNet-18 generator (:mod:`streambin.train.distill_visual`), since no
  pretrained weights exist for it.
- :class:`VisualGate` (the multitask recipe's task-specific attention): two 1x1 convs
  (C -> C/r, ReLU, C/r -> C), sigmoid, multiplied into the map: ``x * sigmoid(W2 relu(W1 x))``.
"""

from __future__ import annotations

import torch
from torch import nn

from streambin.nets.resnet import ResNet18Trunk, init_like_torchvision


class C3DTrunk(nn.Module):
    """``(B, 3, K, H, W)`` -> ``(B, 512, h, w)`` with ``K`` a multiple of 4 (see module docstring)."""

    out_channels = ResNet18Trunk.out_channels
    widths = (64, 128, 256, 512, 512)
    time_pool = (1, 2, 2, 1, 1)

    def __init__(self, frames: int):
        super().__init__()
        if frames < 4 or frames % 4 != 0:
            raise ValueError(f"frames must be a positive multiple of 4, got {frames}")
        self.frames = int(frames)
        layers = []
        c_in = 3
        for c_out, tp in zip(self.widths, self.time_pool):
            layers += [nn.Conv3d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool3d((tp, 2, 2), (tp, 2, 2), ceil_mode=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        init_like_torchvision(self)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dim() != 5 or clip.shape[1] != 3 or clip.shape[2] != self.frames:
            raise ValueError(f"clip must be (B, 3, {self.frames}, H, W) float, got {tuple(clip.shape)}")
        return self.features(clip).mean(dim=2)


class CompactTrunk(nn.Module):
    """``(B, 3, H, W)`` ImageNet-normalised -> ``(B, 512, h, w)`` with ``(h, w) =
    trunk_output_hw(H, W)`` (each stride-2 3x3 conv maps n rows to (n + 1) // 2, as the ResNet)."""

    out_channels = ResNet18Trunk.out_channels
    widths = (24, 32, 64, 128, 256)

    def __init__(self):
        super().__init__()
        layers = []
        c_in = 3
        for i, c_out in enumerate(self.widths):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i > 0:  # the stem stage is a single conv: at full resolution a second one costs most
                layers += [nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
            c_in = c_out
        layers += [nn.Conv2d(c_in, self.out_channels, 1, bias=False), nn.BatchNorm2d(self.out_channels),
                   nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        init_like_torchvision(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (B, 3, H, W) float, got {tuple(x.shape)}")
        return self.features(x)


class VisualGate(nn.Module):
    """``(B, C, h, w)`` -> ``x * sigmoid(conv2(relu(conv1(x))))`` (same shape)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be >= 1, got {channels}, {reduction}")
        hidden = max(1, channels // reduction)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, channels, 1)
        # Start near a pass-through gate (sigmoid(2) = 0.88 everywhere) so the shared features
        # reach both tasks from the first step.
        nn.init.normal_(self.conv1.weight, 0.0, 0.02)
        nn.init.zeros_(self.conv1.bias)
        nn.init.normal_(self.conv2.weight, 0.0, 0.02)
        nn.init.constant_(self.conv2.bias, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.conv1.in_channels:
            raise ValueError(f"gate input must be (B, {self.conv1.in_channels}, h, w), got {tuple(x.shape)}")
        return x * torch.sigmoid(self.conv2(torch.relu(self.conv1(x))))
