"""Streaming and offline STFT/ISTFT, complex-mask multiply and a chirp-z transform: the Python API
over streambin._C.

Where the native extension could not be built, the same API runs on streambin.numpy_core (pure
numpy, same results, slower, no CUDA), with one warning at import.

Conventions (docs/architecture.md):

* A periodic Hann window of ``win_length`` samples is centred in each ``n_fft`` frame;
  spectra have ``n_fft // 2 + 1`` bins, complex64.
* Streaming framing: frame ``k`` is emitted once samples ``0 .. (k+1)*hop_size - 1`` have
  been pushed, and its window covers the newest ``win_length`` samples. Offline, that is
  ``stft(x, framing="stream")``: a center=False STFT of ``x`` with
  ``prime_samples = (n_fft + win_length)//2 - hop_size`` zeros prepended.
* Streaming synthesis (``StreamingISTFT``) overlap-adds windowed inverse FFTs and divides by
  the steady-state window-square sum; analysis followed by synthesis delays the signal by
  exactly ``latency_samples = win_length - hop_size`` (240 samples, 15 ms at 16 kHz for the
  model's 512/400/160).

Input handling (documented behaviour, tested):

* audio must be a real floating array; float64 (or any float) is converted to float32,
  integer/complex/bool arrays are rejected; non-contiguous arrays are copied;
* NaN or inf samples raise ``ValueError`` and leave the analyser's state unchanged
  (the Spatializer sanitises audio before it reaches this layer);
* wrong rank or shape raises ``ValueError`` naming the expected shape.

Example::

    from streambin import dsp
    ana = dsp.StreamingSTFT()                  # 512 / 400 / 160
    syn = dsp.StreamingISTFT(channels=2)
    spec = ana.push(chunk)                     # (k, 257) complex64
    mask = model_masks[:, :, :, -spec.shape[0]:]   # (1, 2, 257, k) float32, a view is fine
    ears = dsp.apply_mask(spec, mask, mode="side")  # (2, k, 257): L = M + D, R = M - D
    out = syn.push(ears)                       # (2, k*160) float32, delayed by 240 samples
"""

from __future__ import annotations

import warnings

import numpy as np

try:
    from streambin import _C
except ImportError as _exc:  # extension not built (e.g. no KissFFT headers): same API in numpy
    from streambin import numpy_core as _C

    warnings.warn(f"streambin._C is not available ({_exc}); using the slower pure-numpy DSP "
                  "(streambin.numpy_core). Install libkissfft-dev and reinstall streambin to build it.",
                  RuntimeWarning, stacklevel=2)

__all__ = [
    "StreamingSTFT",
    "StreamingISTFT",
    "apply_mask",
    "ChirpZ",
    "is_fast_fft_size",
    "stft",
    "istft",
    "has_cuda",
    "cuda_device_count",
    "prime_samples",
    "latency_samples",
]

DEFAULT_N_FFT = 512
DEFAULT_WIN_LENGTH = 400
DEFAULT_HOP_SIZE = 160
_MASK_MODES = {"direct": 0, "side": 1}


def has_cuda() -> bool:
    """True when streambin._C was built with its CUDA sources (nvcc + cuFFT found at build time).

    This says nothing about a GPU being present; see :func:`cuda_device_count`.
    """
    return bool(_C.built_with_cuda)


def cuda_device_count() -> int:
    """Number of CUDA devices the extension can use (0 if built without CUDA or no GPU/driver)."""
    return int(_C.cuda_device_count()) if has_cuda() else 0


def prime_samples(n_fft: int = DEFAULT_N_FFT, win_length: int = DEFAULT_WIN_LENGTH,
                  hop_size: int = DEFAULT_HOP_SIZE) -> int:
    """Zeros prepended by ``stft(framing="stream")``: ``(n_fft + win_length)//2 - hop_size``."""
    return int(_C.prime_samples(n_fft, win_length, hop_size))


def latency_samples(n_fft: int = DEFAULT_N_FFT, win_length: int = DEFAULT_WIN_LENGTH,
                    hop_size: int = DEFAULT_HOP_SIZE) -> int:
    """Delay of streaming analysis followed by synthesis: ``win_length - hop_size`` samples."""
    return int(_C.latency_samples(n_fft, win_length, hop_size))


