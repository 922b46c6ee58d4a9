"""The Spatializer's GPU mode: model-rate audio stays on the GPU from STFT to ISTFT.

Used when the backend is torch on CUDA and streambin._C has CUDA. Per audio block, on one
CUDA stream, with every buffer allocated in ``__init__`` (fixed addresses):

    new model-rate samples (host, pinned) -> device -> _C STFT -> context ring (two fixed
    buffers, swapped) -> normalised network input (RMS computed on the device, no sync)
    -> audio net (captured once as a CUDA graph; eager if capture fails) -> _C mask multiply
    (both ears, one launch) -> _C ISTFT -> pinned host output.

Only the block's new samples cross to the device and its finished samples back; resampling
to and from the device rate stays on the host (it is cheap and keeps the latency plan of the
CPU path). The framing, normalisation and mask selection are exactly the CPU path's
(streambin/spatializer.py), which the GPU tests compare against.

Unverified on this project's CI machines (no GPU); see tests/test_gpu.py.
"""

from __future__ import annotations

import logging

import numpy as np

from streambin.signal_contract import DSP_MASK_MODES, input_scale_torch, network_input_torch

log = logging.getLogger("streambin")


class GpuBlockRunner:
    """Runs the per-block work of a Spatializer on the GPU.

    Args:
        bundle: the model bundle (STFT parameters, context, normalisation).
        model: the torch generator on CUDA (``model.audio(spec, feature)``).
        block_frames, lookahead_frames: as the Spatializer's.
        use_graph: capture the audio net as a CUDA graph.
    """

    def __init__(self, bundle, model, block_frames: int, lookahead_frames: int, device: int = 0,
                 use_graph: bool = True):
        import torch

        from streambin.gpu import CudaDspChain

        self.torch = torch
        self.bundle, self.model = bundle, model
        self.mask_mode = DSP_MASK_MODES[bundle.mask_kind]      # the CUDA mask kernel's mode
        self.b, self.a, self.T, self.hop = block_frames, lookahead_frames, bundle.context_frames, bundle.hop
        self.K = bundle.output_frames
        self.F = bundle.n_bins
        self.dev = torch.device("cuda", device)
        self.stream = torch.cuda.Stream(self.dev)
        self.chain = CudaDspChain(bundle.n_fft, bundle.win_length, bundle.hop, channels=2,
                                  max_chunk=block_frames * bundle.hop, device=device)
        cf, f32 = torch.complex64, torch.float32
        with torch.cuda.device(self.dev):
            self.ctx = [torch.zeros(self.T, self.F, dtype=cf, device=self.dev) for _ in range(2)]
            self.samples = [torch.zeros(self.T * self.hop, dtype=f32, device=self.dev) for _ in range(2)]
            self.cur = 0
            self.x_dev = torch.zeros(block_frames * self.hop, dtype=f32, device=self.dev)
            self.frames = torch.zeros(self.chain.max_frames, self.F, dtype=cf, device=self.dev)
            self.net_in = torch.zeros(1, 2, self.F, self.T, dtype=f32, device=self.dev)
            self.feature = torch.zeros((1,) + tuple(bundle.feature_shape), dtype=f32, device=self.dev)
            self.ears = torch.zeros(2, block_frames, self.F, dtype=cf, device=self.dev)
            self.out_dev = torch.zeros(2, block_frames * self.hop, dtype=f32, device=self.dev)
        self.x_host = torch.zeros(block_frames * self.hop, dtype=f32).pin_memory()
        self.out_host = torch.zeros(2, block_frames * self.hop, dtype=f32).pin_memory()
        self.masks = None
        self.graph = None
        if use_graph:
            self._capture()

    # -- the audio network, eager or replayed from a graph

    def _net_eager(self):
        with self.torch.inference_mode():  # masks of the context's last K frames, as the CPU path's
            return self.model.audio(self.net_in, self.feature, last_frames=self.K)

    def _capture(self) -> None:
        torch = self.torch
        try:
            with torch.cuda.stream(self.stream):
                for _ in range(3):  # warm up (cuDNN autotuning, lazy allocations) before capture
                    self._net_eager()
            torch.cuda.current_stream(self.dev).wait_stream(self.stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.masks = self._net_eager()
            self.graph = graph
            log.info("streambin: GPU audio net captured as a CUDA graph")
        except Exception as exc:  # e.g. ops that do not support capture: fall back, say so
            self.graph = None
            self.masks = None
            log.warning("streambin: CUDA graph capture failed (%s); running the audio net eagerly", exc)

    def _run_net(self):
        if self.graph is not None:
            self.graph.replay()
            return self.masks
        return self._net_eager()

    def set_feature(self, feature: np.ndarray) -> None:
        """Copy the cached visual feature ``feature_shape`` float32 into the fixed device buffer."""
        with self.torch.cuda.stream(self.stream):
            self.feature[0].copy_(self.torch.from_numpy(np.ascontiguousarray(feature)), non_blocking=False)

    def reset(self) -> None:
        self.stream.synchronize()
        for t in self.ctx + self.samples:
            t.zero_()
        self.chain.reset()

    # -- one block

    def run_block(self, x16_block: np.ndarray, input_rms: float, rms_floor: float) -> np.ndarray:
        """``x16_block``: the block's ``block_frames * hop`` new model-rate samples, float32.
        Returns the ``(2, block_frames * hop)`` finished samples (host, float32; a view of a
        reused buffer: copy before the next call)."""
        torch = self.torch
        b, a, T, hop = self.b, self.a, self.T, self.hop
        with torch.cuda.stream(self.stream):
            self.x_host.numpy()[:] = x16_block
            self.x_dev.copy_(self.x_host, non_blocking=True)
            k = self.chain.stft(self.x_dev, self.frames, stream=self.stream)
            if k != b:
                raise AssertionError(f"GPU STFT produced {k} frames for a block of {b}")
            src, dst = self.cur, 1 - self.cur
            ctx, nxt = self.ctx[src], self.ctx[dst]
            nxt[:T - b].copy_(ctx[b:])
            nxt[T - b:].copy_(self.frames[:b])
            s_old, s_new = self.samples[src], self.samples[dst]
            s_new[:-b * hop].copy_(s_old[b * hop:])
            s_new[-b * hop:].copy_(self.x_dev)
            self.cur = dst
            scale = input_scale_torch(s_new[None], input_rms, rms_floor)
            self.net_in.copy_(network_input_torch(nxt.T[None], scale))
            masks = self._run_net()[0]                                     # (n_masks, 2, F, K)
            K = self.K
            self.chain.apply_mask(nxt[T - a - b:T - a], masks[:, :, :, K - a - b:K - a], self.ears,
                                  mode=self.mask_mode, stream=self.stream)
            self.chain.istft(self.ears, self.out_dev, stream=self.stream)
            self.out_host.copy_(self.out_dev, non_blocking=True)
        self.stream.synchronize()
        return self.out_host.numpy()
