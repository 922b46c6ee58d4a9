"""Multi-task recipe (Li, Liu & Manocha, "Binaural Audio Generation via Multi-task Learning",
ACM TOG / SIGGRAPH Asia 2021): binaural generation plus flipped-audio classification on
shared visual features, each task behind its own attention gate.

What is implemented (``model.arch = "apnet"``, ``model.visual_gate = true``):

- shared visual feature ``V = ResNet18(frame)`` ``(512, h, w)``;
- task-specific attention (two 1x1 convs, sigmoid, multiplied in):
  ``V_gen = V * sigmoid(W2 relu(W1 V))`` inside the generator's ``visual`` (so it is exported),
  ``V_cls = V * sigmoid(W2' relu(W1' V))`` in this step module (training only);
- generation task = APNet on the U-Net backbone, fed ``V_gen``:
  ``L_D = MSE(side_mask * M, D)`` (the backbone's side/difference loss) and
  ``L_C = MSE(maskL*M - M, D) + MSE(M - maskR*M, D)`` (the left/right channel heads);
- classification task: the ground-truth binaural spectrogram with its channels swapped for a
  random half of the batch (label y = 1 when swapped) goes through a binaural encoder; the
  classifier sees [pool(binaural features), pool(V_cls)] and outputs a logit ``z``;
  ``L_cls = BCE(sigmoid(z), y)``;
- ``total = lambda1 * L_D + lambda2 * L_C + lambda3 * L_cls`` with
  ``recipes.multitask_lambdas = (44, 44, 1)`` (the paper's weights).

Spectrogram losses are in the normalised domain over 256 bins, as the other recipes. The
exported generator is an APNet :class:`~streambin.nets.BinauralGenerator` with the
generation gate (mask kind "left_right"); the classifier and its gate are not exported.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from streambin.nets.resnet import ResNet18Trunk
from streambin.nets.visual import VisualGate
from streambin.train.config import Config
from streambin.train.losses import left_right_loss, mono_side_specs, side_loss
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import FlipClassifier, left_right_specs, random_channel_swap


class MultitaskStep(nn.Module):
    """``forward(audio (B, 2, n), frames (B, H, W, 3) uint8) -> {"side", "heads", "cls", "total"}``."""

    def __init__(self, generator: nn.Module, config: Config):
        super().__init__()
        if generator.gate is None or generator.arch != "apnet":
            raise ValueError("the multitask recipe needs an APNet generator with model.visual_gate = true")
        self.generator = generator
        self.audio_cfg = config.audio
        self.lambdas = config.recipes.multitask_lambdas
        self.cls_gate = VisualGate(ResNet18Trunk.out_channels)
        self.classifier = FlipClassifier(ResNet18Trunk.out_channels, config.model.ngf)

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        mono, side = mono_side_specs(audio, self.audio_cfg)
        shared = self.generator.trunk_map(frames)                      # V
        out = self.generator.audio_outputs(mono, self.generator.feature_from_map(shared))
        l_d = side_loss(out["side"], mono, side)
        l_c = left_right_loss(out["left_right"], mono, side)
        swapped, label = random_channel_swap(audio)
        logit = self.classifier(left_right_specs(swapped, self.audio_cfg), self.cls_gate(shared))
        l_cls = F.binary_cross_entropy_with_logits(logit, label)
        l1, l2, l3 = self.lambdas
        return {"side": l_d, "heads": l_c, "cls": l_cls, "total": l1 * l_d + l2 * l_c + l3 * l_cls}


@register_recipe
class MultitaskRecipe(Recipe):
    name = "multitask"
    arch = "apnet"
    loss_names = ("side", "heads", "cls")
    model_requires = {"visual_gate": True}

    def make_step_module(self, generator):
        return MultitaskStep(generator, self.config)
