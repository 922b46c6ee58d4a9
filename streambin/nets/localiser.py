"""A dense object localiser: a small fully convolutional net that marks where objects are.

It finds the objects in a picture, not which one sounds: the side renderer
(streambin.side_renderer) weighs its strongest peaks by their scores. Trained on frames of
generated scenes (``scripts/experiments/object_localiser.py``), CenterNet-style: a peak at every
object's box centre plus the box itself.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_H, INPUT_W = 96, 192   # the localiser's picture: (H, W) RGB, twice the engine's visual input
STRIDE = 4                   # heat map cell in input pixels: (24, 48) cells
N_MAPS = 6                   # heat, box mask, offset x, offset y, width, height
SOUNDING_MAP = N_MAPS        # the optional seventh map: a heat map of the sounding objects alone


def _block(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _decode(net: nn.Module, s4, s8, s16):
    """The localisers' shared decoder: stride-16 features up to 8 (joined with ``s8``, ``net.up8``)
    and 4 (joined with ``s4``, ``net.up4``), then ``net.head``'s maps."""
    u8 = net.up8(torch.cat([F.interpolate(s16, size=s8.shape[-2:], mode="bilinear", align_corners=False), s8], 1))
    u4 = net.up4(torch.cat([F.interpolate(u8, size=s4.shape[-2:], mode="bilinear", align_corners=False), s4], 1))
    return net.head(u4)


class ObjectLocaliser(nn.Module):
    """``(B, 3, 96, 192)`` normalised RGB -> ``(B, 6, 24, 48)``: channel 0 the centre heat map
    (logits), 1 the box mask (logits), 2-3 the centre's sub-cell offset (x, y, in cells), 4-5 the
    box size (w, h, as fractions of the frame). A small encoder to stride 16 with dilated context,
    one skip back up to stride 4. ``sounding_map``: a seventh channel (logits), the heat map of
    the objects that sound, trained on scenes with silent objects beside the sounding one."""

    def __init__(self, width: int = 32, sounding_map: bool = False):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_block(3, w // 2, 2), _block(w // 2, w))          # /2
        self.down4 = nn.Sequential(_block(w, w, 2), _block(w, w))                    # /4
        self.down8 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))        # /8
        self.down16 = nn.Sequential(_block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, dilation=2),
                                    _block(4 * w, 4 * w, dilation=4))                # /16
        self.up8 = _block(4 * w + 2 * w, 2 * w)
        self.up4 = _block(2 * w + w, w)
        self.sounding_map = bool(sounding_map)
        self.head = nn.Conv2d(w, N_MAPS + int(self.sounding_map), 1)
        with torch.no_grad():  # start the heat map near the rate of object cells (CenterNet's prior)
            self.head.bias[0] = -4.0

    def forward(self, x):
        s4 = self.down4(self.stem(x))
        s8 = self.down8(s4)
        s16 = self.down16(s8)
        return _decode(self, s4, s8, s16)


class TrunkLocaliser(nn.Module):
    """The same maps as :class:`ObjectLocaliser` (``(B, 3, 96, 192)`` normalised RGB -> ``(B, 6,
    24, 48)``, optionally the sounding map) from EfficientNet-Lite0's first 11 blocks, whose
    ImageNet weights have seen far more pictures than the generated scenes show
    (:mod:`streambin.nets.efficientnet_lite`), and a small decoder: the stride-16 features up to
    stride 8 and 4, each joined with the trunk's own features there. The input is normalised as
    the engine normalises every picture (ImageNet mean and std); the first step re-scales it to
    the trunk's [-1, 1], so the graph's interface is the same as the small localiser's."""

    TRUNK = "efficientnet-lite0"
    N_BLOCKS = 11      # to stride 16 (112 channels); block 2 ends stride 4 (24), block 4 stride 8 (40)

    def __init__(self, width: int = 32, sounding_map: bool = False, imagenet_weights: bool = False):
        super().__init__()
        from .efficientnet_lite import (LITE_MEAN, LITE_STD, EfficientNetLite0, block_outputs,
                                        load_imagenet_weights)
        from .generator import IMAGENET_MEAN, IMAGENET_STD
        w = width
        self.trunk = EfficientNetLite0(self.N_BLOCKS)
        if imagenet_weights:
            load_imagenet_weights(self.trunk)
        outs = block_outputs(self.N_BLOCKS)
        self.taps = {4: 2, 8: 4, 16: self.N_BLOCKS - 1}      # stride -> block index
        c4, c8, c16 = (outs[self.taps[s]][0] for s in (4, 8, 16))
        # x_lite = (x * std_in + mean_in - mean_lite) / std_lite, per channel
        std_in, mean_in = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        scale = std_in / torch.tensor(LITE_STD)
        shift = (mean_in - torch.tensor(LITE_MEAN)) / torch.tensor(LITE_STD)
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", shift.view(1, 3, 1, 1), persistent=False)
        self.up8 = _block(c16 + c8, 2 * w)
        self.up4 = _block(2 * w + c4, w)
        self.sounding_map = bool(sounding_map)
        self.head = nn.Conv2d(w, N_MAPS + int(self.sounding_map), 1)
        with torch.no_grad():
            self.head.bias[0] = -4.0

    def forward(self, x):
        feats = self.trunk.features(x * self.in_scale + self.in_shift)
        s4, s8, s16 = (feats[self.taps[s]] for s in (4, 8, 16))
        return _decode(self, s4, s8, s16)


def build_localiser(width: int = 32, sounding_map: bool = False, trunk: str = "own",
                    imagenet_weights: bool = False) -> nn.Module:
    """A localiser by its trunk: ``"own"`` (:class:`ObjectLocaliser`, learnt from scratch) or
    ``"efficientnet-lite0"`` (:class:`TrunkLocaliser`; ``imagenet_weights`` fills its trunk)."""
    if trunk == "own":
        return ObjectLocaliser(width, sounding_map)
    if trunk == TrunkLocaliser.TRUNK:
        return TrunkLocaliser(width, sounding_map, imagenet_weights)
    raise ValueError(f"unknown localiser trunk {trunk!r}: expected 'own' or {TrunkLocaliser.TRUNK!r}")


def read_localiser_checkpoint(path: str) -> dict:
    """The dict of a checkpoint of ``object_localiser.py train`` (``{"net": state_dict, "width":
    int, ...}``, optionally ``"sounding_map": True`` and ``"trunk"``, see :func:`build_localiser`);
    ValueError for anything else."""
    ck = torch.load(path, weights_only=False, map_location="cpu")
    if not isinstance(ck, dict) or "net" not in ck or "width" not in ck:
        raise ValueError(f"{path}: not an object localiser checkpoint (expected keys 'net' and 'width')")
    return ck


def load_localiser(path: str) -> nn.Module:
    """A checkpoint of ``object_localiser.py train`` (:func:`read_localiser_checkpoint`) as an
    eval-mode net."""
    ck = read_localiser_checkpoint(path)
    net = build_localiser(int(ck["width"]), bool(ck.get("sounding_map", False)), ck.get("trunk", "own"))
    net.load_state_dict(ck["net"])
    return net.eval()
