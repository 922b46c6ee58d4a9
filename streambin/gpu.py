"""The DSP chain on the GPU, on device memory owned by PyTorch tensors or CuPy arrays.

``streambin._C``'s CUDA classes take raw device pointers and a CUDA stream handle; this module
turns framework arrays into those (``__cuda_array_interface__``, DLPack through torch, or a
torch tensor directly) after checking dtype, shape and contiguity, so nothing unchecked
reaches a kernel.

Example (torch)::

    chain = CudaDspChain(channels=2, max_chunk=4096)
    x = torch.randn(480, device="cuda")
    spec = torch.empty(chain.max_frames, 257, dtype=torch.complex64, device="cuda")
    k = chain.stft(x, spec)                          # frames into spec[:k]
    ears = torch.empty(2, k, 257, dtype=torch.complex64, device="cuda")
    chain.apply_mask(spec[:k], masks, ears, mode="side")   # masks: (1, 2, 257, k) float32, may be a view
    out = torch.empty(2, k * 160, device="cuda")
    chain.istft(ears, out)

All work is enqueued on ``stream`` (a ``torch.cuda.Stream``, a CuPy stream, a raw handle, or
None for torch's current stream); nothing here synchronises. Buffers and cuFFT plans are
allocated when the chain is built (a plan per new frame-batch size the first time it is seen).
"""

from __future__ import annotations

import numpy as np

from streambin import dsp

_TYPESTR = {np.dtype(np.float32): "<f4", np.dtype(np.complex64): "<c8"}


def _require_cuda():
    if not dsp.has_cuda():
        raise RuntimeError("streambin._C was built without CUDA: install nvcc and `pip install nvidia-cufft`, "
                           "then rebuild (STREAMBIN_CUDA=1 pip install -e .)")
    if dsp.cuda_device_count() == 0:
        raise RuntimeError("no CUDA GPU is visible to streambin._C (driver missing or no device)")


def device_array(obj, name: str, dtype, shape=None):
    """Validate a device array and return ``(pointer, shape, element_strides)``.

    ``obj``: a torch CUDA tensor, anything with ``__cuda_array_interface__`` (CuPy, Numba), or
    anything torch can import through DLPack. ``shape``: expected shape with None for "any";
    the message names the expected layout when the array does not match.
    """
    dtype = np.dtype(dtype)
    expected = f"({', '.join('*' if d is None else str(d) for d in shape)}) {dtype.name}" if shape else dtype.name
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None and hasattr(obj, "data_ptr") and hasattr(obj, "is_cuda"):
        if not obj.is_cuda:
            raise ValueError(f"{name}: expected a CUDA tensor {expected}, got a tensor on {obj.device}")
        got_dtype = {"torch.float32": np.dtype(np.float32), "torch.complex64": np.dtype(np.complex64)}.get(
            str(obj.dtype))
        got_shape = tuple(obj.shape)
        ptr = obj.data_ptr()
        strides = tuple(obj.stride())
    elif cai is not None:
        got_dtype = np.dtype(cai["typestr"])
        got_shape = tuple(cai["shape"])
        ptr = int(cai["data"][0])
        itemsize = got_dtype.itemsize
        if cai.get("strides") is None:  # C-contiguous by the interface's definition
            strides = tuple(int(np.prod(got_shape[i + 1:], dtype=np.int64)) for i in range(len(got_shape)))
        else:
            if any(s % itemsize for s in cai["strides"]):
                raise ValueError(f"{name}: strides must be whole elements")
            strides = tuple(s // itemsize for s in cai["strides"])
    elif hasattr(obj, "__dlpack__"):
        import torch

        return device_array(torch.from_dlpack(obj), name, dtype, shape)
    else:
        raise TypeError(f"{name}: expected a CUDA array {expected} (torch tensor, CuPy array or DLPack), "
                        f"got {type(obj).__name__}")
    if got_dtype != dtype:
        raise ValueError(f"{name}: expected {expected}, got dtype {got_dtype}")
    if shape is not None:
        if len(got_shape) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got_shape)):
            raise ValueError(f"{name}: expected shape {expected}, got {got_shape}")
    return ptr, got_shape, strides


def _contiguous(name, shape, strides):
    want = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
    if any(n > 1 and s != w for n, s, w in zip(shape, strides, want)):
        raise ValueError(f"{name}: must be contiguous, got strides {strides} for shape {shape}")


