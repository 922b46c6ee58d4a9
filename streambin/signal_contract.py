"""The signal contract that training, evaluation, export and the engine share.

One owner for the steps every part of streambin repeats around a model:

- **network input**: the mono spectrogram context (real, imag as two channels) scaled by
  ``input_rms / max(rms, rms_floor)``, where ``rms`` is the RMS of the mono samples behind
  the context (the papers normalise each crop's mono to RMS 0.1);
- **mirror averaging** (optional): the masks for a frame averaged with the masks for its
  left-right mirror image with the ears swapped (side mask ``(m - m') / 2``; left and right
  masks ``(m_l + m'_r) / 2`` and ``(m_r + m'_l) / 2``), so that a mirrored picture swaps the
  ears exactly and a picture that is its own mirror image (uniform grey) gives L = R;
- **side gain** (optional, default 1): the part of the masks that differs between the ears
  scaled by ``g``, what they share kept (side mask ``g S``; left and right masks
  ``c ± g d`` with ``c = (mL + mR) / 2``, ``d = (mL - mR) / 2``). The output's mid
  ``(L + R) / 2`` is unchanged and its side ``(L - R) / 2`` is ``g`` times as large: a stereo
  width control. Fitted on validation data (``streambin.train.calibrate_side_gain``) it
  undoes a model's shrunken level differences; a bundle may store one (``streambin.bundle``);
- **mask application**: the masks multiply the *raw* (unscaled) mono spectrogram ``M``;
  ``"side"``: one complex mask ``S``, ``L = M + S M``, ``R = M - S M``; ``"left_right"``: two
  complex masks, ``L = mL M``, ``R = mR M``.

The numpy functions are what the CPU engine and the export checks use (masks through
:func:`streambin.dsp.apply_mask`, i.e. the native core); the ``*_torch`` functions are what
training and the offline evaluation use, side by side so a change lands in both. torch is
imported only inside the ``*_torch`` functions: the runtime never needs it.

Framing (which samples a context holds) differs by default between training (``center=True``
crops, :func:`stft_torch`) and streaming (causal frames, ``streambin.dsp.StreamingSTFT``);
``tests/test_signal_contract.py`` shows where they agree. ``stft_torch(..., framing="stream")``
frames a training crop the engine's way (``train.stft_framing``).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from streambin import dsp

INPUT_RMS = 0.1        # RMS the network input's mono is scaled to
RMS_FLOOR = 1e-4       # below this the scale stops growing (silence stays silence)
MASK_KINDS = ("side", "left_right")
# streambin.dsp.apply_mask's mode for each mask kind (the native core's names).
DSP_MASK_MODES = {"side": "side", "left_right": "direct"}


def _check_levels(input_rms: float, rms_floor: float) -> None:
    if not (math.isfinite(input_rms) and input_rms > 0 and math.isfinite(rms_floor) and rms_floor > 0):
        raise ValueError(f"input_rms and rms_floor must be finite and > 0, got {input_rms!r}, {rms_floor!r}")


def input_scale_from_rms(rms: float, input_rms: float = INPUT_RMS, rms_floor: float = RMS_FLOOR) -> float:
    """``input_rms / max(rms, rms_floor)``: the factor the network input is scaled by."""
    _check_levels(input_rms, rms_floor)
    if not (rms >= 0):
        raise ValueError(f"rms must be a number >= 0, got {rms!r}")
    return input_rms / max(float(rms), rms_floor)


def input_scale(samples: np.ndarray, input_rms: float = INPUT_RMS, rms_floor: float = RMS_FLOOR) -> float:
    """The network-input scale for the mono ``samples`` ``(n,)`` float behind a context.

    The mean square is a dot product (no temporary array), in the samples' own precision.
    """
    x = np.asarray(samples)
    if x.ndim != 1 or x.size == 0 or x.dtype.kind != "f":
        raise ValueError(f"samples must be (n,) float with n >= 1, got shape {x.shape} dtype {x.dtype}")
    rms = float(np.sqrt(np.dot(x, x) / x.size))
    return input_scale_from_rms(rms, input_rms, rms_floor)


def network_input(frames: np.ndarray, scale: float, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Network input from a context of mono frames.

    ``frames``: ``(T, F)`` complex, oldest first (how the engine keeps its ring);
    ``out``: optional ``(2, F, T)`` float32 destination (written in place, no allocation).
    Returns ``(2, F, T)`` float32: ``scale * (real, imag)``, bins by frames.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 2 or frames.dtype.kind != "c":
        raise ValueError(f"frames must be a (T, F) complex array, got {getattr(frames, 'shape', type(frames))}")
    T, F = frames.shape
    if out is None:
        out = np.empty((2, F, T), np.float32)
    elif out.shape != (2, F, T) or out.dtype != np.float32:
        raise ValueError(f"out must be (2, {F}, {T}) float32, got {out.shape} {out.dtype}")
    np.multiply(frames.real.T, scale, out=out[0])
    np.multiply(frames.imag.T, scale, out=out[1])
    return out


def apply_masks(frames: np.ndarray, masks: np.ndarray, mask_kind: str,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """Left and right ear frames from mono frames and the model's masks (native core).

    ``frames``: ``(k, F)`` complex64 raw mono frames; ``masks``: ``(n_masks, 2, F, k)`` float32
    (real, imag), a strided view is fine; ``out``: optional ``(2, k, F)`` complex64.
    Returns ``(2, k, F)`` complex64 (left, right).
    """
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    return dsp.apply_mask(frames, masks, out=out, mode=DSP_MASK_MODES[mask_kind])


def average_mirrored_masks(own: np.ndarray, mirrored: np.ndarray, mask_kind: str,
                           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Mirror averaging (module docstring) of the masks for one context.

    ``own``, ``mirrored``: ``(n_masks, 2, F, k)`` float32, the masks for the frame and for its
    mirror image (strided views are fine); ``out``: optional ``(n_masks, 2, F, k)`` float32
    destination (no allocation). Returns ``(n_masks, 2, F, k)`` float32.
    """
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    n_masks = 1 if mask_kind == "side" else 2
    if own.ndim != 4 or own.shape[:2] != (n_masks, 2) or mirrored.shape != own.shape:
        raise ValueError(f"own and mirrored must both be (n_masks={n_masks}, 2, F, k) for mask_kind "
                         f"{mask_kind!r}, got {own.shape} and {mirrored.shape}")
    if out is None:
        out = np.empty(own.shape, np.float32)
    elif out.shape != own.shape or out.dtype != np.float32:
        raise ValueError(f"out must be {own.shape} float32, got {out.shape} {out.dtype}")
    if mask_kind == "side":
        np.subtract(own, mirrored, out=out)          # the mirrored side mask changes sign
    else:
        np.add(own, mirrored[::-1], out=out)         # the left and right masks trade places
    np.multiply(out, 0.5, out=out)
    return out


