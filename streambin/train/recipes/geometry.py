"""Geometry-aware multi-task recipe (Garg, Gao & Grauman, "Geometry-Aware Multi-Task Learning
for Binaural Audio Generation from Video", BMVC 2021).

Backbone (``model.arch = "apnet"``): ResNet-18 visual map ``V (512, h, w)``, the U-Net and the
APNet fusion heads, as the paper's binaural generator. Losses (normalised domain, 256 bins):

- binaural: ``L_B = MSE(side_mask * M, D) + MSE(maskL*M - M, D) + MSE(M - maskR*M, D)``;
- spatial coherence: the ground-truth binaural spectrogram with left/right swapped for a random
  half of the batch (``y = 1`` when swapped, i.e. the audio is mirrored with respect to the
  frame) and ``V`` go to a classifier (binaural encoder + pooled visual map + MLP):
  ``L_S = BCE(sigmoid(z), y)``;
- geometric consistency: frames about ``recipes.geometry_frame_gap_s`` apart (the dataset's
  ``frame2``) show the same room, so their features should be close up to a margin
  ``alpha = recipes.geometry_margin``: with unit-normalised flattened maps ``v1, v2``,
  ``L_G = mean_batch max(0, |v1 - v2|^2 - alpha)`` (``alpha`` 0.1 is ours);
- room impulse response prediction: a decoder maps pooled ``V`` to the magnitude spectrogram
  ``P (2, 256, T_r)`` of the binaural room IR of the clip's first source (the ground truth the
  synthetic scenes record, ``brirs/<clip>.npy``, first ``recipes.geometry_rir_samples``
  samples, same STFT as the audio: ``T_r = 1 + n // hop``, which must be a multiple of 32);
  ``L_P = MSE(P^, P) + w_rt * |RT60(P^) - RT60(P)|`` with ``w_rt = recipes.geometry_rt60_weight``.
  ``RT60`` is a differentiable Schroeder estimate on the spectrogram: frame energies
  ``e_t = sum P^2``, energy decay curve ``EDC_t = sum_{s >= t} e_s`` in dB re ``EDC_0``, least-
  squares slope (dB/s) over the frames whose EDC lies in [-25, -5] dB (T20; the first two
  frames when fewer qualify), ``RT60 = -60 / min(slope, -30 dB/s)`` (so at most 2 s). The same
  estimator is applied to prediction and ground truth.
- ``total = l_B L_B + l_S L_S + l_G L_G + l_P L_P``, ``recipes.geometry_lambdas = (10, 1, 0.01, 1)``.

Only the binaural generator is exported (mask kind "left_right"); classifier and RIR decoder
are training-only. Needs ``with_rir`` / ``with_second_frame`` items (SimBinaural-lite layout).
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from streambin.nets.resnet import ResNet18Trunk
from streambin.nets.unet import init_weights, up_block
from streambin.train.config import AudioConfig, Config
from streambin.train.losses import left_right_loss, mono_side_specs, side_loss, spectrogram
from streambin.train.recipes.base import Recipe, register_recipe
from streambin.train.recipes.parts import UNET_BINS, FlipClassifier, left_right_specs, random_channel_swap


def rir_frames(rir_samples: int, audio_cfg: AudioConfig) -> int:
    """STFT frames of an IR of ``rir_samples`` (centred STFT): ``1 + rir_samples // hop``."""
    return 1 + rir_samples // audio_cfg.hop


def rir_magnitude(rir: torch.Tensor, audio_cfg: AudioConfig) -> torch.Tensor:
    """``(B, 2, n)`` binaural IR -> magnitude spectrogram ``(B, 2, 256, 1 + n // hop)``."""
    if rir.dim() != 3 or rir.shape[1] != 2:
        raise ValueError(f"rir must be (B, 2, n) float32, got {tuple(rir.shape)}")
    b, _, n = rir.shape
    spec = spectrogram(rir.reshape(2 * b, n), audio_cfg)[:, :, :UNET_BINS]     # (2B, 2, 256, T)
    mag = torch.sqrt(spec.pow(2).sum(1) + 1e-12)
    return mag.reshape(b, 2, UNET_BINS, -1)


def rt60_from_magnitude(mag: torch.Tensor, frame_s: float) -> torch.Tensor:
    """Differentiable RT60 (s) of ``(B, C, F, T)`` magnitude spectrograms -> ``(B,)`` (see module doc)."""
    if mag.dim() != 4 or mag.shape[3] < 2:
        raise ValueError(f"mag must be (B, C, F, T) with T >= 2, got {tuple(mag.shape)}")
    e = mag.pow(2).sum(dim=(1, 2))                                          # (B, T)
    edc = torch.flip(torch.cumsum(torch.flip(e, [1]), 1), [1])
    db = 10.0 * torch.log10(edc / edc[:, :1].clamp_min(1e-20) + 1e-12)
    with torch.no_grad():
        sel = (db <= -5.0) & (db >= -25.0)
        few = sel.sum(1, keepdim=True) < 2
        first_two = torch.zeros_like(sel)
        first_two[:, :2] = True
        sel = torch.where(few, first_two, sel)
    w = sel.to(mag.dtype)
    t = torch.arange(mag.shape[3], device=mag.device, dtype=mag.dtype) * frame_s
    n = w.sum(1)
    t_mean = (w * t).sum(1) / n
    d_mean = (w * db).sum(1) / n
    slope = (w * (t - t_mean[:, None]) * (db - d_mean[:, None])).sum(1) / \
        (w * (t - t_mean[:, None]).pow(2)).sum(1).clamp_min(1e-12)
    return -60.0 / torch.clamp(slope, max=-30.0)


