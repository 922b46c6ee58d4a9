"""ResNet-18 trunk (no avgpool / fc) with torchvision-compatible parameter names.

The layer names (``conv1``, ``bn1``, ``layer1`` .. ``layer4``, each a sequence of BasicBlocks
with ``conv1/bn1/conv2/bn2`` and ``downsample.0`` (1x1 conv) / ``downsample.1`` (BN)) match
torchvision's ``resnet18`` so that an ImageNet ``state_dict`` saved from torchvision loads
with :func:`load_imagenet_weights` (its ``fc.*`` entries are ignored). Written here so the
training side does not depend on torchvision.

Shapes: input ``(B, 3, H, W)`` float (ImageNet-normalised) -> ``(B, 512, h, w)`` with
``h = ceil(H / 32)``-style halving five times (224x448 -> 7x14).

``dilated=True`` is Sep-Stereo's default visual net ("VisualNetDilated" of the reference code,
dilate scale 16): layer4 keeps stride 1 (its strided 3x3 conv and 1x1 downsample run at stride
1, its other 3x3 convs at dilation 2, padding 2), so the map stays at 1/16 with a wider
receptive field, then a 2x2 average pool (stride 2) brings it to 1/32 (224x448 -> 14x28 ->
7x14). The parameters are the same tensors under the same names, so the same ImageNet (or
pretrained) state_dict loads into both. (The reference also builds a 3x3 ``fc`` conv that its
forward never uses; it is left out.)
"""

from __future__ import annotations

import os
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (torchvision's BasicBlock layout)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def init_like_torchvision(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, in place: kaiming fan_out for every 2-D/3-D conv,
    batch-norm weight 1 and bias 0 (the trunks are trained from scratch here)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet18Trunk(nn.Module):
    """ResNet-18 up to layer4: ``(B, 3, H, W)`` -> ``(B, 512, h, w)``, ``(h, w) =
    trunk_output_hw(H, W, dilated)``; ``dilated``: see the module docstring."""

    out_channels = 512

    def __init__(self, dilated: bool = False):
        super().__init__()
        self.dilated = bool(dilated)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        init_like_torchvision(self)
        if self.dilated:
            _dilate_without_stride(self.layer4, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3_map(x))
        return F.avg_pool2d(x, kernel_size=2, stride=2) if self.dilated else x

    def layer3_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``layer3``'s map ``(B, 256, H/16, W/16)`` (rounded up): the stride-16
        map ``forward`` goes on from, twice its columns where the trunk is not dilated."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


def _dilate_without_stride(stage: nn.Module, dilation: int) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 dilated one, in place (the reference's
    ``_nostride_dilate``): strided convs get stride 1 (a strided 3x3 keeps dilation
    ``dilation // 2``), every other 3x3 conv gets ``dilation``; paddings keep the map size."""
    for m in stage.modules():
        if not isinstance(m, nn.Conv2d):
            continue
        if m.stride == (2, 2):
            m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                m.dilation = m.padding = (dilation // 2, dilation // 2)
        elif m.kernel_size == (3, 3):
            m.dilation = m.padding = (dilation, dilation)


def trunk_output_hw(height: int, width: int, dilated: bool = False) -> Tuple[int, int]:
    """Spatial size ``(h, w)`` of the trunk output for an ``height x width`` input.

    conv1 (k7 s2 p3), maxpool (k3 s2 p1) and each stride-2 stage map n -> (n+1)//2: five times
    for the plain trunk; four times for the dilated one (layer4 keeps the size), whose final
    2x2 average pool then maps n -> n//2 (so its map needs at least 2x2 before the pool).
    """
    if height < 1 or width < 1:
        raise ValueError(f"visual size must be positive, got {(height, width)}")
    h, w = height, width
    for _ in range(4 if dilated else 5):
        h, w = (h + 1) // 2, (w + 1) // 2
    if dilated:
        if h < 2 or w < 2:
            raise ValueError(f"visual size {(height, width)} is too small for the dilated ResNet-18 "
                             f"(its 1/16 map is {h}x{w}; the 2x2 average pool needs at least 2x2)")
        h, w = h // 2, w // 2
    return h, w


def load_imagenet_weights(trunk: ResNet18Trunk, path: str) -> None:
    """Load a torchvision ``resnet18`` ImageNet state_dict from ``path`` into ``trunk``.

    Accepts a bare state_dict or a dict holding one under ``"state_dict"``/``"model"``; keys
    with a ``module.`` prefix (DataParallel) are accepted. ``fc.*`` is ignored; every trunk key
    must be present with the right shape (strict), otherwise a ValueError lists what differs.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise FileNotFoundError(
            f"ImageNet weights not found at {path!r}: expected a torchvision resnet18 state_dict "
            "(.pth), e.g. saved with torch.save(torchvision.models.resnet18(weights='IMAGENET1K_V1')"
            ".state_dict(), path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise ValueError(f"could not read ImageNet weights {path!r} as a torch state_dict: {exc}") from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} does not hold a state_dict (got {type(state).__name__})")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = trunk.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"{path!r} is not a torchvision resnet18 state_dict: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}, wrong shape {bad_shape[:5]}")
    trunk.load_state_dict(state, strict=True)
