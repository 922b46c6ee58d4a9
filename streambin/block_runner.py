"""Block runners: the part of the engine between the analysis input and the synthesis output.

A runner takes mono samples at its STFT rate (the model rate on the resampling path, the device
rate on the full-band path), keeps the context of the last ``T`` frames, and every
``block_frames`` new frames runs the audio net on that context with the visual feature of the
moment, applies the masks of the block's frames (``lookahead_frames`` before the newest) and
synthesises them. Each finished block, ``(block_frames * hop, 2)`` float32 frame-major, goes to
the ``emit`` callback (a view of a reused buffer: use it before returning). The Spatializer
around a runner keeps the resamplers, the output FIFO, the visual cadence and the latency plan.

- :class:`ModelRateRunner`: CPU, the model's own STFT grid (the resampling path).
- :class:`FullBandRunner`: CPU, the device-rate grid of :mod:`streambin.full_band`.
- :class:`GpuRunner`: the CUDA pipeline of :mod:`streambin.gpu_engine`, at the model rate.

With mirror averaging (the visual feature holds the frame's and its mirror image's, see
streambin.visual), the CPU runners run the audio net on the context with both features as one
batch (the context passed once when the bundle's graph takes one context for several features,
``bundle.shared_context``, else copied), and average the two outputs' masks for the block's frames
(streambin.signal_contract.average_mirrored_masks). A side gain other than 1 then scales the
part of those masks that differs between the ears (streambin.signal_contract.scale_side).
With a side renderer (streambin.side_renderer, on the visual feature), the side mask is then
blended with the side the camera frame renders, with weights that may follow how reverberant
the runner's own frames sound (its room tracker). All three are CPU-runner features: the GPU
pipeline runs the model's masks as they are.

Buffers are allocated at construction; a block allocates nothing on the CPU paths but, ten
times a second, the temporaries (a few kB) of the room detector's estimate when the side
renderer's blend follows it (streambin.room_detector). Call
``reset()`` before the first ``push``: it starts the stream state and ``timing``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable

import numpy as np

from streambin import dsp
from streambin.full_band import FullBandMapper
from streambin.signal_contract import (DSP_MASK_MODES, apply_masks, average_mirrored_masks, check_side_gain,
                                       input_scale, input_scale_from_rms, network_input, scale_side)

STAGES = ("resample_in", "stft", "audio_net", "mask_istft", "resample_out")

Emit = Callable[[np.ndarray], None]


class BlockTiming:
    """Wall time per pipeline stage (seconds, summed over the stream), blocks run, and the
    last 1000 blocks' times (ms, emit included)."""

    def __init__(self):
        self.stage_s = dict.fromkeys(STAGES, 0.0)
        self.blocks = 0
        self.block_ms = deque(maxlen=1000)


class RecentSamples:
    """The last ``size`` float32 samples as one contiguous view, without shifting: every sample
    is stored twice (slots i and i + size), so the newest ``size`` always sit side by side."""

    def __init__(self, size: int):
        self.size = int(size)
        self._buf = np.zeros(2 * self.size, np.float32)
        self._head = 0

    def reset(self) -> None:
        self._buf[:] = 0
        self._head = 0

    def push(self, x: np.ndarray) -> None:
        M, n = self.size, len(x)
        if M == 0 or n == 0:
            return
        if n > M:
            x, n = x[n - M:], M
        first = min(n, M - self._head)
        h = self._head
        self._buf[h:h + first] = x[:first]
        self._buf[h + M:h + M + first] = x[:first]
        if n > first:
            self._buf[:n - first] = x[first:]
            self._buf[M:M + n - first] = x[first:]
        self._head = (h + n) % M

    def last(self) -> np.ndarray:
        """``(size,)`` float32 view, oldest first, valid until the next push."""
        return self._buf[self._head:self._head + self.size]