class RIRDecoder(nn.Module):
    """Pooled visual map ``(B, 512, h, w)`` -> IR magnitude spectrogram ``(B, 2, 256, T_r)`` >= 0."""

    def __init__(self, visual_channels: int, ngf: int, frames: int):
        super().__init__()
        if frames % 32 != 0:
            raise ValueError(f"the RIR spectrogram needs a multiple of 32 frames, got {frames}")
        self.seed_shape = (8 * ngf, UNET_BINS // 32, frames // 32)
        self.fc = nn.Linear(visual_channels, self.seed_shape[0] * self.seed_shape[1] * self.seed_shape[2])
        self.up = nn.Sequential(up_block(8 * ngf, 4 * ngf), up_block(4 * ngf, 2 * ngf),
                                up_block(2 * ngf, ngf), up_block(ngf, ngf),
                                nn.ConvTranspose2d(ngf, 2, 4, 2, 1), nn.Softplus())
        init_weights(self)

    def forward(self, visual_map: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(visual_map.mean(dim=(2, 3))))
        return self.up(x.view(x.shape[0], *self.seed_shape))


class GeometryStep(nn.Module):
    """``forward(audio, frames, frame2, rir) -> {"binaural", "coherence", "geometric", "rir", "total"}``."""

    def __init__(self, generator: nn.Module, config: Config):
        super().__init__()
        if generator.arch != "apnet":
            raise ValueError("the geometry recipe needs an APNet generator (model.arch 'apnet')")
        r = config.recipes
        self.generator = generator
        self.audio_cfg = config.audio
        self.lambdas, self.margin, self.rt60_weight = r.geometry_lambdas, r.geometry_margin, r.geometry_rt60_weight
        self.rir_samples = r.geometry_rir_samples
        self.classifier = FlipClassifier(ResNet18Trunk.out_channels, config.model.ngf)
        self.rir_decoder = RIRDecoder(ResNet18Trunk.out_channels, config.model.ngf,
                                      rir_frames(r.geometry_rir_samples, config.audio))

    def forward(self, audio: torch.Tensor, frames: torch.Tensor, frame2: torch.Tensor,
                rir: torch.Tensor) -> Dict[str, torch.Tensor]:
        if rir.dim() != 3 or tuple(rir.shape[:2]) != (audio.shape[0], 2) or rir.shape[2] != self.rir_samples:
            raise ValueError(f"rir must be ({audio.shape[0]}, 2, {self.rir_samples}) float32, got {tuple(rir.shape)}")
        mono, side = mono_side_specs(audio, self.audio_cfg)
        fmap = self.generator.trunk_map(frames)
        out = self.generator.audio_outputs(mono, self.generator.feature_from_map(fmap))
        l_b = side_loss(out["side"], mono, side) + left_right_loss(out["left_right"], mono, side)

        swapped, label = random_channel_swap(audio)
        l_s = F.binary_cross_entropy_with_logits(
            self.classifier(left_right_specs(swapped, self.audio_cfg), fmap), label)

        v1 = F.normalize(fmap.flatten(1), dim=1)
        v2 = F.normalize(self.generator.trunk_map(frame2).flatten(1), dim=1)
        l_g = torch.relu((v1 - v2).pow(2).sum(1) - self.margin).mean()

        target = rir_magnitude(rir, self.audio_cfg)
        pred = self.rir_decoder(fmap)
        frame_s = self.audio_cfg.hop / self.audio_cfg.sample_rate
        l_p = F.mse_loss(pred, target) + self.rt60_weight * (
            rt60_from_magnitude(pred, frame_s) - rt60_from_magnitude(target, frame_s)).abs().mean()
        lb, ls, lg, lp = self.lambdas
        return {"binaural": l_b, "coherence": l_s, "geometric": l_g, "rir": l_p,
                "total": lb * l_b + ls * l_s + lg * l_g + lp * l_p}


@register_recipe
class GeometryRecipe(Recipe):
    name = "geometry"
    arch = "apnet"
    loss_names = ("binaural", "coherence", "geometric", "rir")

    def __init__(self, config):
        super().__init__(config)
        frames = rir_frames(config.recipes.geometry_rir_samples, config.audio)
        if frames % 32 != 0:
            raise ValueError(f"recipes.geometry_rir_samples = {config.recipes.geometry_rir_samples} gives "
                             f"{frames} STFT frames; it must give a multiple of 32 (e.g. "
                             f"{31 * config.audio.hop} or {63 * config.audio.hop} samples)")

    @classmethod
    def dataset_options(cls, config):
        r = config.recipes
        return {"with_second_frame": True, "second_frame_gap_s": r.geometry_frame_gap_s,
                "with_rir": True, "rir_samples": r.geometry_rir_samples}

    def step_inputs(self, batch, device):
        missing = [k for k in ("frame2", "rir") if k not in batch]
        if missing:
            raise ValueError(f"the geometry recipe needs batch fields {missing}: build the dataset with "
                             "with_second_frame=True, with_rir=True (Recipe.dataset_options)")
        return {"frame2": batch["frame2"].to(device, non_blocking=True),
                "rir": batch["rir"].to(device, non_blocking=True)}

    def make_step_module(self, generator):
        return GeometryStep(generator, self.config)
