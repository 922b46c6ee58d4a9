"""Inference backends: run a bundle's visual and audio networks.

Every backend implements :class:`InferenceBackend`::

    visual(frames)        (B, H_v, W_v, 3) uint8 RGB            -> (B, *feature_shape) float32
    audio(spec, feature)  (B, 2, n_bins, T) float32, (B, *fs)   -> (B, n_masks, 2, n_bins, T) float32
    close()

Inputs are numpy arrays; outputs are numpy arrays the caller owns. Use
:func:`create_backend` to pick one::

    backend = create_backend(bundle, backend="auto", device="auto")

"auto" tries, in order: TensorRT (importable, a CUDA GPU, and an engine in the bundle that
matches this GPU and TensorRT version), ONNX Runtime CUDA (CUDAExecutionProvider available and
device is not "cpu"), ONNX Runtime CPU, then torch (bundle has weights.pt). The choice and the
reason are logged on the "streambin" logger.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Tuple

import numpy as np

log = logging.getLogger("streambin")

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")
DEVICES = ("auto", "cpu", "cuda")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (package, GPU or engine missing)."""


class InferenceBackend:
    """Common interface and input checks; subclasses implement _visual/_audio/close.

    Attributes: ``name`` ("onnxruntime", "tensorrt", "torch"), ``device`` ("cpu", "cuda"),
    ``bundle`` (the :class:`streambin.bundle.Bundle`).
    """

    name = "base"

    def __init__(self, bundle, device: str):
        self.bundle = bundle
        self.device = device
        self._frame_shape: Tuple[int, ...] = tuple(bundle.frame_shape)
        self._feature_shape: Tuple[int, ...] = tuple(bundle.feature_shape)
        self._spec_shape: Tuple[int, ...] = tuple(bundle.spec_shape)

    # -- checks shared by every backend
    def _check_frames(self, frames) -> np.ndarray:
        if not isinstance(frames, np.ndarray):
            raise TypeError(f"frames must be a numpy array (B, {', '.join(map(str, self._frame_shape))})"
                            f" uint8, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must be uint8 RGB (B, {', '.join(map(str, self._frame_shape))}),"
                            f" got dtype {frames.dtype}")
        if frames.ndim != 4 or frames.shape[1:] != self._frame_shape or frames.shape[0] < 1:
            raise ValueError(f"frames must have shape (B, {', '.join(map(str, self._frame_shape))}) "
                             f"with B >= 1 (resize frames to the bundle's visual size first), "
                             f"got {frames.shape}")
        return np.ascontiguousarray(frames)

    def _check_audio(self, spec, feature) -> Tuple[np.ndarray, np.ndarray]:
        sshape = ", ".join(map(str, self._spec_shape))
        fshape = ", ".join(map(str, self._feature_shape))
        for arr, nm, shp in ((spec, "spec", sshape), (feature, "feature", fshape)):
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{nm} must be a numpy array (B, {shp}) float32, "
                                f"got {type(arr).__name__}")
            if arr.dtype != np.float32:
                raise TypeError(f"{nm} must be float32 (B, {shp}), got dtype {arr.dtype}")
        if spec.ndim != 4 or spec.shape[1:] != self._spec_shape or spec.shape[0] < 1:
            raise ValueError(f"spec must have shape (B, {sshape}) with B >= 1, got {spec.shape}")
        if self.bundle.shared_context and spec.shape[0] == 1:  # one context for every feature
            if feature.ndim < 1 or feature.shape[1:] != self._feature_shape or feature.shape[0] < 1:
                raise ValueError(f"feature must have shape (B, {fshape}) with B >= 1, got {feature.shape}")
        elif feature.shape != (spec.shape[0],) + self._feature_shape:
            raise ValueError(f"feature must have shape ({spec.shape[0]}, {fshape}) to match spec's "
                             f"batch {spec.shape[0]}, got {feature.shape}")
        return np.ascontiguousarray(spec), np.ascontiguousarray(feature)

    # -- public API
    def visual(self, frames: np.ndarray) -> np.ndarray:
        """frames (B, H_v, W_v, 3) uint8 RGB -> feature (B, *feature_shape) float32."""
        return self._visual(self._check_frames(frames))

    def audio(self, spec: np.ndarray, feature: np.ndarray) -> np.ndarray:
        """spec (B, 2, n_bins, T) float32 normalised, feature (B, *feature_shape) float32
        -> masks (B, n_masks, 2, n_bins, K) float32 on the mono spectrogram of the context's last
        K = ``bundle.output_frames`` frames: in [-1, 1] for "side", in [-2, 2] for "left_right"
        (docs/architecture.md). With ``bundle.shared_context`` spec may have batch 1: one
        context under all B features."""
        spec, feature = self._check_audio(spec, feature)
        return self._audio(spec, feature)

    def _visual(self, frames: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _audio(self, spec: np.ndarray, feature: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release sessions/engines and device memory. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} device={self.device!r}>"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _ort_cuda_available() -> bool:
    if not _has_module("onnxruntime"):
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _gpu_visible() -> bool:
    """Whether a CUDA GPU may be usable: streambin._C sees a device, or ONNX Runtime offers its
    CUDA provider, or TensorRT is installed (it brings its own CUDA runtime)."""
    from streambin import dsp

    return dsp.cuda_device_count() > 0 or _ort_cuda_available() or _has_module("tensorrt")


def create_backend(bundle, backend: str = "auto", device: str = "auto", num_threads=None,
                   **options) -> InferenceBackend:
    """Create an inference backend for ``bundle`` (a Bundle or a bundle directory path).

    ``backend``: "auto" | "onnxruntime" | "tensorrt" | "torch".
    ``device``: "auto" | "cpu" | "cuda".
    ``num_threads``: CPU threads for inference, whichever backend is chosen (ONNX Runtime's
    intra-op threads, torch's thread count; TensorRT ignores it).
    ``options`` are passed to the backend (e.g. ``io_binding`` for onnxruntime).
    Raises BackendUnavailable with the reason when the requested backend cannot run.
    """
    from streambin.bundle import Bundle, load_bundle

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    ort_options = dict(options, **({"intra_op_num_threads": int(num_threads)} if num_threads else {}))
    torch_options = dict(options, **({"num_threads": int(num_threads)} if num_threads else {}))

    if backend == "tensorrt":
        if device == "cpu":
            raise BackendUnavailable("the TensorRT backend needs device 'cuda', got 'cpu'")
        from streambin.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(bundle, **options)
    if backend == "onnxruntime":
        from streambin.backends.onnxruntime_backend import OnnxRuntimeBackend

        if device == "auto":
            device = "cuda" if _ort_cuda_available() else "cpu"
        return OnnxRuntimeBackend(bundle, device=device, **ort_options)
    if backend == "torch":
        from streambin.backends.torch_backend import TorchBackend

        return TorchBackend(bundle, device=device, **torch_options)

    # auto
    if device == "auto" and not _gpu_visible():
        # A CPU machine: nothing to say about TensorRT or CUDA at INFO level.
        log.debug("streambin: no CUDA GPU visible; TensorRT and ONNX Runtime CUDA not tried")
        device = "cpu"
    if device != "cpu":
        if _has_module("tensorrt"):
            from streambin.backends import tensorrt_backend as trtb

            try:
                key = trtb.matching_engine_key(bundle)
            except BackendUnavailable as exc:
                log.info("streambin: not using TensorRT: %s", exc)
                key = None
            if key is not None:
                log.info("streambin: using TensorRT (engine %s matches this GPU)", key)
                return trtb.TensorRTBackend(bundle, engine_key=key, **options)
        else:
            log.info("streambin: not using TensorRT: the tensorrt package is not installed")
        if _ort_cuda_available():
            from streambin.backends.onnxruntime_backend import OnnxRuntimeBackend

            log.info("streambin: using ONNX Runtime on CUDA (CUDAExecutionProvider available)")
            return OnnxRuntimeBackend(bundle, device="cuda", **ort_options)
        if device == "cuda":
            raise BackendUnavailable("device 'cuda' was requested but neither a matching TensorRT "
                                     "engine nor ONNX Runtime's CUDAExecutionProvider is available "
                                     "(pip install onnxruntime-gpu, or build an engine with "
                                     "python -m export.to_trt)")
    if _has_module("onnxruntime"):
        from streambin.backends.onnxruntime_backend import OnnxRuntimeBackend

        log.info("streambin: using ONNX Runtime on CPU%s",
                 "" if device == "cpu" else " (no CUDA provider or TensorRT engine available)")
        return OnnxRuntimeBackend(bundle, device="cpu", **ort_options)
    if bundle.weights is not None and _has_module("torch"):
        from streambin.backends.torch_backend import TorchBackend

        log.info("streambin: using torch (onnxruntime is not installed)")
        return TorchBackend(bundle, device="cpu" if device == "auto" else device, **torch_options)
    raise BackendUnavailable("no inference backend can run this bundle: install onnxruntime "
                             "(pip install onnxruntime), or torch with a bundle that has weights.pt")


__all__ = ["InferenceBackend", "BackendUnavailable", "create_backend", "BACKENDS", "DEVICES"]
