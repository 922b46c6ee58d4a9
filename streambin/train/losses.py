"""Training-time spectrograms and the papers' losses (all in the normalised domain).

- :func:`spectrogram`: ``(B, n)`` waveform -> ``(B, 2, 257, T)`` real/imag, ``torch.stft`` with
  ``center=True`` (or ``framing="stream"``, the engine's causal frames), periodic Hann of
  ``win_length`` centred in ``n_fft`` (docs/architecture.md); 10080 samples give 64 frames.
- :func:`complex_mul`: mask x spectrogram with real/imag on dim -3.
- :func:`side_loss`: Mono2Binaural's loss, MSE between ``mask * M`` and the side spectrogram
  ``D`` over the stacked real/imag channels (256 bins, Nyquist dropped as the reference does);
  :func:`newest_frames_side_loss`: the same on the frames a streaming engine plays.
- :func:`left_right_loss`: APNet's head losses, see its docstring.
- :func:`level_difference_loss`: an optional term on the left/right level difference per band,
  which the MSE alone lets shrink toward zero where the prediction is uncertain.
  :func:`newest_frames_level_difference_loss`: the same on the frames a streaming engine plays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streambin.signal_contract import stft_torch
from streambin.train.config import LEVEL_DIFFERENCE_ERRORS, AudioConfig


def spectrogram(wave: torch.Tensor, audio_cfg: AudioConfig, framing: str = "centered") -> torch.Tensor:
    """``(B, n)`` float32 at ``audio_cfg.sample_rate`` -> ``(B, 2, n_fft//2+1, 1 + n//hop)`` (real, imag);
    ``framing`` as :func:`streambin.signal_contract.stft_torch`."""
    if wave.dim() != 2 or not wave.is_floating_point():
        raise ValueError(f"wave must be (B, n) float, got {tuple(wave.shape)} {wave.dtype}")
    spec = stft_torch(wave, audio_cfg.n_fft, audio_cfg.hop, audio_cfg.win_length, framing=framing)
    return torch.stack([spec.real, spec.imag], dim=1)


def mono_side_specs(audio: torch.Tensor, audio_cfg: AudioConfig, framing: str = "centered"):
    """``(B, 2, n)`` left/right -> ``(M, D)``, each ``(B, 2, 257, T)``; ``m = (L+R)/2``, ``D = (L-R)/2``."""
    if audio.dim() != 3 or audio.shape[1] != 2:
        raise ValueError(f"audio must be (B, 2, n) left/right float32, got {tuple(audio.shape)}")
    mono = 0.5 * (audio[:, 0] + audio[:, 1])
    side = 0.5 * (audio[:, 0] - audio[:, 1])
    return spectrogram(mono, audio_cfg, framing), spectrogram(side, audio_cfg, framing)


def complex_mul(mask: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """Complex product with (real, imag) on dim -3: ``(..., 2, F, T) x (..., 2, F, T)``."""
    if mask.shape[-3] != 2 or spec.shape[-3] != 2:
        raise ValueError(f"complex tensors need 2 (real, imag) channels on dim -3, got "
                         f"{tuple(mask.shape)} and {tuple(spec.shape)}")
    a, b = mask.select(-3, 0), mask.select(-3, 1)
    c, d = spec.select(-3, 0), spec.select(-3, 1)
    return torch.stack([a * c - b * d, a * d + b * c], dim=-3)


def side_loss(side_mask: torch.Tensor, mono: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """MSE(``side_mask * M``, ``D``) on the first ``side_mask.shape[-2]`` bins (256: Nyquist dropped).

    ``side_mask`` ``(B, 2, F', T)``, ``mono``/``side`` ``(B, 2, 257, T)``; returns a scalar.
    """
    nb = side_mask.shape[-2]
    return F.mse_loss(complex_mul(side_mask, mono[..., :nb, :]), side[..., :nb, :])


def played_frames(t: int, frames: int, lookahead: int) -> slice:
    """The ``frames`` frames of a ``t``-frame context that end ``lookahead`` frames before the
    newest: the ones a streaming engine with that block and lookahead plays from each context.
    Needs ``1 <= frames`` and ``frames + lookahead <= t``."""
    if frames < 1 or lookahead < 0 or frames + lookahead > t:
        raise ValueError(f"need frames >= 1, lookahead >= 0 and frames + lookahead <= T = {t}, "
                         f"got {frames} and {lookahead}")
    return slice(t - lookahead - frames, t - lookahead)


def newest_frames_side_loss(side_mask: torch.Tensor, mono: torch.Tensor, side: torch.Tensor,
                            frames: int, lookahead: int) -> torch.Tensor:
    """:func:`side_loss` on the :func:`played_frames` alone. Shapes as :func:`side_loss`."""
    span = played_frames(side_mask.shape[-1], frames, lookahead)
    return side_loss(side_mask[..., span], mono[..., span], side[..., span])


def newest_frames_level_difference_loss(side_mask: torch.Tensor, mono: torch.Tensor, side: torch.Tensor,
                                        frames: int, lookahead: int, error: str = "absolute") -> torch.Tensor:
    """:func:`level_difference_loss` on the :func:`played_frames` alone: the band level
    differences of the few frames the engine plays (30 ms at the default hop), a short-time
    counterpart of the per-0.1-s level differences that the SPL metric scores. Shapes as :func:`level_difference_loss`."""
    span = played_frames(side_mask.shape[-1], frames, lookahead)
    return level_difference_loss(side_mask[..., span], mono[..., span], side[..., span], error=error)


def left_right_loss(lr_masks: torch.Tensor, mono: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """APNet head loss: each head's implied side prediction against ``D``.

    ``lr_masks`` ``(B, 2, 2, F', T)`` (left, right). The left head predicts ``L^ = maskL*M``,
    whose side prediction is ``L^ - M``; the right head's is ``M - R^``. Returns
    ``MSE(L^ - M, D) + MSE(M - R^, D)`` (equal to ``MSE(L^, L) + MSE(R^, R)``), scalar.
    """
    nb = lr_masks.shape[-2]
    m, d = mono[..., :nb, :], side[..., :nb, :]
    left = complex_mul(lr_masks[:, 0], m)
    right = complex_mul(lr_masks[:, 1], m)
    return F.mse_loss(left - m, d) + F.mse_loss(m - right, d)


def level_difference_loss(side_mask: torch.Tensor, mono: torch.Tensor, side: torch.Tensor,
                          n_bands: int = 8, floor: float = 1e-3, error: str = "absolute") -> torch.Tensor:
    """Mean |predicted - true| left/right level difference (natural log of the power ratio), or
    with ``error="squared"`` the mean squared difference. Where the picture leaves the side
    uncertain, the absolute error is least at the median of the possible level differences, the
    squared error at their mean.

    The ears are ``M + S`` and ``M - S`` with ``S = side_mask * M`` predicted and ``S = D`` true.
    The first ``side_mask.shape[-2]`` bins are split into ``n_bands`` equal bands, and each ear's
    power is summed over each band and over all frames of the crop, so the term scores the
    level difference a listener hears over the crop rather than per bin. ``floor`` (relative
    to the crop's mean band power) keeps near-silent bands from dominating: their ratio tends to
    zero on both sides. ``side_mask`` ``(B, 2, F', T)``, ``mono``/``side`` ``(B, 2, 257, T)``;
    returns a scalar (1.0 = 4.3 dB mean error).
    """
    if error not in LEVEL_DIFFERENCE_ERRORS:
        raise ValueError(f"error must be one of {LEVEL_DIFFERENCE_ERRORS}, got {error!r}")
    nb = side_mask.shape[-2]
    if n_bands < 1 or nb % n_bands:
        raise ValueError(f"n_bands must divide the {nb} mask bins, got {n_bands}")
    m, d = mono[..., :nb, :], side[..., :nb, :]
    pred = complex_mul(side_mask, m)

    def band_power(spec):  # (B, 2, nb, T) -> (B, n_bands)
        power = spec.pow(2).sum(dim=1)
        return power.reshape(power.shape[0], n_bands, nb // n_bands, power.shape[-1]).sum(dim=(2, 3))

    true_l, true_r = band_power(m + d), band_power(m - d)
    eps = floor * (0.5 * (true_l + true_r)).mean(dim=1, keepdim=True) + 1e-12
    true_ld = torch.log(true_l + eps) - torch.log(true_r + eps)
    pred_ld = torch.log(band_power(m + pred) + eps) - torch.log(band_power(m - pred) + eps)
    diff = pred_ld - true_ld
    return diff.abs().mean() if error == "absolute" else diff.pow(2).mean()
