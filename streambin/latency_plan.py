"""The engine's fixed delay, worked out from its settings alone (a pure function).

Every stage of the streaming engine delays the signal by a fixed number of samples, so the
output is the input delayed by exactly ``latency_samples`` at the device rate:

* analysis + synthesis (streaming STFT then overlap-add ISTFT): ``win_length - hop``;
* the wait for a full block of frames: ``block_frames * hop - 1`` (the newest sample of a block
  leaves as soon as the block runs; the oldest waited for the rest);
* the lookahead: ``lookahead_frames * hop`` (masks of frames that many hops before the newest);
* on the resampling path only: rounding up so the model-rate delay maps to whole device
  samples, the resamplers' fixed filter delay and the zeros that cover their worst hold-back.

All counts of the STFT stages are in samples at ``stft_rate``: the model rate on the resampling
path, the device rate on the full-band path (where nothing is resampled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyPlan:
    """Delays in samples. ``latency_samples`` is at the device rate; ``stft_latency`` and
    ``engine_prefill`` at the STFT rate.

    Attributes:
        latency_samples: total fixed delay of the output, device samples.
        stft_latency: the STFT-rate part of it (analysis/synthesis, block wait, lookahead,
            rounding), STFT-rate samples.
        engine_prefill: zeros the engine emits before its first block (STFT-rate samples), so the
            output never runs dry while the first block fills.
        fifo_prefill: zeros put in front of the output at the device rate for the resamplers'
            worst hold-back (0 without resampling).
        resample_delay: the resamplers' fixed filter delay, device samples (0 without).
    """

    latency_samples: int
    stft_latency: int
    engine_prefill: int
    fifo_prefill: int
    resample_delay: int


def plan_latency(*, sample_rate: int, stft_rate: int, win_length: int, hop: int, block_frames: int,
                 lookahead_frames: int, resample_holdback=None, resample_delay: int = 0) -> LatencyPlan:
    """Fix every delay of the pipeline.

    Args:
        sample_rate: device rate in Hz.
        stft_rate: rate of the STFT in Hz (``sample_rate`` on the full-band path).
        win_length, hop: STFT window and hop in samples at ``stft_rate``.
        block_frames, lookahead_frames: the engine's settings (>= 1, >= 0).
        resample_holdback: None without resampling; else a function ``(engine_burst,
            engine_prefill) -> device samples`` giving the resamplers' worst hold-back
            (streambin.resample.worst_holdback with its rates bound).
        resample_delay: fixed filter delay of the resampling round trip, device samples.
    """
    for name, v, lo in (("sample_rate", sample_rate, 1), ("stft_rate", stft_rate, 1), ("hop", hop, 1),
                        ("win_length", win_length, 1), ("block_frames", block_frames, 1),
                        ("lookahead_frames", lookahead_frames, 0), ("resample_delay", resample_delay, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"plan_latency: {name} must be an integer >= {lo}, got {v!r}")
    if hop > win_length:
        raise ValueError(f"plan_latency: hop must be <= win_length, got hop {hop} > win_length {win_length}")
    if stft_rate == sample_rate and (resample_holdback is not None or resample_delay):
        raise ValueError("plan_latency: no resampler delay when stft_rate equals sample_rate")
    if stft_rate != sample_rate and resample_holdback is None:
        raise ValueError(f"plan_latency: stft_rate {stft_rate} != sample_rate {sample_rate} needs "
                         "resample_holdback")
    b, a = block_frames, lookahead_frames
    analysis = win_length - hop
    raw = analysis + (b * hop - 1) + a * hop
    # The STFT-rate delay must map to whole device samples: round it up to a multiple of
    # stft_rate / gcd(stft_rate, sample_rate) by adding zeros in front of the output.
    step = stft_rate // math.gcd(stft_rate, sample_rate)
    stft_latency = -(-raw // step) * step
    engine_prefill = stft_latency - analysis - a * hop
    fifo_prefill = 0 if resample_holdback is None else int(resample_holdback(b * hop, engine_prefill))
    device = stft_latency * sample_rate // stft_rate
    return LatencyPlan(latency_samples=int(device + fifo_prefill + resample_delay), stft_latency=stft_latency,
                       engine_prefill=engine_prefill, fifo_prefill=fifo_prefill,
                       resample_delay=int(resample_delay))
