"""Pure-numpy stand-in for the CPU part of streambin._C, used where the extension is missing.

streambin.dsp imports ``streambin._C`` and falls back to this module (with one warning) when
the extension could not be built, e.g. on a machine without the KissFFT headers. It offers the
same names with the same framing, scaling and argument checks as the native CPU ops
(cpp_ext/cpu/*.cpp, cpp_ext/bindings.cpp), so every caller of streambin.dsp runs unchanged;
tests/test_numpy_core.py checks it against ``_C`` op by op and through the Spatializer.
It is slower than ``_C`` (numpy's FFT per frame in the streaming classes) and has no CUDA.
"""

from __future__ import annotations

import threading

import numpy as np

built_with_cuda = False


def cuda_device_count() -> int:
    return 0


def _params(n_fft: int, win_length: int, hop: int):
    """Check STFT parameters as the native StftParams.validate() does."""
    n_fft, win_length, hop = int(n_fft), int(win_length), int(hop)
    if n_fft < 2 or n_fft % 2:
        raise ValueError(f"streambin STFT: n_fft must be an even integer >= 2, got {n_fft}")
    if not 1 <= win_length <= n_fft:
        raise ValueError(f"streambin STFT: win_length must be in [1, n_fft={n_fft}], got {win_length}")
    if (n_fft - win_length) % 2:
        raise ValueError(f"streambin STFT: n_fft - win_length must be even so the window can be centred, "
                         f"got n_fft={n_fft} win_length={win_length}")
    if not 1 <= hop <= win_length:
        raise ValueError(f"streambin STFT: hop must be in [1, win_length={win_length}], got {hop}")
    return n_fft, win_length, hop


def _offset(n_fft: int, win_length: int) -> int:
    return (n_fft - win_length) // 2


def prime_samples(n_fft: int, win_length: int, hop: int) -> int:
    n_fft, win_length, hop = _params(n_fft, win_length, hop)
    return _offset(n_fft, win_length) + win_length - hop


def latency_samples(n_fft: int, win_length: int, hop: int) -> int:
    n_fft, win_length, hop = _params(n_fft, win_length, hop)
    return win_length - hop


def padded_hann(n_fft: int, win_length: int, hop: int) -> np.ndarray:
    """Periodic Hann of ``win_length`` centred in ``n_fft`` zeros: ``(n_fft,)`` float32."""
    n_fft, win_length, hop = _params(n_fft, win_length, hop)
    w = np.zeros(n_fft, np.float32)
    i = np.arange(win_length)
    w[_offset(n_fft, win_length):_offset(n_fft, win_length) + win_length] = \
        (0.5 - 0.5 * np.cos(2.0 * np.pi * i / win_length)).astype(np.float32)
    return w


def _require(a, ndim: int, dtype, name: str, expected: str) -> None:
    if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim
            or not a.flags.c_contiguous):
        got = f"dtype {a.dtype} shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name}: expected a C-contiguous {expected} array, got {got}")