def _all_finite(x: np.ndarray) -> bool:
    """Whether a real float array holds no NaN or inf, without a temporary array (NaN propagates
    through min/max; inf is an extreme): the streaming paths check every block."""
    if x.size == 0:
        return True
    return bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def _as_audio(x, name: str, ndim: int, expected: str) -> np.ndarray:
    """Validate audio: real float of rank ``ndim``, finite; returns C-contiguous float32."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array {expected} float32, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a real floating array {expected} float32, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected shape {expected}, got {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not _all_finite(x):
        bad = int(np.flatnonzero(~np.isfinite(x.ravel()))[0])
        raise ValueError(f"{name}: audio contains NaN or inf (first at flat index {bad}); sanitise it first")
    return x


def _as_spec(spec, name: str, expected: str) -> np.ndarray:
    if not isinstance(spec, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array {expected} complex64, got {type(spec).__name__}")
    if spec.dtype.kind != "c":
        raise TypeError(f"{name}: expected a complex array {expected} complex64, got dtype {spec.dtype}")
    return np.ascontiguousarray(spec, dtype=np.complex64)


class StreamingSTFT:
    """Streaming analyser: push any number of samples, get the frames they complete.

    One object may be shared by threads: its calls run one at a time (a lock per object), so
    concurrent pushes behave as the same pushes made serially in some order.

    Args:
        n_fft, win_length, hop_size: STFT parameters (n_fft even, win_length <= n_fft with
            n_fft - win_length even, 1 <= hop_size <= win_length).
    """

    def __init__(self, n_fft: int = DEFAULT_N_FFT, win_length: int = DEFAULT_WIN_LENGTH,
                 hop_size: int = DEFAULT_HOP_SIZE):
        self._impl = _C.StreamingStft(n_fft, win_length, hop_size)
        self.n_fft, self.win_length, self.hop_size = n_fft, win_length, hop_size
        self.n_bins = n_fft // 2 + 1

    def frames_for(self, n: int) -> int:
        """Frames that pushing ``n`` more samples would complete."""
        return int(self._impl.frames_for(int(n)))

    def push(self, x: np.ndarray) -> np.ndarray:
        """Push ``(n,)`` float samples (n >= 0); returns ``(k, n_bins)`` complex64 new frames."""
        return self._impl.push(_as_audio(x, "StreamingSTFT.push(x)", 1, "(n,)"))

    def push_into(self, x: np.ndarray, out: np.ndarray) -> int:
        """Like :meth:`push` into a preallocated ``(>= k, n_bins)`` complex64 buffer; returns k."""
        return int(self._impl.push_into(_as_audio(x, "StreamingSTFT.push_into(x)", 1, "(n,)"), out))

    def reset(self) -> None:
        """Forget all samples pushed so far (back to the zero-primed start state)."""
        self._impl.reset()


class StreamingISTFT:
    """Streaming synthesiser: push frames, get ``hop_size`` finished samples per frame.

    The output lags the analyser's input by ``latency_samples = win_length - hop_size``.
    Like :class:`StreamingSTFT`, one object may be shared by threads (a lock per object).

    Args:
        channels: how many independent signals are synthesised (2 for left/right).
    """

    def __init__(self, n_fft: int = DEFAULT_N_FFT, win_length: int = DEFAULT_WIN_LENGTH,
                 hop_size: int = DEFAULT_HOP_SIZE, channels: int = 1):
        if int(channels) < 1:
            raise ValueError(f"StreamingISTFT: channels must be >= 1, got {channels}")
        self._impl = _C.StreamingIstft(n_fft, win_length, hop_size, int(channels))
        self.n_fft, self.win_length, self.hop_size = n_fft, win_length, hop_size
        self.channels = int(channels)
        self.n_bins = n_fft // 2 + 1
        self.latency_samples = win_length - hop_size

    def _frames(self, frames) -> np.ndarray:
        expected = f"({self.channels}, k, {self.n_bins})"
        frames = _as_spec(frames, "StreamingISTFT.push(frames)", expected)
        if frames.ndim == 2 and self.channels == 1:
            frames = frames[None]
        if frames.ndim != 3 or frames.shape[0] != self.channels or frames.shape[2] != self.n_bins:
            raise ValueError(f"StreamingISTFT.push(frames): expected shape {expected} complex64"
                             f"{' or (k, %d)' % self.n_bins if self.channels == 1 else ''}, got {frames.shape}")
        if not _all_finite(frames.view(np.float32)):
            raise ValueError("StreamingISTFT.push(frames): frames contain NaN or inf")
        return frames

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Push ``(channels, k, n_bins)`` complex frames (``(k, n_bins)`` when channels == 1);
        returns ``(channels, k*hop_size)`` float32 finished samples."""
        frames = self._frames(frames)
        out = np.empty((self.channels, frames.shape[1] * self.hop_size), dtype=np.float32)
        self._impl.push_into(frames, out)
        return out

    def push_into(self, frames: np.ndarray, out: np.ndarray) -> None:
        """Like :meth:`push`, writing into ``out`` of shape ``(channels, k*hop_size)`` float32."""
        self._impl.push_into(self._frames(frames), out)

    def reset(self) -> None:
        """Drop the pending overlap-add tail."""
        self._impl.reset()