class _CpuRunner:
    """What both CPU runners share: the streaming STFT/ISTFT pair at ``stft_params``
    ``(n_fft, win_length, hop)``, the frames of the block being filled, and the feed loop that
    runs a block exactly when its last frame arrives."""

    def __init__(self, bundle, backend, visual, block_frames: int, lookahead_frames: int, stft_params, emit: Emit,
                 side_gain: float = 1.0):
        self.bundle, self.backend, self.visual, self.emit = bundle, backend, visual, emit
        self.side_gain = check_side_gain(side_gain)
        self.block_frames, self.lookahead_frames = int(block_frames), int(lookahead_frames)
        self.context_frames = bundle.context_frames
        # Mask frames per run: the context's last ones (the Spatializer checks that block and
        # lookahead fit in them).
        self.output_frames = bundle.output_frames
        self.stft_params = tuple(stft_params)
        n_fft, _, hop = self.stft_params
        self.hop = hop
        b, T, F, F_stft = self.block_frames, self.context_frames, bundle.n_bins, n_fft // 2 + 1
        self._pending = np.zeros((b, F_stft), np.complex64)     # frames of the block being filled
        self._frame_buf = np.zeros((b + 1, F_stft), np.complex64)
        self.mirror_average = bool(visual.mirror_average)
        # The network input: the context once, or twice (one per feature) with mirror averaging
        # on a graph that cannot take one context for both features (bundle.shared_context).
        self._copy_context = self.mirror_average and not bundle.shared_context
        self._net_in = np.zeros((2 if self._copy_context else 1, 2, F, T), np.float32)
        self._mirror_masks = np.zeros((bundle.n_masks, 2, F, b), np.float32) if self.mirror_average else None
        self._gain_masks = np.zeros((bundle.n_masks, 2, F, b), np.float32) if self.side_gain != 1.0 else None
        self.side_renderer = visual.side_renderer
        self._blend_masks = np.zeros((bundle.n_masks, 2, F, b), np.float32) if self.side_renderer else None
        # The blend's weights may follow how reverberant the stream sounds: its own room tracker.
        self._room = self.side_renderer.room_tracker() if self.side_renderer else None
        self._ears = np.zeros((2, b, F_stft), np.complex64)
        self._block_out = np.zeros((2, b * hop), np.float32)
        self._block_out_t = np.zeros((b * hop, 2), np.float32)  # frame-major copy emit takes

    def reset(self) -> None:
        """Forget the stream: analysis/synthesis state, frames of the block being filled, and
        the timings (a new :attr:`timing`)."""
        self.timing = BlockTiming()
        self._ana = dsp.StreamingSTFT(*self.stft_params)
        self._syn = dsp.StreamingISTFT(*self.stft_params, channels=2)
        self.n_pending = 0
        self._hop_fill = 0
        if self._room is not None:
            self._room.reset()

    @property
    def room_probability(self):
        """The side renderer's latest estimate that the stream is in a room (0.5 before a quarter
        second is heard), or None when its blend does not depend on it."""
        return None if self._room is None else self._room.probability

    def push(self, x: np.ndarray) -> None:
        """Feed ``(n,)`` float32 mono samples at the STFT rate; emits every block they finish."""
        clock, hop = time.perf_counter, self.hop
        pos = 0
        # Feed the analyser up to each block boundary, so the samples kept behind the context
        # end exactly at the newest frame whenever a block runs.
        while pos < len(x):
            to_block = (self.block_frames - self.n_pending) * hop - self._hop_fill
            take = min(len(x) - pos, to_block)
            piece = x[pos:pos + take]
            t0 = clock()
            k = self._ana.push_into(piece, self._frame_buf)
            self.timing.stage_s["stft"] += clock() - t0
            self._keep_samples(piece)
            self._pending[self.n_pending:self.n_pending + k] = self._frame_buf[:k]
            self.n_pending += k
            self._hop_fill = (self._hop_fill + take) % hop
            pos += take
            if self.n_pending == self.block_frames:
                self._run_block()
                self.n_pending = 0

    def _finish_block(self, t0: float, t1: float, t2: float) -> None:
        """Synthesise the masked block in ``self._ears``, emit it and record the stage times
        (t0 block start, t1 network input ready, t2 network done)."""
        clock, stage = time.perf_counter, self.timing.stage_s
        self._syn.push_into(self._ears, self._block_out)
        np.copyto(self._block_out_t, self._block_out.T)  # no per-block allocation
        t3 = clock()
        self.emit(self._block_out_t)
        t4 = clock()
        stage["stft"] += t1 - t0  # ring update and network input (analysis side)
        stage["audio_net"] += t2 - t1
        stage["mask_istft"] += t3 - t2
        stage["resample_out"] += t4 - t3
        self.timing.blocks += 1
        self.timing.block_ms.append((t4 - t0) * 1e3)

    def _block_masks(self, new_frames: np.ndarray) -> np.ndarray:
        """Run the audio net on the context in ``self._net_in[0]`` with the current visual
        feature; returns the masks of the block's frames (``lookahead_frames`` before the
        newest), mirror-averaged, side-scaled and blended with the rendered side as configured,
        ``(n_masks, 2, F, block_frames)`` float32, a view valid until the next block.
        ``new_frames``: the block's new ``(block_frames, F)`` frames on the model's grid (what the
        side renderer's room tracker hears)."""
        K, a, b = self.output_frames, self.lookahead_frames, self.block_frames
        sel = slice(K - a - b, K - a)  # the net returns the masks of the context's last K frames
        feature, rendered = self.visual.snapshot()  # one frame's feature and rendered side
        if not self.mirror_average:
            masks = self.backend.audio(self._net_in, feature)[0][:, :, :, sel]
        else:
            if self._copy_context:
                np.copyto(self._net_in[1], self._net_in[0])
            both = self.backend.audio(self._net_in, feature)  # (2, n_masks, 2, F, K): own, mirrored
            masks = average_mirrored_masks(both[0, :, :, :, sel], both[1, :, :, :, sel], self.bundle.mask_kind,
                                           out=self._mirror_masks)
        if self._gain_masks is not None:
            masks = scale_side(masks, self.side_gain, self.bundle.mask_kind, out=self._gain_masks)
        if self.side_renderer is not None:
            room = None if self._room is None else self._room.push(new_frames)
            masks = self.side_renderer.blend(masks, rendered, room, out=self._blend_masks)
        return masks

    def _keep_samples(self, piece: np.ndarray) -> None:
        raise NotImplementedError

    def _run_block(self) -> None:
        raise NotImplementedError


