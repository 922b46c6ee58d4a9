"""Audio U-Net of Mono2Binaural (Gao & Grauman, CVPR 2019), with the visual feature at the bottleneck.

Layout (``ngf`` = 64 in the paper, ``F`` = flattened visual feature size, 784 at 224x448):

    input (B, 2, 256, T)                 normalised mono spectrogram, real/imag, Nyquist dropped
                                         (or (B, 2, 257, T) with nyquist_input, see below)
    down1..5: Conv2d k4 s2 p1 + BN + LeakyReLU(0.2)   2 -> ngf -> 2ngf -> 4ngf -> 8ngf -> 8ngf
    bottleneck (8ngf, 8, T/32) ++ visual feature tiled over it (F channels)
    up1: ConvT k4 s2 p1 + BN + ReLU      8ngf+F -> 8ngf
    up2..up4 (input concatenated with the matching down output): -> 4ngf -> 2ngf -> ngf
    up5: ConvT 2ngf -> 2, Sigmoid, *2-1  complex mask in [-1, 1], (B, 2, 256, T)

Streaming only plays the newest few mask columns of each run, so ``forward(..., last_frames=K)``
returns just the last ``K`` columns and computes only what they depend on: each transposed
convolution (k4 s2 p1) output column ``o`` reads input columns ``(o - 2) // 2 + 1 .. (o + 1) // 2``
(:func:`decoder_starts`), so every decoder stage runs on the tail of its input that the stage
after it needs. The result equals the full mask's last ``K`` columns (same operations on the
same values); at T = 64 and K = 16 the decoder does 45 % of its multiply-adds. The encoder still
sees all ``T`` columns: the bottleneck (``T/32`` columns) mixes the whole context.

``forward`` also takes one context for several features (``spec`` batch 1, ``feature`` batch B):
the encoder, which sees only the audio, runs once and its outputs serve every feature. The
streaming engine's mirror averaging is that case (the frame's and its mirror image's feature
over the same context).

Weights are initialised N(0, 0.02) (convs) and N(1, 0.02) (BN weights), as in the reference;
conv biases keep PyTorch's default initialisation, as in the reference.

The generator's ``nyquist_input``: the reference feeds all 257 bins to down1 (k4 s2 p1 maps
257 rows to 128, as it maps 256), so the Nyquist bin only replaces the zero padding row that
down1's top output row sees; weights are the same tensors either way. Off by default
(streambin's choice, see docs/architecture.md "The Nyquist bin").
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn


def down_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv2d k4 s2 p1 + BN + LeakyReLU(0.2): halves both spatial dimensions."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 4, 2, 1),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2))


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """ConvTranspose2d k4 s2 p1 + BN + ReLU: doubles both spatial dimensions."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


def mask_head(in_channels: int) -> nn.Sequential:
    """ConvTranspose2d k4 s2 p1 -> 2 channels (real, imag) + Sigmoid; the caller maps to [-1, 1]."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, 2, 4, 2, 1), nn.Sigmoid())


def init_weights(module: nn.Module) -> None:
    """The reference initialisation (its ``weights_init``): conv weights N(0, 0.02), BN weight
    N(1, 0.02) and bias 0. Conv biases keep PyTorch's default (uniform in +-1/sqrt(fan_in)), as
    the reference's, which sets conv weights only."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# Decoder stages (up1..up4, head), each doubling the time axis.
N_UP_STAGES = 5


