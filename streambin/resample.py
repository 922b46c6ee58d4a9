"""Streaming resampling between the device rate and the model rate.

Two kinds, chosen by the Spatializer's ``resample_quality``:

* ``"fir"`` (default): a causal polyphase FIR resampler (scipy's ``firwin`` Kaiser design,
  as ``scipy.signal.resample_poly`` uses, applied with ``scipy.signal.upfirdn`` on a running
  history). Its delay is fixed and known (half the filter length) and it releases every
  output sample as soon as the inputs it needs have arrived, so it adds ~1 ms, not tens.
* ``"soxr-lq"``, ``"soxr-mq"``, ``"soxr-hq"``, ``"soxr-vhq"``: soxr's streaming resampler.
  Its stream is sample-aligned (no delay in the values) but it holds samples back until it
  has enough input: measured here at 48 kHz <-> 16 kHz, ~20 ms per direction (LQ) and
  ~35-37 ms (MQ/HQ). Use it when latency matters less than soxr's filter quality.
  (soxr's "QQ" is not offered: at integer ratios it decimates without any low-pass filter.)

Both are deterministic and give identical output however the input is chunked (tested).
:func:`worst_holdback` measures, once, how far the available output can lag the input, so
the engine can pre-fill exactly that many zeros and keep a fixed latency.
"""

from __future__ import annotations

import math

import numpy as np

QUALITIES = ("fir", "soxr-lq", "soxr-mq", "soxr-hq", "soxr-vhq")


def _ratio(in_rate: int, out_rate: int):
    g = math.gcd(int(in_rate), int(out_rate))
    return int(out_rate) // g, int(in_rate) // g  # up, down