class ModelRateRunner(_CpuRunner):
    """The model's STFT grid: a ring of the last T frames, oldest first, and of the raw samples
    behind them (their RMS scales the network input)."""

    def __init__(self, bundle, backend, visual, block_frames: int, lookahead_frames: int, emit: Emit,
                 side_gain: float = 1.0):
        super().__init__(bundle, backend, visual, block_frames, lookahead_frames,
                         (bundle.n_fft, bundle.win_length, bundle.hop), emit, side_gain)
        T = self.context_frames
        self._ctx = np.zeros((T, bundle.n_bins), np.complex64)
        self._ctx_samples = np.zeros(T * self.hop, np.float32)

    def reset(self) -> None:
        super().reset()
        self._ctx[:] = 0
        self._ctx_samples[:] = 0

    def _keep_samples(self, piece: np.ndarray) -> None:
        s, take = self._ctx_samples, len(piece)
        s[:-take] = s[take:]
        s[-take:] = piece

    def _run_block(self) -> None:
        clock = time.perf_counter
        t0 = clock()
        b, a, T = self.block_frames, self.lookahead_frames, self.context_frames
        ctx = self._ctx
        ctx[:-b] = ctx[b:]
        ctx[-b:] = self._pending
        scale = input_scale(self._ctx_samples, self.bundle.input_rms, self.bundle.rms_floor)
        network_input(ctx, scale, out=self._net_in[0])
        t1 = clock()
        masks = self._block_masks(self._pending)
        t2 = clock()
        apply_masks(ctx[T - a - b:T - a], masks, self.bundle.mask_kind, out=self._ears)
        self._finish_block(t0, t1, t2)


