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
        u8 = self.up8(torch.cat([F.interpolate(s16, size=s8.shape[-2:], mode="bilinear",
                                               align_corners=False), s8], 1))
        u4 = self.up4(torch.cat([F.interpolate(u8, size=s4.shape[-2:], mode="bilinear",
                                               align_corners=False), s4], 1))
        return self.head(u4)


def read_localiser_checkpoint(path: str) -> dict:
    """The dict of a checkpoint of ``object_localiser.py train`` (``{"net": state_dict, "width":
    int, ...}``, optionally ``"sounding_map": True``); ValueError for anything else."""
    ck = torch.load(path, weights_only=False, map_location="cpu")
    if not isinstance(ck, dict) or "net" not in ck or "width" not in ck:
        raise ValueError(f"{path}: not an object localiser checkpoint (expected keys 'net' and 'width')")
    return ck


def load_localiser(path: str) -> ObjectLocaliser:
    """A checkpoint of ``object_localiser.py train`` (:func:`read_localiser_checkpoint`) as an
    eval-mode net."""
    ck = read_localiser_checkpoint(path)
    net = ObjectLocaliser(int(ck["width"]), bool(ck.get("sounding_map", False)))
    net.load_state_dict(ck["net"])
    return net.eval()