class StreamingStft:
    """Same framing as the native analyser: frame k once samples 0 .. (k+1)*hop - 1 arrived,
    window over the newest win_length samples (zero-primed history). One lock per object makes
    concurrent pushes from several threads run one after the other, as the native class does."""

    def __init__(self, n_fft: int, win_length: int, hop: int):
        self.n_fft, self.win_length, self.hop = _params(n_fft, win_length, hop)
        self._window = padded_hann(n_fft, win_length, hop)
        self._history_len = _offset(self.n_fft, self.win_length) + self.win_length
        self._n_bins = self.n_fft // 2 + 1
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._history = np.zeros(self._history_len, np.float32)
            self._pending = 0

    def frames_for(self, n: int) -> int:
        with self._lock:
            return (self._pending + int(n)) // self.hop

    def push_into(self, x, out) -> int:
        _require(x, 1, np.float32, "StreamingStft.push_into(x)", "(n,) float32")
        _require(out, 2, np.complex64, "StreamingStft.push_into(out)", "(max_frames, n_bins) complex64")
        with self._lock:
            return self._push_into(x, out)

    def _push_into(self, x, out) -> int:
        k = (self._pending + len(x)) // self.hop
        if out.shape[0] < k or out.shape[1] != self._n_bins:
            raise ValueError(f"StreamingStft.push_into(out): need at least ({k}, {self._n_bins}) complex64, "
                             f"got {out.shape}")
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise ValueError(f"streambin STFT: input sample {int(bad[0])} is not finite (NaN or inf); "
                             "sanitise audio before pushing")
        if k == 0:
            self._append(x)
            return 0
        # Frame j ends after sample (j+1)*hop - pending - 1 of x: frame it off history + x.
        h, hop = self._history_len, self.hop
        joined = np.concatenate([self._history, x])
        first_end = h + hop - self._pending          # end (exclusive) of the first frame in joined
        starts = first_end - h + hop * np.arange(k)
        frames = joined[starts[:, None] + np.arange(h)] * self._window[:h]
        out[:k] = np.fft.rfft(frames, n=self.n_fft, axis=1)
        self._append(x)
        return k

    def push(self, x) -> np.ndarray:
        _require(x, 1, np.float32, "StreamingStft.push(x)", "(n,) float32")
        with self._lock:
            out = np.zeros(((self._pending + len(x)) // self.hop, self._n_bins), np.complex64)
            self._push_into(x, out)
        return out

    def _append(self, x: np.ndarray) -> None:
        h = self._history_len
        if len(x) >= h:
            self._history[:] = x[-h:]
        elif len(x):
            self._history[:h - len(x)] = self._history[len(x):]
            self._history[h - len(x):] = x
        self._pending = (self._pending + len(x)) % self.hop


class StreamingIstft:
    """Windowed overlap-add divided by the steady-state window-square sum, one hop per frame.
    Concurrent pushes run one after the other (one lock per object)."""

    def __init__(self, n_fft: int, win_length: int, hop: int, channels: int = 1):
        self.n_fft, self.win_length, self.hop = _params(n_fft, win_length, hop)
        if int(channels) < 1:
            raise ValueError(f"streambin ISTFT: channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self._window = padded_hann(n_fft, win_length, hop)
        self._offset = _offset(self.n_fft, self.win_length)
        env = np.zeros(self.hop, np.float64)
        w = self._window.astype(np.float64)
        for j in range(self.hop):
            env[j] = np.sum(w[self._offset + j::self.hop] ** 2)
        self._inv_env = (1.0 / env.astype(np.float32)).astype(np.float32)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._acc = np.zeros((self.channels, self.n_fft), np.float32)

    def push_into(self, frames, out) -> None:
        C, F, hop = self.channels, self.n_fft // 2 + 1, self.hop
        _require(frames, 3, np.complex64, "StreamingIstft.push(frames)", "(channels, k, n_bins) complex64")
        if frames.shape[0] != C or frames.shape[2] != F:
            raise ValueError(f"StreamingIstft.push(frames): expected ({C}, k, {F}) complex64, got {frames.shape}")
        k = frames.shape[1]
        _require(out, 2, np.float32, "StreamingIstft.push_into(out)", "(channels, k*hop) float32")
        if out.shape != (C, k * hop):
            raise ValueError(f"StreamingIstft.push_into(out): expected ({C}, {k * hop}) float32, got {out.shape}")
        if k == 0:
            return
        # Each inverse FFT is scaled by 1/n_fft in numpy as in the native code.
        y = np.fft.irfft(frames, n=self.n_fft, axis=2).astype(np.float32) * self._window  # (C, k, n_fft)
        with self._lock:
            acc = self._acc
            for t in range(k):
                acc += y[:, t]
                out[:, t * hop:(t + 1) * hop] = acc[:, self._offset:self._offset + hop] * self._inv_env
                acc[:, :-hop] = acc[:, hop:].copy()
                acc[:, -hop:] = 0.0


def apply_mask(spec, mask, out, mode: int = 0) -> None:
    """out[c] = spec * mask[c] (mode 0, direct) or L/R = spec * (1 +/- D) (mode 1, side)."""
    _require(spec, 2, np.complex64, "apply_mask(spec)", "(k, n_bins) complex64")
    k, F = spec.shape
    if not isinstance(mask, np.ndarray) or mask.dtype != np.float32 or mask.ndim != 4:
        raise ValueError(f"apply_mask(mask): expected a float32 (n_masks, 2, n_bins, k) array, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    if mask.shape[1:] != (2, F, k):
        raise ValueError(f"apply_mask(mask): expected (n_masks, 2, {F}, {k}) float32 to match spec {spec.shape}, "
                         f"got {mask.shape}")
    if mode not in (0, 1):
        raise ValueError("apply_mask(mode): expected 0 (direct) or 1 (side)")
    n_masks = mask.shape[0]
    if mode == 1 and n_masks != 1:
        raise ValueError(f"apply_mask: side mode takes exactly one mask, got n_masks={n_masks}")
    n_out = 2 if mode == 1 else n_masks
    _require(out, 3, np.complex64, "apply_mask(out)", "(n_out, k, n_bins) complex64")
    if out.shape != (n_out, k, F):
        raise ValueError(f"apply_mask(out): expected ({n_out}, {k}, {F}) complex64, got {out.shape}")
    if mode == 1 and np.shares_memory(out, spec):
        raise ValueError("apply_mask: side mode writes two channels and cannot run in place on spec")
    m = (mask[:, 0] + 1j * mask[:, 1]).astype(np.complex64).transpose(0, 2, 1)  # (n_masks, k, F)
    if mode == 1:
        d = spec * m[0]
        s = spec.copy()
        out[0] = s + d
        out[1] = s - d
    else:
        out[:] = spec[None] * m


class ChirpZ:
    """Chirp-z transform of real windows from the vectors streambin.dsp.ChirpZ builds: samples
    packed in pairs through ``pre``, Bluestein's convolution with ``kernel_fft``, outputs
    ``post_pos[j] g[c + j] + post_neg[j] conj(g[c - j])`` with ``c = n_out - 1`` (as
    cpp_ext/cpu/chirp_z.cpp)."""

    def __init__(self, pre, kernel_fft, post_pos, post_neg):
        _require(pre, 1, np.complex64, "ChirpZ(pre)", "(window,) complex64")
        _require(kernel_fft, 1, np.complex64, "ChirpZ(kernel_fft)", "(fft_size,) complex64")
        _require(post_pos, 1, np.complex64, "ChirpZ(post_pos)", "(n_out,) complex64")
        _require(post_neg, 1, np.complex64, "ChirpZ(post_neg)", "(n_out,) complex64")
        if post_neg.shape != post_pos.shape:
            raise ValueError(f"ChirpZ(post_neg): expected {post_pos.shape} complex64 like post_pos, got {post_neg.shape}")
        w, n, n_out = len(pre), len(kernel_fft), len(post_pos)
        if w < 2 or w % 2 or n < w // 2 + 2 * n_out - 2:
            raise ValueError(f"ChirpZ: need an even window >= 2, n_out >= 1 and an FFT size >= window/2 + "
                             f"2*n_out - 2 (else the circular convolution wraps), got window={w} n_out={n_out} "
                             f"fft size={n}")
        self.window, self.fft_size, self.n_out = w, n, n_out
        self._pre = pre.reshape(w // 2, 2).copy()
        self._kernel, self._pos, self._neg = kernel_fft.copy(), post_pos.copy(), post_neg.copy()

    def run(self, samples, start: int, hop: int, out) -> None:
        _require(samples, 1, np.float32, "ChirpZ.run(samples)", "(m,) float32")
        _require(out, 2, np.complex64, "ChirpZ.run(out)", "(k, n_out) complex64")
        k, w, c = out.shape[0], self.window, self.n_out - 1
        if out.shape[1] != self.n_out:
            raise ValueError(f"ChirpZ.run(out): expected (k, {self.n_out}) complex64, got {out.shape}")
        if start < 0 or hop < 1:
            raise ValueError(f"ChirpZ.run: expected start >= 0 and hop >= 1, got start={start} hop={hop}")
        if k > 0 and start + (k - 1) * hop + w > len(samples):
            raise ValueError(f"ChirpZ.run(samples): {k} windows of {w} samples from {start} every {hop} need "
                             f"m >= {start + (k - 1) * hop + w}, got {samples.shape}")
        if k == 0:
            return
        frames = samples[start + hop * np.arange(k)[:, None] + np.arange(w)].reshape(k, w // 2, 2)
        g = np.fft.ifft(np.fft.fft((frames * self._pre).sum(axis=2), n=self.fft_size, axis=1) * self._kernel, axis=1)
        out[:] = self._pos * g[:, c:2 * c + 1] + self._neg * np.conj(g[:, c::-1])


def stft_frames(x, n_fft: int, win_length: int, hop: int) -> np.ndarray:
    """Unpadded framing STFT: ``(batch, n)`` float32 -> ``(batch, 1 + (n - n_fft)//hop, n_bins)``."""
    n_fft, win_length, hop = _params(n_fft, win_length, hop)
    _require(x, 2, np.float32, "stft_frames(x)", "(batch, n) float32")
    n = x.shape[1]
    if n < n_fft:
        raise ValueError(f"stft_frames(x): need at least n_fft={n_fft} samples per row, got {n}")
    frames = 1 + (n - n_fft) // hop
    idx = hop * np.arange(frames)[:, None] + np.arange(n_fft)
    w = padded_hann(n_fft, win_length, hop)
    return np.fft.rfft(x[:, idx] * w, axis=2).astype(np.complex64)


def istft_frames(spec, n_fft: int, win_length: int, hop: int) -> np.ndarray:
    """Overlap-add inverse of :func:`stft_frames` -> ``(batch, n_fft + (frames-1)*hop)`` float32."""
    n_fft, win_length, hop = _params(n_fft, win_length, hop)
    _require(spec, 3, np.complex64, "istft_frames(spec)", "(batch, frames, n_bins) complex64")
    if spec.shape[2] != n_fft // 2 + 1 or spec.shape[1] < 1:
        raise ValueError(f"istft_frames(spec): expected (batch, frames >= 1, {n_fft // 2 + 1}) complex64, "
                         f"got {spec.shape}")
    batch, frames = spec.shape[:2]
    length = n_fft + (frames - 1) * hop
    w = padded_hann(n_fft, win_length, hop)
    y = np.fft.irfft(spec, n=n_fft, axis=2).astype(np.float32) * w
    out = np.zeros((batch, length), np.float32)
    env = np.zeros(length, np.float32)
    for t in range(frames):
        out[:, t * hop:t * hop + n_fft] += y[:, t]
        env[t * hop:t * hop + n_fft] += w * w
    safe = env > 1e-11
    out[:, safe] /= env[safe]
    out[:, ~safe] = 0.0
    return out