def fir_half_length(in_rate: int, out_rate: int) -> int:
    """Half length (taps at the upsampled rate) of the "fir" filter for this rate pair.

    10 zero crossings per side of the lower rate's sinc, as resample_poly does, rounded up to
    a multiple of the device-side up factor so the delays of the down- and up-resampler add up
    to whole device samples.
    """
    up, down = _ratio(in_rate, out_rate)
    device_up = min(up, down) if in_rate != out_rate else 1
    half = 10 * max(up, down)
    return -(-half // device_up) * device_up


class _FirStream:
    """Causal polyphase FIR resampler over a stream (scipy.signal.upfirdn on a history)."""

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        from scipy import signal

        self.up, self.down = _ratio(in_rate, out_rate)
        half = fir_half_length(in_rate, out_rate)
        # Cut-off slightly inside the lower Nyquist so the Kaiser transition band stays below it.
        cutoff = 0.95 / max(self.up, self.down)
        self.h = (signal.firwin(2 * half + 1, cutoff, window=("kaiser", 6.0)) * self.up).astype(np.float64)
        self.delay_upsampled = half  # group delay, in samples at in_rate * up
        self.channels = channels
        self._upfirdn = signal.upfirdn
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros((0, self.channels), np.float64)
        self._hist_start = 0   # global index of _hist[0]
        self._n_in = 0         # inputs received
        self._m_next = 0       # next output index

    def push(self, x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(len(x), self.channels)
        self._hist = np.concatenate([self._hist, x2.astype(np.float64)], axis=0)
        self._n_in += len(x2)
        up, down, n_taps = self.up, self.down, len(self.h)
        # Output m needs inputs up to floor(m * down / up).
        m_last = ((self._n_in - 1) * up) // down
        if m_last < self._m_next:
            return np.zeros((0,) if x.ndim == 1 else (0, self.channels), np.float32)
        # Start the segment at a multiple of `down` so upfirdn's output grid is ours, early
        # enough to cover the first output's whole filter span (zeros before the stream).
        first_needed = (self._m_next * down - n_taps + 1) // up
        k0 = (first_needed // down) * down
        if k0 < self._hist_start:  # only ever before the stream's start: zeros
            pad = np.zeros((self._hist_start - k0, self.channels), np.float64)
            seg = np.concatenate([pad, self._hist], axis=0)
        else:
            seg = self._hist[k0 - self._hist_start:]
        y = self._upfirdn(self.h, seg, up, down, axis=0)
        base = (k0 * up) // down
        out = y[self._m_next - base: m_last - base + 1].astype(np.float32)
        self._m_next = m_last + 1
        # Keep only what the next output can still need.
        keep_from = max(self._hist_start, ((self._m_next * down - n_taps + 1) // up) - down)
        self._hist = self._hist[keep_from - self._hist_start:]
        self._hist_start = keep_from
        return out[:, 0] if x.ndim == 1 else out


class StreamResampler:
    """Resample a stream of ``(n, channels)`` float32 blocks (``(n,)`` for one channel).

    Identical rates pass samples through untouched. The fixed delay of a device -> model ->
    device round trip is :func:`chain_delay`.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "fir"):
        if quality not in QUALITIES:
            raise ValueError(f"resample quality must be one of {QUALITIES}, got {quality!r}")
        self.in_rate, self.out_rate, self.channels, self.quality = int(in_rate), int(out_rate), channels, quality
        self._impl = None
        self.reset()

    @property
    def passthrough(self) -> bool:
        return self.in_rate == self.out_rate

    def reset(self) -> None:
        if self.passthrough:
            return
        if self.quality == "fir":
            self._impl = _FirStream(self.in_rate, self.out_rate, self.channels)
        else:
            import soxr

            self._impl = soxr.ResampleStream(self.in_rate, self.out_rate, self.channels, dtype="float32",
                                             quality=self.quality.split("-", 1)[1].upper())

    def push(self, x: np.ndarray) -> np.ndarray:
        """Samples in, the resampled samples that are ready out (float32)."""
        if self.passthrough:
            return x
        if self.quality == "fir":
            return self._impl.push(x)
        return self._impl.resample_chunk(x)


def chain_delay(device_rate: int, model_rate: int, quality: str) -> int:
    """Fixed delay, in device samples, of resampling device -> model -> device (values, not
    hold-back). 0 for soxr (its stream is aligned) and for equal rates."""
    if quality != "fir" or device_rate == model_rate:
        return 0
    up, _ = _ratio(device_rate, model_rate)          # device -> model
    h_down = fir_half_length(device_rate, model_rate)
    h_up = fir_half_length(model_rate, device_rate)
    # Down: h_down samples at device_rate*up; up: h_up samples at model_rate*(device_rate/g)
    # = device_rate*up as well. Both in units of 1/(device_rate*up) seconds.
    total = h_down + h_up
    if total % up:
        raise AssertionError("fir half lengths must add up to whole device samples")
    return total // up


def worst_holdback(in_rate: int, model_rate: int, quality: str, engine_burst: int, engine_prefill: int,
                   seconds: float = 0.5) -> int:
    """Largest shortfall, in device samples, of output available vs input received.

    Simulates the count flow device -> model rate -> engine (which releases its output in
    bursts of ``engine_burst`` model-rate samples after an initial ``engine_prefill`` zeros)
    -> device rate, for several chunk sizes including single samples, on fresh resamplers.
    This is availability only; the delay of the values is :func:`chain_delay`. Only counts matter (neither resampler's buffering depends on the values), so zeros are used.
    """
    worst = 0
    n_total = int(seconds * in_rate)
    for chunk in (1, 7, 64, 441, 480, 1024):
        down = StreamResampler(in_rate, model_rate, 1, quality)
        up = StreamResampler(model_rate, in_rate, 2, quality)
        n_in = n_out = n_model = released = 0
        n_out += len(up.push(np.zeros((engine_prefill, 2), np.float32)))
        zeros = np.zeros(chunk, np.float32)
        while n_in < n_total:
            n_in += chunk
            n_model += len(down.push(zeros))
            ready = (n_model // engine_burst) * engine_burst - released
            if ready:
                n_out += len(up.push(np.zeros((ready, 2), np.float32)))
                released += ready
            worst = max(worst, n_in - n_out)
    return worst
