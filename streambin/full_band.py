"""Full-band output at the device rate from masks the model predicts on its own (16 kHz) grid.

The device-rate signal is analysed on the model's time grid: the same hop and window in seconds
(10 ms, 25 ms), ``n_fft`` scaled by ``sample_rate / model_rate`` (:func:`device_grid`). A device
frame then spans the model frame's time and device bin ``k`` below the model's Nyquist sits at
model bin ``k`` (at 44.1 kHz no whole ``n_fft`` gives 31.25 Hz bins; see below). Per block:

* network input: the model bins read off the device spectrum, times ``model_rate /
  sample_rate`` (a window of r times as many samples sums r times larger), i.e. what the
  16 kHz engine shows the network for the same band-limited sound (measured -50 dB apart on
  white noise). At 44.1 kHz they are computed at the model's exact frequencies from the
  device samples (a chirp-z transform);
* masks below the model's Nyquist: the model's, per bin (at 44.1 kHz linearly interpolated in
  frequency onto the device bins);
* masks above it: each ear's power gain over the mono, taken from the model's masks over its
  upper octave (4-8 kHz, weighted by the mono's power there) and smoothed over frames, applied
  flat up to the device's Nyquist and cross-faded in over the last 500 Hz of the model's band.
  With a side mask the extension is the one side mask D giving both ears those gains
  (``|1 + D|^2``, ``|1 - D|^2``), so ``(L + R) / 2`` stays the mono input over the whole band
  and a zero side mask extends to zero; with left/right masks, real per-ear gains.

No resampler sits in the audio path, so the delay is the device-rate STFT's alone
(streambin.latency_plan). Every buffer is allocated in ``__init__``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streambin import dsp

#: The model's band whose masks set the level above it (Hz), its upper octave.
REFERENCE_BAND_HZ = (4000.0, 8000.0)
#: Width (Hz) below the model's Nyquist over which its masks cross-fade into the extension.
BLEND_HZ = 500.0
#: Time constant (ms) of the extension's smoothing over frames.
SMOOTHING_MS = 50.0

@dataclass(frozen=True)
class DeviceGrid:
    """STFT parameters at the device rate on the model's time grid (samples at ``sample_rate``).

    ``exact``: device bin k is at model bin k's frequency (true when ``model_n_fft * sample_rate /
    model_rate`` is a whole number, e.g. 24, 32, 48, 96 kHz); otherwise masks and network input
    are interpolated in frequency (44.1, 88.2 kHz).
    """

    sample_rate: int
    n_fft: int
    win_length: int
    hop: int
    model_rate: int
    model_n_fft: int
    model_win_length: int

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def model_bins(self) -> int:
        return self.model_n_fft // 2 + 1

    @property
    def bin_hz(self) -> float:
        return self.sample_rate / self.n_fft

    @property
    def model_bin_hz(self) -> float:
        return self.model_rate / self.model_n_fft

    @property
    def exact(self) -> bool:
        return self.n_fft * self.model_rate == self.model_n_fft * self.sample_rate


def device_grid(sample_rate: int, model_rate: int, n_fft: int, win_length: int, hop: int) -> DeviceGrid | None:
    """The device-rate STFT on the model's time grid, or None where there is none.

    None when ``sample_rate <= model_rate`` (nothing above the model's band) or when the hop is
    not a whole number of device samples (22.05 kHz: 220.5): those rates take the resampling
    path. The window is rounded to an even length; ``n_fft`` is the even size nearest the scaled
    one whose half has only the prime factors 2, 3, 5 (1536 at 48 kHz, 1440 at 44.1 kHz).
    """
    for name, v in (("sample_rate", sample_rate), ("model_rate", model_rate), ("n_fft", n_fft),
                    ("win_length", win_length), ("hop", hop)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"device_grid: {name} must be a positive integer, got {v!r}")
    if sample_rate <= model_rate or (hop * sample_rate) % model_rate:
        return None
    ratio = sample_rate / model_rate
    win_d = 2 * int(round(win_length * ratio / 2))
    target = n_fft * ratio
    # KissFFT's real transform runs a complex FFT of n_fft / 2, fast with only the factors 2, 3, 5
    # (measured at 44.1 kHz, streaming ISTFT of both ears: 1408 = 2^7 * 11 took 200 us per frame,
    # 1440 = 2^5 * 3^2 * 5 105 us).
    candidates = [n for n in range(win_d + win_d % 2, int(2 * target) + 2, 2) if dsp.is_fast_fft_size(n // 2)]
    n_fft_d = min(candidates, key=lambda n: (abs(n - target), n))
    return DeviceGrid(int(sample_rate), n_fft_d, win_d, hop * sample_rate // model_rate, int(model_rate), int(n_fft),
                      int(win_length))


def _interp(positions: np.ndarray, last: int):
    """Linear-interpolation indices and weights for fractional ``positions`` on ``0..last``."""
    pos = np.clip(positions, 0.0, float(last))
    i0 = np.minimum(np.floor(pos).astype(np.intp), last - 1)
    return i0, (pos - i0).astype(np.float32)


class FullBandMapper:
    """Moves spectra and masks between the device grid and the model's bins (see module doc).

    Args:
        grid: the device grid (:func:`device_grid`).
        mask_mode: "side" (one side mask D: L = M(1 + D), R = M(1 - D)) or "direct" (one
            complex mask per ear).
        n_masks: masks the model emits (1 for "side", 2 for left/right).
        block_frames: frames per block (every buffer is sized for it).
    """

    def __init__(self, grid: DeviceGrid, mask_mode: str, n_masks: int, block_frames: int):
        if mask_mode not in ("side", "direct"):
            raise ValueError(f"FullBandMapper: mask_mode must be 'side' or 'direct', got {mask_mode!r}")
        if mask_mode == "side" and n_masks != 1 or mask_mode == "direct" and n_masks not in (1, 2):
            raise ValueError(f"FullBandMapper: mode {mask_mode!r} takes n_masks "
                             f"{'1' if mask_mode == 'side' else '1 or 2'}, got {n_masks!r}")
        if isinstance(block_frames, bool) or not isinstance(block_frames, (int, np.integer)) or block_frames < 1:
            raise ValueError(f"FullBandMapper: block_frames must be an integer >= 1, got {block_frames!r}")
        self.grid, self.mode, self.n_masks, self.b = grid, mask_mode, int(n_masks), int(block_frames)
        Fm, Fd, b = grid.model_bins, grid.n_bins, self.b
        scale = grid.model_rate / grid.sample_rate

        # Network input. Exact grid: model bin j is device bin j, times the scale. Otherwise
        # (44.1 kHz) the model's frequencies are evaluated on the device frame's windowed samples
        # by a chirp-z transform (dsp.ChirpZ: Bluestein, two FFTs of 1080 per frame in the native
        # core), the phase referred to the model window's centre in time (the device window's sits
        # 6 us off at 44.1 kHz, which alone cost -16 dB) and given the model frame's (-1)^j of a
        # window centred in its frame. Measured alternatives: interpolating neighbouring device
        # bins missed the network input by -16 dB on white noise; a DFT matrix took ~1 ms per
        # frame on 2 cores, an FFT zero-padded to 7056 (bins on the model's) 0.2 ms, Bluestein in
        # numpy (two complex128 FFTs of 1440) 37 us.
        if not grid.exact:
            W = grid.win_length
            n, j = np.arange(W, dtype=np.float64), np.arange(Fm, dtype=np.float64)
            window = 0.5 - 0.5 * np.cos(2 * np.pi * n / W)          # periodic Hann
            centre_s = grid.model_win_length / 2 / grid.model_rate  # before the frame's newest sample
            f = j * grid.model_bin_hz
            gain = (scale * np.where(np.arange(Fm) % 2 == 0, 1.0, -1.0)
                    * np.exp(-2j * np.pi * f * (centre_s - W / grid.sample_rate)))
            self._czt = dsp.ChirpZ(window, grid.model_bin_hz / grid.sample_rate, Fm, gain)

        # Masks: device bins up to the model's Nyquist from model position q_k.
        nyquist = grid.model_rate / 2
        freqs = np.arange(Fd) * grid.bin_hz
        self.n_low = int(np.count_nonzero(freqs <= nyquist + 1e-6))        # bins the model covers
        self.n_pure = int(np.count_nonzero(freqs < nyquist - BLEND_HZ))    # bins with the model's masks only
        self._m_i0, wm = _interp(freqs[:self.n_low] / grid.model_bin_hz, Fm - 1)
        self._m_w = wm[:, None]                                            # (n_low, 1)
        self._m_1w = (1 - wm)[:, None]
        u = (freqs[self.n_pure:self.n_low] - (nyquist - BLEND_HZ)) / BLEND_HZ
        self._blend_u = u.astype(np.float32)[:, None]                      # (n_blend, 1)
        self._blend_1u = (1 - u).astype(np.float32)[:, None]

        # Extension: power gains over the model's reference band, weighted by the mono's power.
        j = np.arange(Fm) * grid.model_bin_hz
        ref = np.flatnonzero((j >= REFERENCE_BAND_HZ[0]) & (j < REFERENCE_BAND_HZ[1]))
        self._ref = slice(int(ref[0]), int(ref[-1]) + 1)
        n_ref = len(ref)
        self._ref_power = np.zeros((n_ref, b), np.float32)
        self._ref_gain = np.zeros((n_ref, b), np.float32)
        self._ref_tmp = np.zeros((n_ref, b), np.float32)
        self._gain_now = np.zeros((2, b), np.float32)       # per ear (or per mask), this block
        self._weight = np.zeros(b, np.float32)
        self._imag_now = np.zeros(b, np.float32)
        self._alpha = math.exp(-1e3 * grid.hop / grid.sample_rate / SMOOTHING_MS)
        self._ext = np.zeros((self.n_masks, 2, b), np.float32)  # extension mask per frame: re, im
        self._masks = np.zeros((self.n_masks, 2, Fd, b), np.float32)
        self._model_masks = np.zeros((self.n_masks, 2, Fm, b), np.float32)
        self._tmp_a = np.zeros((self.n_masks, 2, self.n_low, b), np.float32)
        self._tmp_b = np.zeros((self.n_masks, 2, self.n_low, b), np.float32)
        self._blend = np.zeros((self.n_masks, 2, self.n_low - self.n_pure, b), np.float32)
        self._blend_tmp = np.zeros((self.n_low - self.n_pure, b), np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the extension's smoothing state (back to unit gains)."""
        self._gain_smooth = [1.0, 1.0]

    # ------------------------------------------------------------------ network input

    @property
    def needs_samples(self) -> bool:
        """Whether :meth:`to_model_bins` reads the device samples (grids that are not exact)."""
        return not self.grid.exact

    def to_model_bins(self, device_frames: np.ndarray, out: np.ndarray, samples: np.ndarray | None = None) -> None:
        """Model-grid spectra of the newest device frames, scaled to the model rate's level.

        Args:
            device_frames: ``(k, n_bins)`` complex64 device-rate frames, k <= block_frames.
            out: ``(k, model_bins)`` complex64, written.
            samples: when :attr:`needs_samples`, ``(m,)`` float32 device samples ending with the
                newest frame's newest sample, ``m >= win_length + (k - 1) * hop``.
        """
        k, Fm = device_frames.shape[0], self.grid.model_bins
        if self.grid.exact:
            np.multiply(device_frames[:, :Fm], self.grid.model_rate / self.grid.sample_rate, out=out)
            return
        W, hop = self.grid.win_length, self.grid.hop
        if samples is None or samples.ndim != 1 or len(samples) < W + (k - 1) * hop:
            raise ValueError(f"to_model_bins: needs samples (m >= {W + (k - 1) * hop},) float32 at "
                             f"{self.grid.sample_rate} Hz, got {None if samples is None else samples.shape}")
        # Frame t's window: the W samples ending (k - 1 - t) hops before the newest one.
        self._czt.run(samples, len(samples) - W - (k - 1) * hop, hop, out)

    # ------------------------------------------------------------------ masks

    def device_masks(self, masks: np.ndarray, model_frames: np.ndarray) -> np.ndarray:
        """Device-grid masks of one block.

        Args:
            masks: ``(n_masks, 2, model_bins, block_frames)`` float32 (a strided view is fine),
                the model's masks of the block's frames, real and imaginary planes.
            model_frames: ``(block_frames, model_bins)`` complex64, the same frames' model-grid
                spectra (their power weights the reference band).

        Returns:
            ``(n_masks, 2, n_bins, block_frames)`` float32, a buffer reused by the next call.
        """
        # numpy runs an operation on strided views through a temporary buffer; every product
        # here is formed in a contiguous scratch buffer and copied (copies need none).
        out, lo, pure = self._masks, self.n_low, self.n_pure
        a, blend = self._tmp_a, self._blend
        if self.grid.exact:
            np.copyto(a, masks[:, :, :lo])
        else:
            src = self._model_masks
            np.copyto(src, masks)
            np.take(src, self._m_i0, axis=2, out=a, mode="clip")
            np.take(src, self._m_i0 + 1, axis=2, out=self._tmp_b, mode="clip")
            np.multiply(a, self._m_1w, out=a)
            np.multiply(self._tmp_b, self._m_w, out=self._tmp_b)
            np.add(a, self._tmp_b, out=a)
        self._extension(masks, model_frames)
        np.multiply(a[:, :, pure:], self._blend_1u, out=blend)
        for c in range(self.n_masks):
            for part in range(2):
                value = self._ext[c, part]                      # (b,)
                np.multiply(self._blend_u, value, out=self._blend_tmp)
                np.add(blend[c, part], self._blend_tmp, out=blend[c, part])
                out[c, part, lo:] = value
        np.copyto(out[:, :, :pure], a[:, :, :pure])
        np.copyto(out[:, :, pure:lo], blend)
        return out

    def _extension(self, masks: np.ndarray, model_frames: np.ndarray) -> None:
        """Per frame, the flat mask above the model's band (``self._ext``)."""
        ref, p, g, tmp = self._ref, self._ref_power, self._ref_gain, self._ref_tmp
        np.copyto(p, model_frames[:, ref].real.T)
        np.copyto(tmp, model_frames[:, ref].imag.T)
        np.multiply(p, p, out=p)
        np.multiply(tmp, tmp, out=tmp)
        np.add(p, tmp, out=p)
        p.sum(axis=0, out=self._weight)
        for ear in range(2):
            c = 0 if self.mode == "side" else min(ear, self.n_masks - 1)
            np.copyto(g, masks[c, 0, ref])
            np.copyto(tmp, masks[c, 1, ref])
            if self.mode == "side":  # |1 + D|^2 (left), |1 - D|^2 (right)
                if ear == 1:
                    np.negative(g, out=g)
                np.add(g, 1.0, out=g)
            # else: |mask of this ear|^2 (one mask: both ears)
            np.multiply(g, g, out=g)
            np.multiply(tmp, tmp, out=tmp)
            np.add(g, tmp, out=g)
            np.multiply(g, p, out=g)
            g.sum(axis=0, out=self._gain_now[ear])
        if self.mode == "side":  # power-weighted Im D: the sign of the extension's Im D
            np.copyto(g, masks[0, 1, ref])
            np.multiply(g, p, out=g)
            g.sum(axis=0, out=self._imag_now)
        alpha, s = self._alpha, self._gain_smooth
        ext = self._ext
        for t in range(self.b):
            w = float(self._weight[t])
            for ear in range(2):
                # A silent frame (no weight) keeps the previous level.
                now = float(self._gain_now[ear, t]) / w if w > 0 else s[ear]
                s[ear] = alpha * s[ear] + (1 - alpha) * now
            if self.mode == "side":
                # D with |1 + D|^2 = gain_l and |1 - D|^2 = gain_r: Re D = (gain_l - gain_r) / 4,
                # |D|^2 = (gain_l + gain_r) / 2 - 1 (when that is below Re D^2, Im D = 0 and only
                # the ratio's direction is kept). Mid stays the mono input whatever D is.
                re = (s[0] - s[1]) / 4
                im2 = (s[0] + s[1]) / 2 - 1 - re * re
                ext[0, 0, t] = re
                ext[0, 1, t] = math.copysign(math.sqrt(im2), float(self._imag_now[t])) if im2 > 0 else 0.0
            else:
                ext[0, 0, t] = math.sqrt(s[0])
                if self.n_masks == 2:
                    ext[1, 0, t] = math.sqrt(s[1])