def apply_mask(spec: np.ndarray, mask: np.ndarray, out: np.ndarray | None = None,
               mode: str = "direct") -> np.ndarray:
    """Multiply mono spectrogram frames by complex masks given as real/imag planes.

    Args:
        spec: ``(k, n_bins)`` complex64 mono frames (one frame: k = 1).
        mask: ``(n_masks, 2, n_bins, k)`` float32, ``[:, 0]`` real and ``[:, 1]`` imaginary part.
            A strided view (e.g. the newest frames sliced out of a model's ``(n_masks, 2, F, T)``
            output) is read in place, without a copy.
        out: optional ``(n_out, k, n_bins)`` complex64 destination; with mode "direct" and one
            mask it may be ``spec[None]``-shaped memory of ``spec`` itself (in place).
        mode: ``"direct"``: ``out[c] = spec * mask[c]`` (n_out = n_masks, 1 or 2);
            ``"side"``: one side mask D, ``out[0] = spec * (1 + D)``, ``out[1] = spec * (1 - D)``
            (L = M + D, R = M - D; n_out = 2).

    Returns:
        ``out``: ``(n_out, k, n_bins)`` complex64.
    """
    if mode not in _MASK_MODES:
        raise ValueError(f"apply_mask: mode must be one of {sorted(_MASK_MODES)}, got {mode!r}")
    spec = _as_spec(spec, "apply_mask(spec)", "(k, n_bins)")
    if spec.ndim != 2:
        raise ValueError(f"apply_mask(spec): expected shape (k, n_bins) complex64, got {spec.shape}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.float32:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise TypeError(f"apply_mask(mask): expected float32 (n_masks, 2, {spec.shape[1]}, {spec.shape[0]}), got {got}")
    if mask.ndim != 4 or mask.shape[1:] != (2, spec.shape[1], spec.shape[0]):
        raise ValueError(f"apply_mask(mask): expected shape (n_masks, 2, {spec.shape[1]}, {spec.shape[0]}) "
                         f"to match spec {spec.shape}, got {mask.shape}")
    if any(s % 4 for s in mask.strides) or any(s < 0 for s in mask.strides):
        mask = np.ascontiguousarray(mask)
    n_out = 2 if mode == "side" else mask.shape[0]
    if mode == "side" and mask.shape[0] != 1:
        raise ValueError(f"apply_mask: mode 'side' takes exactly one mask, got n_masks={mask.shape[0]}")
    if out is None:
        out = np.empty((n_out, spec.shape[0], spec.shape[1]), dtype=np.complex64)
    elif out.ndim == 2 and n_out == 1:
        out = out[None]
    _C.apply_mask(spec, mask, out, _MASK_MODES[mode])
    return out


#: The prime factors of the FFT sizes KissFFT runs with its fast radix-2/3/4/5 steps.
FAST_FFT_FACTORS = (2, 3, 5)


def is_fast_fft_size(n: int) -> bool:
    """Whether ``n >= 1`` has no prime factor but 2, 3 and 5 (:data:`FAST_FFT_FACTORS`)."""
    n = int(n)
    for p in FAST_FFT_FACTORS:
        while n > 1 and n % p == 0:
            n //= p
    return n == 1


class ChirpZ:
    """Spectra of real windows at evenly spaced frequencies that need not be FFT bins (chirp-z).

    :meth:`run` writes, for each window ``x`` of ``W = len(window)`` samples and ``j < n_out``,
    ``gain[j] * sum_n window[n] * x[n] * exp(-2j * pi * step * j * n)``: the windowed samples'
    spectrum at ``j * step`` cycles per sample. Bluestein's algorithm on the samples packed in
    pairs (even + 1j * odd, told apart afterwards by a real signal's conjugate symmetry): per
    window one complex FFT and one inverse of ``fft_size``, the smallest size with only the
    factors 2, 3, 5 that is >= ``W / 2 + 2 * n_out - 2`` (1080 for W = 1102, n_out = 257, where
    the unpacked transform takes 1440). The chirps are computed here in float64 and run in
    complex64 by the native core (float32 precision: within 1e-5 of the spectrum's peak). Nothing
    is allocated per call; one object may be shared by threads (a lock per object).

    Args:
        window: ``(W,)`` real, W even and >= 2.
        step: cycles per sample between neighbouring outputs.
        n_out: outputs per window (>= 1).
        gain: ``(n_out,)`` complex factors, one per output (default ones).
    """

    def __init__(self, window: np.ndarray, step: float, n_out: int, gain: np.ndarray | None = None):
        window = np.asarray(window)
        if window.dtype.kind not in "fiu" or window.ndim != 1 or len(window) < 2 or len(window) % 2:
            raise ValueError(f"ChirpZ(window): expected a real (W,) array with W even and >= 2, got dtype "
                             f"{window.dtype} shape {window.shape}")
        if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1:
            raise ValueError(f"ChirpZ(n_out): expected an integer >= 1, got {n_out!r}")
        if not np.isfinite(step):
            raise ValueError(f"ChirpZ(step): expected a finite number of cycles per sample, got {step!r}")
        gain = np.ones(n_out) if gain is None else np.asarray(gain)
        if gain.shape != (n_out,) or gain.dtype.kind not in "fiuc":
            raise ValueError(f"ChirpZ(gain): expected ({n_out},) numbers, got dtype {gain.dtype} shape {gain.shape}")
        W, n_out = len(window), int(n_out)
        half, centre = W // 2, n_out - 1
        L = next(n for n in range(half + 2 * n_out - 2, 4 * (W + n_out)) if is_fast_fft_size(n))
        sigma = 2.0 * float(step)                 # cycles per pair of samples between outputs

        def chirp(e):                             # exp(-i pi sigma e)
            return np.exp(-1j * np.pi * sigma * np.asarray(e, np.float64))

        # The packed pairs' transform Z at sigma * (q - centre) cycles per pair, q < 2 n_out - 1
        # (the outputs' frequencies and their negatives), by Bluestein: q m = (q^2 + m^2 - (q - m)^2) / 2.
        m = np.arange(half, dtype=np.float64)
        g = np.exp(2j * np.pi * sigma * centre * m) * chirp(m * m)
        w = window.astype(np.float64)
        pre = np.empty(W, np.complex128)
        pre[0::2] = w[0::2] * g                   # even samples: real part of the pair
        pre[1::2] = 1j * w[1::2] * g              # odd samples: imaginary part
        q = np.arange(2 * n_out - 1, dtype=np.float64)
        kernel = np.zeros(L, np.complex128)
        kernel[:len(q)] = chirp(-q * q)
        kernel[L - np.arange(1, half)] = chirp(-np.arange(1, half, dtype=np.float64) ** 2)
        # With Zp = Z(+f_j), Zm = Z(-f_j): even half E = (Zp + conj Zm) / 2, odd half
        # O = (Zp - conj Zm) / 2i, spectrum E + exp(-2 pi i step j) O.
        j = np.arange(n_out, dtype=np.float64)
        odd = np.exp(-2j * np.pi * float(step) * j)
        post_pos = gain * (1 - 1j * odd) / 2 * chirp((centre + j) ** 2)
        post_neg = gain * (1 + 1j * odd) / 2 * np.conj(chirp((centre - j) ** 2))
        self._impl = _C.ChirpZ(pre.astype(np.complex64), np.fft.fft(kernel).astype(np.complex64),
                               post_pos.astype(np.complex64), post_neg.astype(np.complex64))
        self.window_length, self.n_out, self.fft_size = W, n_out, L

    def run(self, samples: np.ndarray, start: int, hop: int, out: np.ndarray) -> None:
        """Transform ``k = out.shape[0]`` windows: window ``t`` is ``samples[start + t * hop:][:W]``.

        Args:
            samples: ``(m,)`` float32, C-contiguous, ``m >= start + (k - 1) * hop + W``.
            start, hop: first window's first sample (>= 0) and the step between windows (>= 1).
            out: ``(k, n_out)`` complex64, C-contiguous, written.

        Anything else raises ``ValueError`` naming the expected shape and dtype (nothing is
        converted: this runs per block).
        """
        self._impl.run(samples, int(start), int(hop), out)


def _pad_for(x: np.ndarray, n_fft: int, win_length: int, hop_size: int, framing: str, pad_mode: str):
    if framing == "stream":
        # Priming zeros in front; behind, the zero-weight tail of the last frame
        # (n_fft - history samples) so every streaming frame is a full n_fft frame.
        front = prime_samples(n_fft, win_length, hop_size)
        back = (n_fft - win_length) // 2
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(front, back)])
    if framing == "center":
        pad = n_fft // 2
        if pad_mode == "reflect" and x.shape[-1] <= pad:
            raise ValueError(f"stft: reflect padding needs more than n_fft//2={pad} samples, got {x.shape[-1]}")
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode=pad_mode)
    raise ValueError(f"stft: framing must be 'stream' or 'center', got {framing!r}")