class FullBandRunner(_CpuRunner):
    """The device-rate grid ``grid`` (streambin.full_band.device_grid): the network input from
    the device bins below the model's Nyquist, masks extended to the whole band, no resampler."""

    def __init__(self, bundle, backend, visual, block_frames: int, lookahead_frames: int, grid, emit: Emit,
                 side_gain: float = 1.0):
        super().__init__(bundle, backend, visual, block_frames, lookahead_frames,
                         (grid.n_fft, grid.win_length, grid.hop), emit, side_gain)
        b, a, T, F = self.block_frames, self.lookahead_frames, self.context_frames, bundle.n_bins
        F_stft = grid.n_fft // 2 + 1
        self._mapper = FullBandMapper(grid, DSP_MASK_MODES[bundle.mask_kind], bundle.n_masks, b)
        # Rings written twice (rows i and i + T), so the last T rows are always one contiguous
        # slice and nothing is shifted (a shift of overlapping rows would copy through a
        # temporary every block).
        self._ctx2 = np.zeros((2 * T, F), np.complex64)
        self._energy2 = np.zeros(2 * T, np.float64)
        self._head = 0                                       # next row to write, in [0, T)
        self._dev_ring = np.zeros((a + b, F_stft), np.complex64)  # device frames still to be masked
        self._model_block = np.zeros((b, F), np.complex64)
        self._power = np.zeros((2, b, F), np.float32)
        self._energy_new = np.zeros(b, np.float32)
        # Device samples behind the newest frames (for grids read off the samples, 44.1 kHz).
        self._recent = RecentSamples(grid.win_length + b * self.hop if self._mapper.needs_samples else 0)
        # Band energy -> mean square of the model-rate signal: the window-square sum of the
        # model's STFT (Parseval over overlapping frames), as the resampling path's RMS of the
        # model-rate samples behind the context.
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(bundle.win_length) / bundle.win_length)
        self._energy_per_mean_square = float(bundle.n_fft * np.sum(w * w) * T)
        self._bin_weight = np.full(F, 2.0, np.float32)     # one-sided spectrum: DC and Nyquist once
        self._bin_weight[[0, -1]] = 1.0

    def reset(self) -> None:
        super().reset()
        self._ctx2[:] = 0
        self._energy2[:] = 0
        self._head = 0
        self._dev_ring[:] = 0
        self._recent.reset()
        self._mapper.reset()

    def _keep_samples(self, piece: np.ndarray) -> None:
        self._recent.push(piece)

    def _run_block(self) -> None:
        clock = time.perf_counter
        t0 = clock()
        b, a, T = self.block_frames, self.lookahead_frames, self.context_frames
        new, p = self._model_block, self._power
        self._mapper.to_model_bins(self._pending, new, self._recent.last() if self._recent.size else None)
        # Band energy of the new frames stands in for the RMS of the model-rate samples.
        np.multiply(new.real, new.real, out=p[0])
        np.multiply(new.imag, new.imag, out=p[1])
        np.add(p[0], p[1], out=p[0])
        np.dot(p[0], self._bin_weight, out=self._energy_new)
        for i in range(b):
            row = (self._head + i) % T
            self._ctx2[row] = self._ctx2[row + T] = new[i]
            self._energy2[row] = self._energy2[row + T] = self._energy_new[i]
        self._head = (self._head + b) % T
        ctx = self._ctx2[self._head:self._head + T]              # last T frames, oldest first
        energy = float(np.add.reduce(self._energy2[self._head:self._head + T]))
        rms = math.sqrt(max(energy, 0.0) / self._energy_per_mean_square)
        scale = input_scale_from_rms(rms, self.bundle.input_rms, self.bundle.rms_floor)
        # Copy, then scale in place: a product formed from the strided view would go through
        # a temporary buffer.
        np.copyto(self._net_in[0, 0], ctx.real.T)
        np.copyto(self._net_in[0, 1], ctx.imag.T)
        np.multiply(self._net_in[0], scale, out=self._net_in[0])
        ring = self._dev_ring
        for i in range(a):                                       # row by row: no overlapping copy
            ring[i] = ring[i + b]
        ring[a:] = self._pending
        t1 = clock()
        masks = self._block_masks(new)
        t2 = clock()
        full = self._mapper.device_masks(masks, ctx[T - a - b:T - a])
        apply_masks(ring[:b], full, self.bundle.mask_kind, out=self._ears)
        self._finish_block(t0, t1, t2)


class GpuRunner:
    """The CUDA pipeline (:class:`streambin.gpu_engine.GpuBlockRunner`): collects whole blocks
    of model-rate samples and runs STFT .. ISTFT on the GPU; the visual feature is copied to the
    device only when the visual net has produced a new one."""

    def __init__(self, gpu_block_runner, visual, block_frames: int, hop: int, emit: Emit):
        self.gpu, self.visual, self.emit = gpu_block_runner, visual, emit
        self.block_frames, self.hop = int(block_frames), int(hop)
        self._block_in = np.zeros(self.block_frames * self.hop, np.float32)
        self._block_out_t = np.zeros((self.block_frames * self.hop, 2), np.float32)

    def reset(self) -> None:
        """Forget the stream (the GPU pipeline's state, the partial block, the timings)."""
        self.timing = BlockTiming()
        self.gpu.reset()
        self._fill = 0
        self._feature_runs = -1

    @property
    def n_pending(self) -> int:
        """Whole frames collected towards the next block."""
        return self._fill // self.hop

    def push(self, x: np.ndarray) -> None:
        """Feed ``(n,)`` float32 mono samples at the model rate; emits every block they finish."""
        clock, block = time.perf_counter, self._block_in
        pos = 0
        while pos < len(x):
            take = min(len(x) - pos, len(block) - self._fill)
            block[self._fill:self._fill + take] = x[pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == len(block):
                t0 = clock()
                if self.visual.runs != self._feature_runs:  # a new camera frame was seen
                    self.gpu.set_feature(self.visual.current)
                    self._feature_runs = self.visual.runs
                out = self.gpu.run_block(block, self.gpu.bundle.input_rms, self.gpu.bundle.rms_floor)
                t1 = clock()
                np.copyto(self._block_out_t, out.T)
                self.emit(self._block_out_t)
                t2 = clock()
                self.timing.stage_s["audio_net"] += t1 - t0  # the whole GPU block: STFT .. ISTFT
                self.timing.stage_s["resample_out"] += t2 - t1
                self.timing.blocks += 1
                self.timing.block_ms.append((t2 - t0) * 1e3)
                self._fill = 0
