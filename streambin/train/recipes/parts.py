"""Training-only building blocks shared by the issue-5 recipes (never exported).

- :func:`left_right_specs`: ``(B, 2, n)`` L/R waveform -> ``(B, 4, 256, T)`` (L real/imag, R
  real/imag; Nyquist dropped like the U-Nets).
- :func:`random_channel_swap`: swap L and R of a random half of the batch; returns the labels.
- :class:`SpecEncoder`: 4 x [Conv2d k4 s2 p1 (+ BN) + LeakyReLU 0.2] over a spectrogram,
  channels ``ngf, 2ngf, 4ngf, 8ngf``: ``(B, C_in, 256, T)`` -> ``(B, 8ngf, 16, T/16)``.
- :class:`FlipClassifier`: is the binaural audio mirrored with respect to the picture? Binaural
  encoder (a :class:`SpecEncoder` on :func:`left_right_specs`) and the visual map, each
  global-average-pooled, concatenated, MLP -> one logit.
- :func:`masked_mean`: mean of per-item values over the items selected by a mask.
- :class:`LocalisationHead` / :class:`PositionOffsetHead`: the auxiliary localisation losses
  (which columns of the visual map hold a source; where in its column each one lies).
- :func:`mirror_averaged_outputs`: a frame's training outputs averaged with its mirror image's,
  ears swapped (what ``recipes.mirror_averaged_loss`` scores).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from streambin.nets.unet import init_weights
from streambin.signal_contract import average_mirrored_masks_torch
from streambin.train.config import AudioConfig
from streambin.train.losses import mono_side_specs, spectrogram

UNET_BINS = 256


def left_right_specs(audio: torch.Tensor, audio_cfg: AudioConfig) -> torch.Tensor:
    """``(B, 2, n)`` left/right -> ``(B, 4, 256, T)``: [L real, L imag, R real, R imag], 256 bins."""
    if audio.dim() != 3 or audio.shape[1] != 2:
        raise ValueError(f"audio must be (B, 2, n) left/right float32, got {tuple(audio.shape)}")
    left = spectrogram(audio[:, 0], audio_cfg)[:, :, :UNET_BINS]
    right = spectrogram(audio[:, 1], audio_cfg)[:, :, :UNET_BINS]
    return torch.cat([left, right], dim=1)


def random_channel_swap(audio: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Swap left/right of each item with probability 1/2 (torch's global RNG).

    ``(B, 2, n)`` -> ``(swapped (B, 2, n), label (B,) float32: 1 = swapped)``.
    """
    if audio.dim() != 3 or audio.shape[1] != 2:
        raise ValueError(f"audio must be (B, 2, n) left/right float32, got {tuple(audio.shape)}")
    label = (torch.rand(audio.shape[0], device=audio.device) < 0.5).to(audio.dtype)
    sel = label[:, None, None]
    return sel * audio.flip(1) + (1.0 - sel) * audio, label


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values (B,)`` over items where ``mask (B,)`` is true; 0 (still in the graph) if none."""
    if values.shape != mask.shape:
        raise ValueError(f"values and mask must have the same shape (B,), got {tuple(values.shape)} "
                         f"and {tuple(mask.shape)}")
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


class SpecEncoder(nn.Module):
    """``(B, C_in, 256, T)`` -> ``(B, 8ngf, 16, T/16)``; ``batch_norm=False`` for discriminators."""

    def __init__(self, in_channels: int, ngf: int, batch_norm: bool = True):
        super().__init__()
        if in_channels < 1 or ngf < 1:
            raise ValueError(f"in_channels and ngf must be >= 1, got {in_channels}, {ngf}")
        layers, c = [], in_channels
        for k in (1, 2, 4, 8):
            layers.append(nn.Conv2d(c, k * ngf, 4, 2, 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(k * ngf))
            layers.append(nn.LeakyReLU(0.2))
            c = k * ngf
        self.net = nn.Sequential(*layers)
        self.out_channels = 8 * ngf
        init_weights(self)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.dim() != 4 or spec.shape[1] != self.net[0].in_channels or spec.shape[2] != UNET_BINS:
            raise ValueError(f"spec must be (B, {self.net[0].in_channels}, {UNET_BINS}, T), got {tuple(spec.shape)}")
        return self.net(spec)


class FlipClassifier(nn.Module):
    """``(lr_spec (B, 4, 256, T), visual map (B, C_v, h, w))`` -> logit ``(B,)`` (1 = mirrored audio)."""

    def __init__(self, visual_channels: int, ngf: int, hidden: int = 128):
        super().__init__()
        self.encoder = SpecEncoder(4, ngf)
        self.visual_channels = visual_channels
        self.mlp = nn.Sequential(nn.Linear(visual_channels + self.encoder.out_channels, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, lr_spec: torch.Tensor, visual_map: torch.Tensor) -> torch.Tensor:
        if visual_map.dim() != 4 or visual_map.shape[1] != self.visual_channels:
            raise ValueError(f"visual map must be (B, {self.visual_channels}, h, w), got {tuple(visual_map.shape)}")
        a = self.encoder(lr_spec).mean(dim=(2, 3))
        v = visual_map.mean(dim=(2, 3))
        return self.mlp(torch.cat([a, v], dim=1)).squeeze(1)


class LocalisationHead(nn.Module):
    """Training-only auxiliary head: which columns of the visual trunk map hold a source.

    ``forward(fmap (B, C, h, w), source_x (B, S) box centres in [0, 1], -1 for no source,
    item_weight (B,) or None)`` -> BCE between per-column logits (a 1x1 conv averaged over the
    map's height) and the columns the sources fall in, averaged over the columns and then over
    the items weighted by ``item_weight`` (None: all 1; all 0 gives 0). It gives the
    from-scratch visual trunk a direct localisation signal; the exported generator does not
    contain it.
    """

    def __init__(self, channels: int = 512):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, fmap: torch.Tensor, source_x: torch.Tensor, item_weight=None) -> torch.Tensor:
        logits = self.conv(fmap).mean(dim=2)[:, 0]                      # (B, w)
        target = self.column_targets(logits, source_x)
        if item_weight is None:
            return nn.functional.binary_cross_entropy_with_logits(logits, target)
        per_item = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=1)
        w = _checked_item_weight(item_weight, logits.shape[0]).to(per_item.dtype)
        return (per_item * w).sum() / w.sum().clamp(min=1e-8)

    @staticmethod
    def column_targets(logits: torch.Tensor, source_x: torch.Tensor) -> torch.Tensor:
        """``(B, w)`` 0/1 targets: 1 where a source's box centre (``source_x (B, S)``) falls."""
        w = logits.shape[1]
        present = source_x >= 0
        cols = torch.clamp((source_x.clamp(min=0) * w).long(), 0, w - 1)  # (B, S)
        target = torch.zeros_like(logits)
        target.scatter_reduce_(1, cols, present.to(logits.dtype), reduce="amax")
        return target


class PositionOffsetHead(nn.Module):
    """Training-only auxiliary head: where in its column of the visual feature each source lies.

    ``forward(feature_map (B, C, h, w), source_x (B, S) box centres in [0, 1], -1 for no
    source)`` -> the mean over present sources of ``|sigmoid(offset logit) - offset|``, where the
    logit is a 1x1 conv averaged over the map's height, read at the source's column ``c =
    floor(x * w)``, and ``offset = x * w - c`` in [0, 1). ``feature_map`` is the feature the
    audio net receives, unflattened (mono2binaural: the reduced 8-channel map), so the position
    it asks for is one the audio net can read. 0 when the batch has no source (blank frames).
    ``item_weight`` (B,) or None weighs each item's sources (None: all 1).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, feature_map: torch.Tensor, source_x: torch.Tensor, item_weight=None) -> torch.Tensor:
        if feature_map.dim() != 4 or feature_map.shape[1] != self.conv.in_channels:
            raise ValueError(f"feature map must be (B, {self.conv.in_channels}, h, w), got {tuple(feature_map.shape)}")
        if source_x.dim() != 2 or source_x.shape[0] != feature_map.shape[0]:
            raise ValueError(f"source_x must be (B, S) with B = {feature_map.shape[0]}, got {tuple(source_x.shape)}")
        offsets = torch.sigmoid(self.conv(feature_map).mean(dim=2)[:, 0])  # (B, w)
        cols, target, present = self.column_offsets(offsets.shape[1], source_x)
        if item_weight is not None:
            present = present * _checked_item_weight(item_weight, present.shape[0]).to(present.dtype)[:, None]
        err = (offsets.gather(1, cols) - target).abs() * present
        return err.sum() / present.sum().clamp(min=1.0)

    @staticmethod
    def column_offsets(w: int, source_x: torch.Tensor):
        """``(cols (B, S) long, offsets (B, S) in [0, 1), present (B, S) 0/1 float)`` of each
        source's box centre on a map ``w`` columns wide (a centre at x = 1 counts as the last
        column's far edge)."""
        present = (source_x >= 0).to(source_x.dtype)
        pos = source_x.clamp(0.0, 1.0) * w
        cols = torch.clamp(pos.floor().long(), 0, w - 1)
        return cols, (pos - cols.to(pos.dtype)) * present, present


def _checked_item_weight(item_weight: torch.Tensor, batch: int) -> torch.Tensor:
    """``item_weight`` checked to be ``(batch,)`` of finite numbers >= 0."""
    if item_weight.shape != (batch,):
        raise ValueError(f"item_weight must be ({batch},), got {tuple(item_weight.shape)}")
    if not bool(torch.isfinite(item_weight).all()) or bool((item_weight < 0).any()):
        raise ValueError("item_weight must be finite numbers >= 0")
    return item_weight


def localisation_options(config) -> dict:
    """Dataset options for the auxiliary localisation loss (source boxes), when it is on."""
    return {"with_positions": True} if config.recipes.localisation_weight > 0 else {}


def localisation_inputs(config, batch: dict, device) -> dict:
    """Step-module inputs for the auxiliary localisation loss, when it is on: ``source_x``, and
    with ``recipes.localisation_skip_distractor_scenes`` a ``localisation_item_weight`` that is
    0 for items whose picture shows silent distractors (there the picture alone cannot say
    which object sounds; the audio loss still trains on them)."""
    if config.recipes.localisation_weight <= 0:
        return {}
    out = {"source_x": batch["source_x"].to(device, non_blocking=True)}
    if config.recipes.localisation_skip_distractor_scenes:
        if "silent_distractors" not in batch:
            raise ValueError("recipes.localisation_skip_distractor_scenes needs batch['silent_distractors'] "
                             "(a dataset with with_positions=True)")
        out["localisation_item_weight"] = (~batch["silent_distractors"].bool()).float().to(device)
    return out


def add_localisation(step, losses: dict, fmap: torch.Tensor, feature: torch.Tensor, source_x,
                     item_weight=None) -> dict:
    """Add ``weight * localisation`` (and ``offset_weight * localisation_offset``) to
    ``losses["total"]`` when the step has the heads. ``fmap``: the trunk map ``(B, 512, h, w)``;
    ``feature``: what the audio net receives, ``(B, C * h * w)`` flattened or ``(B, C, h, w)``;
    ``item_weight``: ``(B,)`` weights of the items in both losses, or None (all 1)."""
    if step.localisation is None:
        return losses
    if source_x is None:
        raise ValueError("localisation_weight > 0 needs batch['source_x'] (dataset with_positions=True)")
    loc = step.localisation(fmap, source_x, item_weight)
    out = {**losses, "localisation": loc, "total": losses["total"] + step.localisation_weight * loc}
    if step.position_offset is not None:
        h, w = fmap.shape[-2:]
        off = step.position_offset(feature.reshape(feature.shape[0], -1, h, w), source_x, item_weight)
        out = {**out, "localisation_offset": off, "total": out["total"] + step.localisation_offset_weight * off}
    return out


class LocalisedStep(nn.Module):
    """Step module shared by mono2binaural and apnet: runs the generator on ``(audio (B, 2, n)
    L/R, frames (B, H, W, 3) uint8)``, scores it with :meth:`losses`, and adds the optional
    localisation loss (``source_x`` from the batch when ``localisation_weight > 0``, and
    ``localisation_item_weight`` (B,) when some items are to be left out of it)."""

    def __init__(self, generator: nn.Module, audio_cfg: AudioConfig, localisation_weight: float = 0.0,
                 localisation_offset_weight: float = 0.0):
        super().__init__()
        self.generator = generator
        self.audio_cfg = audio_cfg
        self.localisation_weight = float(localisation_weight)
        self.localisation = LocalisationHead() if self.localisation_weight > 0 else None
        self.localisation_offset_weight = float(localisation_offset_weight)
        if self.localisation_offset_weight > 0 and self.localisation is None:
            raise ValueError("localisation_offset_weight > 0 needs localisation_weight > 0")
        self.position_offset = None
        if self.localisation_offset_weight > 0:
            _, h, w = generator.visual_map_shape
            self.position_offset = PositionOffsetHead(math.prod(generator.map_feature_shape) // (h * w))
        # True: score the mirror-averaged outputs (recipes.mirror_averaged_loss)
        self.mirror_averaged = False
        # how the crops' spectrograms are framed (train.stft_framing)
        self.stft_framing = "centered"

    def losses(self, mono: torch.Tensor, side: torch.Tensor, out: dict) -> dict:
        """The recipe's own loss dict (with ``"total"``) from the generator's outputs."""
        raise NotImplementedError

    def forward(self, audio: torch.Tensor, frames: torch.Tensor, source_x=None,
                localisation_item_weight=None) -> dict:
        mono, side = mono_side_specs(audio, self.audio_cfg, self.stft_framing)
        if self.mirror_averaged:
            return self._mirror_averaged_forward(mono, side, frames, source_x, localisation_item_weight)
        fmap = self.generator.trunk_map(frames)
        feature = self.generator.feature_from_map(fmap)
        out = self.generator.audio_outputs(mono, feature)
        return add_localisation(self, self.losses(mono, side, out), fmap, feature, source_x,
                                localisation_item_weight)

    def _mirror_averaged_forward(self, mono, side, frames, source_x, item_weight=None) -> dict:
        """The losses of the mirror-averaged outputs: the frames and their mirror images go through
        the generator as one batch of 2B; the localisation loss (if on) sees both, the mirrored
        boxes at ``1 - x``."""
        b = frames.shape[0]
        fmap = self.generator.trunk_map(torch.cat([frames, frames.flip(2)], dim=0))
        feature = self.generator.feature_from_map(fmap)
        both = self.generator.audio_outputs(torch.cat([mono, mono], dim=0), feature)
        out = mirror_averaged_outputs({k: v[:b] for k, v in both.items()}, {k: v[b:] for k, v in both.items()})
        if source_x is not None:
            source_x = torch.cat([source_x, torch.where(source_x >= 0, 1.0 - source_x, source_x)], dim=0)
        if item_weight is not None:
            item_weight = torch.cat([item_weight, item_weight], dim=0)
        return add_localisation(self, self.losses(mono, side, out), fmap, feature, source_x, item_weight)


def mirror_averaged_outputs(own: dict, mirrored: dict) -> dict:
    """Average the generator's training outputs for frames (``own``) with those for the mirrored
    frames, ears swapped, as ``model.mirror_average`` does for the exported masks: ``"side"``
    ``(B, 2, 256, T)`` -> ``(own - mirrored) / 2``; ``"left_right"`` ``(B, 2, 2, 256, T)`` ->
    ``(own + mirrored with left/right swapped) / 2``. Other keys are refused (no rule for them)."""
    if set(own) != set(mirrored):
        raise ValueError(f"own and mirrored outputs must have the same keys, got {sorted(own)} and {sorted(mirrored)}")
    unknown = sorted(set(own) - {"side", "left_right"})
    if unknown:
        raise ValueError(f"no mirror-averaging rule for outputs {unknown} (known: side, left_right)")
    out = {}
    if "side" in own:
        out["side"] = average_mirrored_masks_torch(own["side"][:, None], mirrored["side"][:, None], "side")[:, 0]
    if "left_right" in own:
        out["left_right"] = average_mirrored_masks_torch(own["left_right"], mirrored["left_right"], "left_right")
    return out


class LocalisationRecipeMixin:
    """Recipe side of the optional localisation loss (put before Recipe in the bases): builds
    ``step_class``, logs the extra loss, asks the dataset for source positions and passes them."""

    step_class = LocalisedStep

    def __init__(self, config):
        super().__init__(config)
        if config.recipes.localisation_weight > 0:
            self.loss_names = type(self).loss_names + ("localisation",)
        if config.recipes.localisation_offset_weight > 0:
            self.loss_names = self.loss_names + ("localisation_offset",)

    def make_step_module(self, generator):
        step = self.step_class(generator, self.config.audio, self.config.recipes.localisation_weight,
                               self.config.recipes.localisation_offset_weight)
        step.mirror_averaged = bool(self.config.recipes.mirror_averaged_loss)
        step.stft_framing = self.config.train.stft_framing
        return step

    @classmethod
    def dataset_options(cls, config) -> dict:
        return localisation_options(config)

    def step_inputs(self, batch: dict, device) -> dict:
        return localisation_inputs(self.config, batch, device)