def stft(x: np.ndarray, n_fft: int = DEFAULT_N_FFT, win_length: int = DEFAULT_WIN_LENGTH,
         hop_size: int = DEFAULT_HOP_SIZE, framing: str = "stream", pad_mode: str = "constant") -> np.ndarray:
    """Offline STFT of whole signals.

    Args:
        x: ``(n,)`` or ``(batch, n)`` float audio.
        framing: ``"stream"`` — exactly the frames :class:`StreamingSTFT` emits for ``x``
            (``n // hop_size`` frames); ``"center"`` — torch/librosa ``center=True``
            (``1 + n // hop_size`` frames, ``pad_mode`` "constant" or "reflect").

    Returns:
        ``(frames, n_bins)`` or ``(batch, frames, n_bins)`` complex64.
    """
    squeeze = isinstance(x, np.ndarray) and x.ndim == 1
    x = _as_audio(x[None] if squeeze else x, "stft(x)", 2, "(n,) or (batch, n)")
    padded = np.ascontiguousarray(_pad_for(x, n_fft, win_length, hop_size, framing, pad_mode))
    if padded.shape[-1] < n_fft:  # "stream" framing of fewer than hop_size samples
        spec = np.zeros((x.shape[0], 0, n_fft // 2 + 1), np.complex64)
        return spec[0] if squeeze else spec
    spec = _C.stft_frames(padded, n_fft, win_length, hop_size)
    return spec[0] if squeeze else spec


def istft(spec: np.ndarray, n_fft: int = DEFAULT_N_FFT, win_length: int = DEFAULT_WIN_LENGTH,
          hop_size: int = DEFAULT_HOP_SIZE, framing: str = "stream", length: int | None = None) -> np.ndarray:
    """Offline inverse of :func:`stft` (overlap-add, exact window-square normalisation).

    Args:
        spec: ``(frames, n_bins)`` or ``(batch, frames, n_bins)`` complex.
        framing: the framing :func:`stft` used. ``"stream"`` returns the signal aligned with the
            original input (the priming zeros removed); ``"center"`` removes the n_fft//2 padding.
        length: output length in samples (trimmed or zero-padded); default frames*hop for
            "stream", (frames-1)*hop for "center".

    Returns:
        ``(n,)`` or ``(batch, n)`` float32. Samples covered by no window (the signal's edges
        when framing="stream" ends) are 0.
    """
    squeeze = isinstance(spec, np.ndarray) and spec.ndim == 2
    spec = _as_spec(spec[None] if squeeze else spec, "istft(spec)", "(frames, n_bins) or (batch, frames, n_bins)")
    if spec.ndim != 3 or spec.shape[2] != n_fft // 2 + 1 or spec.shape[1] < 1:
        raise ValueError(f"istft(spec): expected (batch, frames >= 1, {n_fft // 2 + 1}) complex, got {spec.shape}")
    y = _C.istft_frames(spec, n_fft, win_length, hop_size)
    if framing == "stream":
        start, default_len = prime_samples(n_fft, win_length, hop_size), spec.shape[1] * hop_size
    elif framing == "center":
        start, default_len = n_fft // 2, (spec.shape[1] - 1) * hop_size
    else:
        raise ValueError(f"istft: framing must be 'stream' or 'center', got {framing!r}")
    n = default_len if length is None else int(length)
    y = y[:, start: start + n]
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    y = np.ascontiguousarray(y)
    return y[0] if squeeze else y
