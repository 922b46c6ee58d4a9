"""The binaural generator: visual encoder + audio mask network behind the export interface.

``BinauralGenerator(**generator_kwargs_from_model(model, recipe))`` builds the generator of a
config's model section (a plain mapping: a checkpoint's stored ``config["model"]``; training's
:func:`streambin.train.build.build_generator` passes its Config's). Its two methods are exactly
what export traces (docs/architecture.md, "Model interface"):

- ``visual(frames)``: ``(B, H_v, W_v, 3) uint8`` RGB at ``model["visual_size"]`` ->
  feature ``(B, *feature_shape)`` float32.
- ``audio(spec, feature)``: ``(B, 2, 257, T)`` float32 normalised mono spectrogram (real, imag)
  -> masks ``(B, n_masks, 2, 257, T)`` float32 that multiply the mono spectrogram ``M`` of
  ``m = (L + R) / 2``: the side mask (``D = mask * M``) in [-1, 1]; the left/right masks
  (``L = mask_l * M``, ``R = mask_r * M``) in [-2, 2] (APNet's masks on ``L + R`` times 2).
  ``audio(spec, feature, last_frames=K)`` returns only the last ``K`` columns, computed from
  what they need (arch "unet"): the streaming engine plays only the newest few of each run,
  and ``python -m export.to_onnx --output-frames K`` exports this form.

Architectures (``model["arch"]``):

- ``"unet"`` (Mono2Binaural): feature = ResNet-18 map -> 1x1 conv 512->8 + BN + ReLU, flattened
  (``feature_shape = (8*h*w,)``, 784 at 224x448); ``mask_kind = "side"`` (n_masks 1).
- ``"apnet"`` (Sep-Stereo): feature = the ResNet-18 map itself (``feature_shape = (512, h, w)``),
  because APNet needs positions; the U-Net backbone gets the reduced, flattened feature computed
  from it inside ``audio``; ``mask_kind = "left_right"`` (n_masks 2).

Visual net (``model["visual_net"]``): ``"auto"`` (the config default) is the recipe's trunk in
:data:`RECIPE_VISUAL_NETS`: the dilated ResNet-18 (dilated layer4 + 2x2 average pool,
:class:`~streambin.nets.resnet.ResNet18Trunk`) for the Sep-Stereo recipes (apnet,
sepstereo: the reference's default), the plain ResNet-18 for the others (2.5D Visual Sound's);
``"resnet18"`` / ``"resnet18_dilated"`` choose one explicitly. :class:`BinauralGenerator` itself
takes a concrete name (default ``"resnet18"``); :func:`generator_kwargs_from_model` resolves
``"auto"``.

Options (default off: the papers' generators): ``model["visual_net"] = "c3d"`` replaces the
ResNet-18 trunk by :class:`~streambin.nets.visual.C3DTrunk` over ``visual_frames``
frames; ``visual`` (the exported one-frame interface) repeats its frame over time (a still
clip), and :meth:`BinauralGenerator.visual_clip` takes real clips for training.
``model["visual_net"] = "compact"`` is :class:`~streambin.nets.visual.CompactTrunk`, a CPU-sized
trunk with the same map shape (trained by distillation, :mod:`streambin.train.distill_visual`).
``model["visual_gate"]`` multiplies a sigmoid gate into the trunk map inside ``visual``.

``model["mirror_average"]`` (default off) makes the export interface mirror-equivariant by
construction: ``visual`` returns the features of the frame and of its left-right mirror image,
``(B, 2, *map_feature_shape)``, and ``audio`` runs the mask network on both and averages the
frame's masks with the mirrored frame's masks with the ears swapped (side mask
``(m - m_mirror) / 2``; left/right masks ``(m_l + m_mirror_r) / 2`` and vice versa). A mirrored
picture then swaps the ears exactly, and a picture that is its own mirror image (a uniform grey
frame) gives L = R: whatever side the network leans to regardless of the picture cancels. It
costs two visual and two audio passes (one batch of two). The training helpers
(``trunk_map``, ``feature_from_map``, ``audio_outputs``) are unchanged, so weights trained
without it load into a generator with it (and back).

The U-Nets see 256 bins (``model["nyquist_input"] = True``: all 257, as the reference feeds
them; docs/architecture.md says why the default drops it) and predict 256; the Nyquist bin of
the mask is padded back (side mask 0, left/right mask 1+0j: the mono passes through). No
Python control flow depends on tensor values, inputs are never modified in place, and only the
batch dimension is dynamic. Attributes: ``mask_kind``, ``n_masks``, ``mask_bound`` (the largest
``|mask|``: 1 for "side", 2 for "left_right"), ``feature_shape`` (what ``visual`` returns and
``audio`` takes), ``map_feature_shape`` (one frame's feature: what ``feature_from_map`` returns
and ``audio_outputs`` takes; equal to ``feature_shape`` without ``mirror_average``).
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from streambin.nets.apnet import MASKS_ON_MONO_PER_MASK_ON_SUM, APNet
from streambin.nets.resnet import ResNet18Trunk, trunk_output_hw
from streambin.nets.unet import AudioUNet, init_weights
from streambin.nets.visual import C3DTrunk, CompactTrunk, VisualGate
from streambin.signal_contract import average_mirrored_masks_torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
N_BINS = 257
UNET_BINS = 256

TRUNKS = ("resnet18", "resnet18_dilated", "c3d", "compact")

# What model.visual_net "auto" builds for each recipe: its paper's trunk. The Sep-Stereo
# recipes use the dilated ResNet-18 (the reference's default), every other recipe the plain one
# (DEFAULT_VISUAL_NET). The one owner of this fact: the training recipes' ``default_visual_net``
# reads it from here.
RECIPE_VISUAL_NETS: Dict[str, str] = {"apnet": "resnet18_dilated", "sepstereo": "resnet18_dilated"}
DEFAULT_VISUAL_NET = "resnet18"

# Model-section keys (streambin.train.config.ModelConfig) -> BinauralGenerator arguments; a key
# left out of a stored section (a config saved before its option existed) takes the argument's
# default, which is the behaviour from before the option. "visual_net" is resolved apart.
_GENERATOR_ARGS = {"arch": "arch", "ngf": "ngf", "visual_size": "visual_size",
                   "visual_reduced_channels": "reduced_channels", "visual_frames": "visual_frames",
                   "visual_gate": "visual_gate", "nyquist_input": "nyquist_input",
                   "mirror_average": "mirror_average"}
_REQUIRED_KEYS = ("arch", "ngf", "visual_size")
# Keys that only matter when training starts (no effect on the network's shape or function).
TRAINING_ONLY_KEYS = ("imagenet_weights",)
MODEL_KEYS = tuple(_GENERATOR_ARGS) + ("visual_net",) + TRAINING_ONLY_KEYS


class BinauralGenerator(nn.Module):
    """Visual ResNet-18 trunk + audio U-Net (+ APNet). See the module docstring for shapes."""

    def __init__(self, arch: str, ngf: int, visual_size: Tuple[int, int], reduced_channels: int = 8,
                 visual_net: str = "resnet18", visual_frames: int = 4, visual_gate: bool = False,
                 nyquist_input: bool = False, mirror_average: bool = False):
        super().__init__()
        if arch not in ("unet", "apnet"):
            raise ValueError(f"arch must be 'unet' or 'apnet', got {arch!r}")
        if visual_net not in TRUNKS:
            raise ValueError(f"visual_net must be one of {TRUNKS} (\"auto\" is resolved from the recipe "
                             f"by generator_kwargs_from_model), got {visual_net!r}")
        self.arch = arch
        self.visual_size = (int(visual_size[0]), int(visual_size[1]))
        dilated = visual_net == "resnet18_dilated"
        h, w = trunk_output_hw(*self.visual_size, dilated=dilated)
        self.visual_map_shape = (ResNet18Trunk.out_channels, h, w)
        flat = reduced_channels * h * w

        self.visual_net = visual_net
        self.nyquist_input = bool(nyquist_input)
        self.unet_input_bins = N_BINS if self.nyquist_input else UNET_BINS
        if visual_net == "c3d":
            self.trunk = C3DTrunk(visual_frames)
        elif visual_net == "compact":
            self.trunk = CompactTrunk()
        else:
            self.trunk = ResNet18Trunk(dilated=dilated)
        self.gate = VisualGate(ResNet18Trunk.out_channels) if visual_gate else None
        self.reduce = nn.Sequential(nn.Conv2d(ResNet18Trunk.out_channels, reduced_channels, 1),
                                    nn.BatchNorm2d(reduced_channels), nn.ReLU())
        init_weights(self.reduce)
        self.unet = AudioUNet(ngf, flat)
        if arch == "apnet":
            self.apnet = APNet(ngf, ResNet18Trunk.out_channels, h * w)
            self.mask_kind = "left_right"
            self.map_feature_shape: Tuple[int, ...] = self.visual_map_shape
        else:
            self.apnet = None
            self.mask_kind = "side"
            self.map_feature_shape = (flat,)
        self.mirror_average = bool(mirror_average)
        self.feature_shape = (2,) + self.map_feature_shape if self.mirror_average else self.map_feature_shape
        self.n_masks = 2 if self.mask_kind == "left_right" else 1
        # Largest |mask| the graph can output (side masks in [-1, 1], left/right in [-2, 2]).
        self.mask_bound = MASKS_ON_MONO_PER_MASK_ON_SUM if self.mask_kind == "left_right" else 1.0
        self.trunk_frozen = False

        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # Nyquist-bin value of each mask (real, imag): side -> 0, left/right -> 1+0j (pass-through).
        nyq = [1.0, 0.0] if self.mask_kind == "left_right" else [0.0, 0.0]
        self.register_buffer("nyquist_mask", torch.tensor(nyq).view(1, 1, 2, 1, 1), persistent=False)

    # ------------------------------------------------------------------ export interface
    def visual(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, H_v, W_v, 3) uint8`` RGB -> feature ``(B, *feature_shape)`` float32 (with
        ``mirror_average``: the frame's and its mirror image's, stacked on axis 1)."""
        hv, wv = self.visual_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (hv, wv, 3) or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be (B, {hv}, {wv}, 3) uint8 RGB, got "
                             f"{tuple(frames.shape)} {frames.dtype}")
        if not self.mirror_average:
            return self.feature_from_map(self.trunk_map(frames))
        b = frames.shape[0]
        both = self.feature_from_map(self.trunk_map(torch.cat([frames, frames.flip(2)], dim=0)))
        return torch.stack([both[:b], both[b:]], dim=1)

    def audio(self, spec: torch.Tensor, feature: torch.Tensor, last_frames: Optional[int] = None) -> torch.Tensor:
        """``(B, 2, 257, T)`` normalised spec, feature -> masks ``(B, n_masks, 2, 257, T)`` on the
        mono spectrogram (side in [-1, 1], left/right in [-2, 2]; module docstring).

        ``last_frames = K`` (arch "unet" only) returns the masks' last ``K`` columns, ``(B,
        n_masks, 2, 257, K)``, computed from only what they depend on
        (:class:`~streambin.nets.unet.AudioUNet`): what a streaming engine plays of each run.
        Arch "unet" (without ``mirror_average``) also takes ``spec`` of batch 1 with a feature
        of batch B: one context under B features, encoded once; the masks have batch B."""
        if last_frames is not None:
            self.check_last_frames(last_frames, int(spec.shape[-1]))
        if not self.mirror_average:
            return self._masks(spec, feature, last_frames)
        if feature.dim() < 2 or tuple(feature.shape[1:]) != tuple(self.feature_shape):
            raise ValueError(f"feature must be (B, {', '.join(map(str, self.feature_shape))}) (mirror_average: "
                             f"the frame's and the mirrored frame's), got {tuple(feature.shape)}")
        b = spec.shape[0]
        masks = self._masks(torch.cat([spec, spec], dim=0), torch.cat([feature[:, 0], feature[:, 1]], dim=0),
                            last_frames)
        return average_mirrored_masks_torch(masks[:b], masks[b:], self.mask_kind)

    @property
    def shares_context(self) -> bool:
        """Whether :meth:`audio` takes one context (``spec`` batch 1) for a feature of any batch:
        the U-Net, unless the mirror averaging is inside (it stacks the context itself)."""
        return self.arch == "unet" and not self.mirror_average

    def check_last_frames(self, last_frames: int, context_frames: int) -> None:
        """Raise ``ValueError`` unless :meth:`audio` can return the last ``last_frames`` of
        ``context_frames`` mask columns (an integer in [1, context_frames]; arch "unet" for fewer
        than all)."""
        if (isinstance(last_frames, bool) or not isinstance(last_frames, numbers.Integral)
                or not 1 <= last_frames <= context_frames):
            raise ValueError(f"last_frames must be an integer in [1, {context_frames}] (the context), "
                             f"got {last_frames!r}")
        if last_frames < context_frames and self.arch != "unet":
            raise ValueError(f"last_frames below the context ({last_frames} < {context_frames}) needs arch "
                             f"'unet'; APNet's decoder features cover the whole context (arch {self.arch!r})")

    def _masks(self, spec: torch.Tensor, feature: torch.Tensor, last_frames: Optional[int] = None) -> torch.Tensor:
        if self.arch == "unet":
            self._check_audio_inputs(spec, feature, shared_context=True)
            masks = self.unet(spec[:, :, :self.unet_input_bins], feature, last_frames)[:, None]
        else:
            out = self.audio_outputs(spec, feature)
            masks = out["left_right"] if self.mask_kind == "left_right" else out["side"][:, None]
        return self.pad_nyquist(masks)

    def forward(self, spec: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """``audio(spec, visual(frames))``."""
        return self.audio(spec, self.visual(frames))

    # ------------------------------------------------------------------ training helpers
    def trunk_map(self, frames: torch.Tensor, stride: int = 32) -> torch.Tensor:
        """``(B, H_v, W_v, 3) uint8`` -> the trunk map ``(B, 512, h, w)`` before gate/reduction.

        A c3d trunk sees the frame repeated over its ``visual_frames`` time steps (a still clip).
        ``stride=16`` gives a plain ResNet-18 trunk's ``layer3`` map instead, ``(B, 256, 2h, 2w)``
        (for probing where in the picture finer cells would help; the feature never uses it)."""
        hv, wv = self.visual_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (hv, wv, 3) or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be (B, {hv}, {wv}, 3) uint8 RGB, got "
                             f"{tuple(frames.shape)} {frames.dtype}")
        if stride not in (16, 32):
            raise ValueError(f"stride must be 16 or 32, got {stride!r}")
        x = self._normalise(frames.permute(0, 3, 1, 2))
        if stride == 16:
            if not isinstance(self.trunk, ResNet18Trunk) or self.trunk.dilated:
                raise ValueError("stride 16 needs a plain (not dilated) ResNet-18 trunk, got "
                                 f"{type(self.trunk).__name__}{' (dilated)' if getattr(self.trunk, 'dilated', False) else ''}")
            return self.trunk.layer3_map(x)
        if self.visual_net == "c3d":
            x = x[:, :, None].expand(-1, -1, self.trunk.frames, -1, -1)
        return self.trunk(x)

    def visual_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """``(B, K, H_v, W_v, 3) uint8`` clip (K = ``visual_frames``; c3d trunk only) -> feature."""
        if self.visual_net != "c3d":
            raise ValueError("visual_clip needs model.visual_net 'c3d'")
        hv, wv = self.visual_size
        k = self.trunk.frames
        if clip.dim() != 5 or tuple(clip.shape[1:]) != (k, hv, wv, 3) or clip.dtype != torch.uint8:
            raise ValueError(f"clip must be (B, {k}, {hv}, {wv}, 3) uint8 RGB, got "
                             f"{tuple(clip.shape)} {clip.dtype}")
        x = self._normalise(clip.permute(0, 4, 1, 2, 3))               # (B, 3, K, H, W)
        return self.feature_from_map(self.trunk(x))

    def feature_from_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """Trunk map ``(B, 512, h, w)`` -> the exported feature (gate, then the arch's reduction)."""
        if self.gate is not None:
            fmap = self.gate(fmap)
        if self.arch == "apnet":
            return fmap
        return self.reduce(fmap).flatten(1)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, 3, ...)`` -> float32 ImageNet-normalised (mean/std broadcast over dims 2+)."""
        shape = (1, 3) + (1,) * (x.dim() - 2)
        return (x.to(torch.float32) / 255.0 - self.mean.view(shape)) / self.std.view(shape)

    def audio_outputs(self, spec: torch.Tensor, feature: torch.Tensor) -> Dict[str, torch.Tensor]:
        """All heads on 256 bins, as masks on the mono spectrogram ``M``: ``{"side": (B, 2, 256, T)}``
        in [-1, 1] (+ ``"left_right": (B, 2, 2, 256, T)`` in [-2, 2], APNet's masks on ``L + R``
        times 2)."""
        self._check_audio_inputs(spec, feature)
        x = spec[:, :, :self.unet_input_bins]
        if self.arch == "apnet":
            side, decoder = self.unet.forward_features(x, self.reduce(feature).flatten(1))
            left_right = self.apnet(decoder, feature) * MASKS_ON_MONO_PER_MASK_ON_SUM
            return {"side": side, "left_right": left_right}
        return {"side": self.unet(x, feature)}

    def _check_audio_inputs(self, spec: torch.Tensor, feature: torch.Tensor, shared_context: bool = False) -> None:
        if spec.dim() != 4 or spec.shape[1] != 2 or spec.shape[2] != N_BINS or spec.shape[3] % 32 != 0:
            raise ValueError(f"spec must be (B, 2, {N_BINS}, T) float32 with T a multiple of 32, "
                             f"got {tuple(spec.shape)}")
        if feature.dim() < 1 or tuple(feature.shape[1:]) != tuple(self.map_feature_shape):
            raise ValueError(f"feature must be (B, {', '.join(map(str, self.map_feature_shape))}), "
                             f"got {tuple(feature.shape)}")
        if spec.shape[0] != feature.shape[0] and not (shared_context and spec.shape[0] == 1):
            raise ValueError(f"spec's batch ({spec.shape[0]}) must equal the feature's ({feature.shape[0]})"
                             + (" or be 1 (one context for every feature)" if shared_context else ""))

    def pad_nyquist(self, masks: torch.Tensor) -> torch.Tensor:
        """``(B, n, 2, 256, T)`` -> ``(B, n, 2, 257, T)`` with the Nyquist bin set to its fixed value."""
        nyq = torch.zeros_like(masks[:, :, :, :1]) + self.nyquist_mask
        return torch.cat([masks, nyq], dim=3)

    def freeze_trunk(self, frozen: bool = True) -> None:
        """Stop training the ResNet trunk (no gradients, BN statistics fixed: trunk stays in eval
        mode). Useful with ImageNet weights, and ~5x cheaper steps on a CPU."""
        self.trunk_frozen = bool(frozen)
        for p in self.trunk.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.trunk_frozen:
            self.trunk.eval()
        return self

    def param_groups(self) -> Dict[str, List[nn.Parameter]]:
        """``{"visual": trunk + 1x1 reducer, "audio": everything else}`` (separate learning rates);
        trainable parameters only (a frozen trunk is left out)."""
        visual = [p for p in list(self.trunk.parameters()) + list(self.reduce.parameters()) if p.requires_grad]
        ids = {id(p) for p in self.trunk.parameters()} | {id(p) for p in self.reduce.parameters()}
        return {"visual": visual,
                "audio": [p for p in self.parameters() if id(p) not in ids and p.requires_grad]}


def default_visual_net(recipe: str) -> str:
    """The trunk that ``visual_net = "auto"`` means for ``recipe`` (:data:`RECIPE_VISUAL_NETS`)."""
    return RECIPE_VISUAL_NETS.get(recipe, DEFAULT_VISUAL_NET)


def generator_kwargs_from_model(model: Mapping[str, Any], recipe: str) -> Dict[str, Any]:
    """The :class:`BinauralGenerator` constructor arguments of a config's model section.

    ``model``: a plain mapping such as a checkpoint's stored ``config["model"]``
    (``Config.to_dict()["model"]``); ``recipe``: the config's recipe name, which resolves
    ``visual_net = "auto"`` (or a missing ``visual_net``, the config default). Raises
    ``ValueError`` naming the key when ``arch``, ``ngf`` or ``visual_size`` is missing or a key is
    unknown; the values themselves are checked by :class:`BinauralGenerator`.
    """
    if not isinstance(model, Mapping):
        raise ValueError(f"the model section must be a mapping, got {type(model).__name__}")
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"unknown model keys {unknown}; accepted keys: {sorted(MODEL_KEYS)}")
    missing = [k for k in _REQUIRED_KEYS if k not in model]
    if missing:
        raise ValueError(f"the model section lacks {missing}")
    kwargs = {arg: model[key] for key, arg in _GENERATOR_ARGS.items() if key in model}
    visual_net = model.get("visual_net", "auto")
    kwargs["visual_net"] = default_visual_net(recipe) if visual_net == "auto" else visual_net
    return kwargs