#: Largest side gain accepted: beyond it the output is mostly side, far outside what a model's
#: calibration could ask for.
MAX_SIDE_GAIN = 4.0


def check_side_gain(gain) -> float:
    """``gain`` as a float in [0, MAX_SIDE_GAIN] (0: mono output, 1: the model's own output), or
    ValueError naming the range."""
    if isinstance(gain, (bool, np.bool_)) or not isinstance(gain, (int, float, np.integer, np.floating)) \
            or not math.isfinite(gain) or not 0.0 <= gain <= MAX_SIDE_GAIN:
        raise ValueError(f"side_gain must be a number in [0, {MAX_SIDE_GAIN:g}] (1: the model's own output, "
                         f"0: mono), got {gain!r}")
    return float(gain)


def scale_side(masks: np.ndarray, gain: float, mask_kind: str, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The side gain (module docstring) applied to the masks for one context.

    ``masks``: ``(n_masks, 2, F, k)`` float32 (a strided view is fine); ``gain``: float in
    [0, MAX_SIDE_GAIN]; ``out``: optional ``(n_masks, 2, F, k)`` float32 destination (may be
    ``masks`` itself). Returns ``(n_masks, 2, F, k)`` float32.
    """
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    gain = check_side_gain(gain)
    n_masks = 1 if mask_kind == "side" else 2
    if masks.ndim != 4 or masks.shape[:2] != (n_masks, 2):
        raise ValueError(f"masks must be (n_masks={n_masks}, 2, F, k) for mask_kind {mask_kind!r}, got {masks.shape}")
    if out is None:
        out = np.empty(masks.shape, np.float32)
    elif out.shape != masks.shape or out.dtype != np.float32:
        raise ValueError(f"out must be {masks.shape} float32, got {out.shape} {out.dtype}")
    if mask_kind == "side":
        np.multiply(masks, gain, out=out)
        return out
    # c ± g d = (1 ± g) / 2 mL + (1 ∓ g) / 2 mR, each ear from both masks read before writing.
    src = masks.copy() if np.shares_memory(out, masks) else masks
    left, right = out[0], out[1]                 # c + g d and c - g d, built in place:
    np.subtract(src[0], src[1], out=right)       # 2 d
    np.add(src[0], src[1], out=left)             # 2 c
    np.multiply(right, 0.5 * gain, out=right)    # g d
    np.multiply(left, 0.5, out=left)             # c
    np.add(left, right, out=left)                # c + g d
    np.multiply(right, -2.0, out=right)
    np.add(right, left, out=right)               # c + g d - 2 g d
    return out


def scale_side_output(binaural: np.ndarray, gain: float) -> np.ndarray:
    """The side gain applied to an output signal: ``(2, n)`` float (left, right) -> ``(2, n)``
    float32 with the same mid ``(L + R) / 2`` and ``gain`` times its side ``(L - R) / 2``.

    Masks act linearly on the mono spectrogram and the STFT is linear, so this equals the
    output of :func:`scale_side`'s masks (the offline evaluation uses it on whole predictions).
    """
    gain = check_side_gain(gain)
    x = np.asarray(binaural, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(f"binaural must be (2, n) (left, right), got shape {x.shape}")
    mid, side = 0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])
    return np.stack([mid + gain * side, mid - gain * side])


# -- torch side: training and the offline evaluation ------------------------------------------


STFT_FRAMINGS = ("centered", "stream")


def stft_torch(x, n_fft: int, hop: int, win_length: int, pad_mode: str = "reflect", framing: str = "centered"):
    """The model STFT of training crops: ``(B, n)`` float -> ``(B, n_fft//2+1, 1 + n//hop)`` complex.

    Periodic Hann of ``win_length`` centred in ``n_fft``. ``framing``:

    - ``"centered"``: ``center=True``, frame ``t`` centred on sample ``t * hop``; the first and
      last frames reach ``n_fft // 2`` samples past the crop (``pad_mode`` fills them);
    - ``"stream"``: the engine's causal frames (``streambin.dsp.StreamingSTFT``) as if the crop
      ended at the newest sample: the last frame's window is the crop's last ``win_length``
      samples and each earlier one ends ``hop`` samples sooner (frame ``t`` of ``T`` ends at
      sample ``n - (T - 1 - t) * hop``). Only the oldest frames reach before the crop (filled by
      ``pad_mode``); the newest ones hold real samples, as in the engine's context. Same frame
      count as ``"centered"``.
    """
    import torch

    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be (B, n) float, got {tuple(x.shape)} {x.dtype}")
    if framing not in STFT_FRAMINGS:
        raise ValueError(f"framing must be one of {STFT_FRAMINGS}, got {framing!r}")
    window = torch.hann_window(win_length, periodic=True, dtype=x.dtype, device=x.device)
    if framing == "centered":
        return torch.stft(x, n_fft, hop_length=hop, win_length=win_length, window=window, center=True,
                          pad_mode=pad_mode, return_complex=True)
    # The window sits (n_fft - win_length) / 2 samples into its n_fft frame. Padding the front so
    # that the last frame's window ends at the crop's end, and the back by the frame's unwindowed
    # tail (multiplied by zero), gives 1 + n // hop frames like center=True.
    n = x.shape[-1]
    frames = 1 + n // hop
    tail = (n_fft - win_length) // 2
    front = (frames - 1) * hop + n_fft - tail - n
    if front >= n and pad_mode == "reflect":
        raise ValueError(f"a {n}-sample crop is too short to reflect {front} samples before it")
    padded = torch.nn.functional.pad(x[:, None], (front, 0), mode=pad_mode)[:, 0]
    padded = torch.nn.functional.pad(padded, (0, tail))
    return torch.stft(padded, n_fft, hop_length=hop, win_length=win_length, window=window, center=False,
                      return_complex=True)


def input_scale_torch(samples, input_rms: float = INPUT_RMS, rms_floor: float = RMS_FLOOR):
    """Per-row network-input scale: ``(B, n)`` float mono samples -> ``(B,)``."""
    _check_levels(input_rms, rms_floor)
    if samples.dim() != 2 or not samples.is_floating_point():
        raise ValueError(f"samples must be (B, n) float, got {tuple(samples.shape)} {samples.dtype}")
    rms = samples.pow(2).mean(dim=1).sqrt()
    return input_rms / rms.clamp(min=rms_floor)


def network_input_torch(spec, scale):
    """``spec`` ``(B, F, T)`` complex, ``scale`` ``(B,)`` -> ``(B, 2, F, T)`` real (real, imag)."""
    import torch

    if spec.dim() != 3 or not spec.is_complex():
        raise ValueError(f"spec must be (B, F, T) complex, got {tuple(spec.shape)} {spec.dtype}")
    return torch.stack([spec.real, spec.imag], dim=1) * scale.reshape(-1, 1, 1, 1)


def apply_masks_torch(spec, masks, mask_kind: str):
    """``spec`` ``(B, F, T)`` complex raw mono, ``masks`` ``(B, n_masks, 2, F, T)`` real ->
    ``(B, 2, F, T)`` complex (left, right)."""
    import torch

    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    n_masks = 1 if mask_kind == "side" else 2
    B, F, T = spec.shape
    if tuple(masks.shape) != (B, n_masks, 2, F, T):
        raise ValueError(f"masks must be (B, n_masks, 2, F, T) = {(B, n_masks, 2, F, T)} for mask_kind "
                         f"{mask_kind!r}, got {tuple(masks.shape)}")
    cm = torch.complex(masks[:, :, 0].float(), masks[:, :, 1].float())     # (B, n_masks, F, T)
    if mask_kind == "side":
        side = cm[:, 0] * spec
        return torch.stack([spec + side, spec - side], dim=1)
    return cm * spec[:, None]


def average_mirrored_masks_torch(own, mirrored, mask_kind: str):
    """:func:`average_mirrored_masks` on batches: ``(B, n_masks, 2, F, T)`` each -> the same shape."""
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    if own.dim() != 5 or tuple(mirrored.shape) != tuple(own.shape):
        raise ValueError(f"own and mirrored must both be (B, n_masks, 2, F, T), got {tuple(own.shape)} "
                         f"and {tuple(mirrored.shape)}")
    swapped = -mirrored if mask_kind == "side" else mirrored.flip(1)
    return 0.5 * (own + swapped)