def stream_handle(stream) -> int:
    """A raw ``cudaStream_t`` as int from a torch/CuPy stream, an int, or None (torch's current)."""
    if stream is None:
        try:
            import torch

            return int(torch.cuda.current_stream().cuda_stream)
        except ImportError:
            return 0
    if isinstance(stream, (int, np.integer)):
        return int(stream)
    for attr in ("cuda_stream", "ptr"):  # torch.cuda.Stream / cupy.cuda.Stream
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    raise TypeError(f"stream must be a torch/CuPy CUDA stream, an int handle or None, got {type(stream).__name__}")


class CudaDspChain:
    """Streaming STFT, complex-mask multiply and ISTFT on one GPU (see the module docstring).

    Args:
        channels: signals the synthesiser produces (2 for left/right).
        max_chunk: most samples one :meth:`stft` call may carry.
        device: CUDA device index.
    """

    def __init__(self, n_fft: int = 512, win_length: int = 400, hop_size: int = 160, channels: int = 2,
                 max_chunk: int = 8192, device: int = 0):
        _require_cuda()
        C = dsp._C
        self.n_fft, self.win_length, self.hop_size, self.channels = n_fft, win_length, hop_size, channels
        self.n_bins = n_fft // 2 + 1
        self.max_frames = max_chunk // hop_size + 1
        self.latency_samples = win_length - hop_size
        self._stft = C.StreamingStftCuda(n_fft, win_length, hop_size, max_chunk, device)
        self._istft = C.StreamingIstftCuda(n_fft, win_length, hop_size, channels, self.max_frames, device)

    def frames_for(self, n: int) -> int:
        return int(self._stft.frames_for(int(n)))

    def stft(self, x, out, stream=None) -> int:
        """``x``: (n,) float32 on the GPU; ``out``: (>= k, n_bins) complex64. Returns k."""
        px, (n,), sx = device_array(x, "CudaDspChain.stft(x)", np.float32, (None,))
        _contiguous("CudaDspChain.stft(x)", (n,), sx)
        k = self.frames_for(n)
        po, oshape, so = device_array(out, "CudaDspChain.stft(out)", np.complex64, (None, self.n_bins))
        _contiguous("CudaDspChain.stft(out)", oshape, so)
        if oshape[0] < k:
            raise ValueError(f"CudaDspChain.stft(out): need at least ({k}, {self.n_bins}) complex64, got {oshape}")
        return int(self._stft.push_ptr(px, n, po, stream_handle(stream)))

    def apply_mask(self, spec, mask, out, mode: str = "direct", stream=None) -> None:
        """``spec`` (k, n_bins) complex64; ``mask`` (n_masks, 2, n_bins, k) float32, any strides;
        ``out`` (n_out, k, n_bins) complex64 (n_out = 2 for mode "side", n_masks otherwise)."""
        if mode not in ("direct", "side"):
            raise ValueError(f"mode must be 'direct' or 'side', got {mode!r}")
        ps, (k, F), ss = device_array(spec, "apply_mask(spec)", np.complex64, (None, self.n_bins))
        _contiguous("apply_mask(spec)", (k, F), ss)
        pm, mshape, ms = device_array(mask, "apply_mask(mask)", np.float32, (None, 2, F, k))
        n_masks = mshape[0]
        if mode == "side" and n_masks != 1:
            raise ValueError(f"apply_mask: mode 'side' takes exactly one mask, got {n_masks}")
        n_out = 2 if mode == "side" else n_masks
        po, oshape, so = device_array(out, "apply_mask(out)", np.complex64, (n_out, k, F))
        _contiguous("apply_mask(out)", oshape, so)
        dsp._C.apply_mask_ptr(ps, k, F, pm, n_masks, ms[0], ms[1], ms[2], ms[3], 1 if mode == "side" else 0,
                              po, stream_handle(stream))

    def istft(self, frames, out, stream=None) -> None:
        """``frames`` (channels, k, n_bins) complex64 -> ``out`` (channels, k*hop) float32."""
        pf, fshape, sf = device_array(frames, "CudaDspChain.istft(frames)", np.complex64,
                                      (self.channels, None, self.n_bins))
        _contiguous("CudaDspChain.istft(frames)", fshape, sf)
        k = fshape[1]
        if k > self.max_frames:
            raise ValueError(f"CudaDspChain.istft: {k} frames exceed max_frames={self.max_frames}")
        po, oshape, so = device_array(out, "CudaDspChain.istft(out)", np.float32, (self.channels, k * self.hop_size))
        _contiguous("CudaDspChain.istft(out)", oshape, so)
        self._istft.push_ptr(pf, k, po, stream_handle(stream))

    def reset(self) -> None:
        self._stft.reset()
        self._istft.reset()