def decoder_starts(frames: int, last_frames: int) -> Tuple[int, ...]:
    """First input column of each decoder stage (up1, up2, up3, up4, head) such that the stage
    outputs, after dropping their leading columns, are exact for the last ``last_frames`` of
    ``frames`` mask columns. A k4 s2 p1 transposed convolution run on input columns ``s..``
    reproduces the full convolution's outputs from column ``2 * s + 1`` on (column ``2 * s``
    misses input ``s - 1``), so the stage producing columns from ``o`` starts at
    ``max((o - 1) // 2, 0)``."""
    if not 1 <= last_frames <= frames:
        raise ValueError(f"last_frames must be in [1, {frames}] (the context), got {last_frames}")
    starts = []
    first = frames - last_frames          # first mask column wanted
    for _ in range(N_UP_STAGES):
        first = max((first - 1) // 2, 0)  # first input column this stage needs
        starts.append(first)
    return tuple(reversed(starts))


class AudioUNet(nn.Module):
    """Mono2Binaural audio U-Net: ``(B, 2, 256, T)`` spec + ``(B, F)`` feature -> ``(B, 2, 256, T)`` mask.

    ``T`` must be a multiple of 32. The spec may also have 257 rows (Nyquist bin included, the
    generator's ``nyquist_input``); the mask has 256 either way. :meth:`forward_features` also returns the outputs of
    up1..up4 (channels 8ngf, 4ngf, 2ngf, ngf at 1/16, 1/8, 1/4, 1/2 resolution) for APNet.
    """

    def __init__(self, ngf: int, visual_features: int):
        super().__init__()
        if ngf < 1 or visual_features < 1:
            raise ValueError(f"ngf and visual_features must be >= 1, got {ngf}, {visual_features}")
        self.ngf = ngf
        self.visual_features = visual_features
        self.down1 = down_block(2, ngf)
        self.down2 = down_block(ngf, 2 * ngf)
        self.down3 = down_block(2 * ngf, 4 * ngf)
        self.down4 = down_block(4 * ngf, 8 * ngf)
        self.down5 = down_block(8 * ngf, 8 * ngf)
        self.up1 = up_block(8 * ngf + visual_features, 8 * ngf)
        self.up2 = up_block(16 * ngf, 4 * ngf)
        self.up3 = up_block(8 * ngf, 2 * ngf)
        self.up4 = up_block(4 * ngf, ngf)
        self.head = mask_head(2 * ngf)
        init_weights(self)

    def forward_features(self, spec: torch.Tensor, feature: torch.Tensor
                         ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Returns ``(mask (B, 2, 256, T) in [-1, 1], [up1, up2, up3, up4] outputs)``."""
        d1 = self.down1(spec)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        # Tile the flattened visual feature over every bottleneck position (8 x T/32).
        tiled = feature[:, :, None, None].expand(-1, -1, d5.shape[2], d5.shape[3])
        u1 = self.up1(torch.cat([d5, tiled], dim=1))
        u2 = self.up2(torch.cat([u1, d4], dim=1))
        u3 = self.up3(torch.cat([u2, d3], dim=1))
        u4 = self.up4(torch.cat([u3, d2], dim=1))
        mask = self.head(torch.cat([u4, d1], dim=1)) * 2.0 - 1.0
        return mask, [u1, u2, u3, u4]

    def forward(self, spec: torch.Tensor, feature: torch.Tensor, last_frames: Optional[int] = None) -> torch.Tensor:
        """``(S, 2, 256, T)``, ``(B, F)`` -> side mask ``(B, 2, 256, T)`` in [-1, 1]; with
        ``last_frames = K``: its last ``K`` columns ``(B, 2, 256, K)``, computed from only what
        they need (module docstring). ``S`` is ``B``, or 1: one context under all ``B``
        features, encoded once (the streaming engine's mirror averaging runs one context with
        the frame's and the mirror image's features)."""
        if spec.shape[0] != 1 and spec.shape[0] != feature.shape[0]:
            raise ValueError(f"spec must have batch 1 or the feature's batch {feature.shape[0]}, "
                             f"got {tuple(spec.shape)}")
        frames = int(spec.shape[3])
        last = frames if last_frames is None else int(last_frames)
        starts = decoder_starts(frames, last)
        batch = feature.shape[0]
        d1 = self.down1(spec)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        # The encoder outputs each decoder stage reads, from its first needed column, one per
        # feature (a view when the batches already match).
        skips = [_from_column(d, s).expand(batch, -1, -1, -1) for d, s in zip((d5, d4, d3, d2, d1), starts)]
        # Tile the flattened visual feature over every bottleneck position (8 x T/32).
        tiled = feature[:, :, None, None].expand(-1, -1, d5.shape[2], d5.shape[3] - starts[0])
        x = torch.cat([skips[0], tiled], dim=1)
        # Each stage runs on its inputs from column starts[k] (its output column 0 stands for
        # full column 2 * starts[k]) and keeps its outputs from the next stage's start.
        keep = list(starts[1:]) + [frames - last]
        for k, stage in enumerate((self.up1, self.up2, self.up3, self.up4, self.head)):
            y = _from_column(stage(x), keep[k] - 2 * starts[k])
            if k + 1 < len(skips):
                x = torch.cat([y, skips[k + 1]], dim=1)
        return y * 2.0 - 1.0


def _from_column(x: torch.Tensor, first: int) -> torch.Tensor:
    """``x[..., first:]``, left as is when ``first`` is 0 (no copy, no graph node)."""
    return x if first == 0 else x[..., first:]
