"""TensorRT backend: runs the engines that ``python -m export.to_trt`` built into the bundle.

UNVERIFIED ON THE DEVELOPMENT MACHINE: it has neither TensorRT nor a GPU. The code follows the
TensorRT 10/11 Python API (name-based I/O: ``get_tensor_name``/``get_tensor_mode``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) and uses cuda-python
(``pip install cuda-python``) for device memory and the stream, as NVIDIA's samples do.

Engines are keyed by GPU name, compute capability and TensorRT version (:func:`engine_key`); a
plan built for another GPU or TensorRT version is never loaded (it is rebuilt by export.to_trt).
:class:`TrtRunner` allocates all device buffers once, in ``__init__``, for ``max_batch``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from streambin.backends import BackendUnavailable, InferenceBackend

log = logging.getLogger("streambin")

TRT_INSTALL_HINT = ("pip install tensorrt cuda-python (needs an NVIDIA GPU and driver); see "
                    "https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/"
                    "installing.html")


def import_tensorrt():
    """The tensorrt module, or BackendUnavailable with one sentence saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed: {TRT_INSTALL_HINT}.") from exc
    return trt


def import_cudart():
    """cuda-python's runtime module (new and old import paths), or BackendUnavailable."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise BackendUnavailable("cuda-python is not installed (TensorRT needs it here for GPU "
                                     "memory): pip install cuda-python.") from exc
    return cudart


def _cuda_check(result):
    """Unpack a cuda-python (err, *values) tuple; raise on error."""
    cudart = import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, msg = cudart.cudaGetErrorString(err)
        raise RuntimeError(f"CUDA error {err}: {msg.decode() if isinstance(msg, bytes) else msg}")
    return values[0] if len(values) == 1 else (values or None)


def gpu_info(device_id: int = 0) -> Dict[str, object]:
    """{"name": str, "major": int, "minor": int} of CUDA device ``device_id``.

    Raises BackendUnavailable with one sentence when cuda-python or a GPU is missing.
    """
    cudart = import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        raise BackendUnavailable("No CUDA GPU is visible: TensorRT needs an NVIDIA GPU with its "
                                 "driver installed (check nvidia-smi and CUDA_VISIBLE_DEVICES).")
    if not 0 <= device_id < count:
        raise BackendUnavailable(f"CUDA device {device_id} does not exist ({count} visible).")
    prop = _cuda_check(cudart.cudaGetDeviceProperties(device_id))
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return {"name": name.split("\x00")[0].strip(), "major": int(prop.major),
            "minor": int(prop.minor)}


def engine_key(gpu_name: str, major: int, minor: int, trt_version: str) -> str:
    """Key of an engine directory, e.g. ``nvidia-h100-80gb-hbm3_sm90_trt10.13.0.35``."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    return f"{slug}_sm{major}{minor}_trt{trt_version}"


def current_engine_key(device_id: int = 0) -> str:
    """Engine key for this GPU and the installed TensorRT (BackendUnavailable if either lacks)."""
    trt = import_tensorrt()
    info = gpu_info(device_id)
    return engine_key(info["name"], info["major"], info["minor"], trt.__version__)


def matching_engine_key(bundle, device_id: int = 0) -> Optional[str]:
    """The bundle's engine key for this GPU + TensorRT, or None when it has no such engine."""
    key = current_engine_key(device_id)
    if key in bundle.engines:
        return key
    if bundle.engines:
        log.info("streambin: bundle engines %s do not match this GPU/TensorRT (%s); rebuild with "
                 "python -m export.to_trt --bundle %s", sorted(bundle.engines), key, bundle.path)
    return None


def _np_dtype(trt, dtype):
    table = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16,
             trt.DataType.UINT8: np.uint8, trt.DataType.INT32: np.int32,
             trt.DataType.BOOL: np.bool_}
    if dtype not in table:
        raise TypeError(f"unsupported TensorRT I/O dtype {dtype}")
    return table[dtype]


class TrtRunner:
    """Runs one serialized TensorRT engine (plan file) with name-based I/O.

    All device buffers (sized for ``max_batch``) and host output buffers are allocated once in
    ``__init__``; :meth:`run` only copies, sets the batch size and enqueues. The batch axis is the
    first axis of every I/O tensor.
    """

    def __init__(self, plan_path, max_batch: int, device_id: int = 0):
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
        trt = import_tensorrt()
        cudart = import_cudart()
        self._trt, self._cudart = trt, cudart
        self.plan_path = Path(plan_path)
        self.max_batch = max_batch
        self._ptrs: Dict[str, int] = {}
        self._stream = None
        _cuda_check(cudart.cudaSetDevice(device_id))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{self.plan_path}: TensorRT could not deserialize the engine "
                               "(built for another GPU or TensorRT version?); rebuild it with "
                               "python -m export.to_trt --force")
        self.context = self.engine.create_execution_context()
        self._stream = _cuda_check(cudart.cudaStreamCreate())
        self.inputs, self.outputs = [], []
        self.shapes: Dict[str, tuple] = {}
        self.dtypes: Dict[str, object] = {}
        self._host: Dict[str, np.ndarray] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))[1:]  # drop the dynamic batch axis
            dtype = _np_dtype(trt, self.engine.get_tensor_dtype(name))
            nbytes = max_batch * int(np.prod(shape)) * np.dtype(dtype).itemsize
            self._ptrs[name] = _cuda_check(cudart.cudaMalloc(nbytes))
            # Fixed addresses: set once, valid for every batch size <= max_batch.
            self.context.set_tensor_address(name, int(self._ptrs[name]))
            self.shapes[name], self.dtypes[name] = shape, dtype
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
            else:
                self.outputs.append(name)
                self._host[name] = np.empty((max_batch,) + shape, dtype)

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """feeds: input name -> C-contiguous array (B, *shape); returns name -> new arrays."""
        cudart = self._cudart
        if self.context is None:
            raise RuntimeError("TrtRunner is closed")
        if sorted(feeds) != sorted(self.inputs):
            raise ValueError(f"expected inputs {self.inputs}, got {sorted(feeds)}")
        # Outputs follow the largest input batch (a graph taking one context for several
        # features returns one mask per feature).
        batch = max(arr.shape[0] for arr in feeds.values())
        if not 1 <= batch <= self.max_batch:
            raise ValueError(f"batch {batch} is outside 1..{self.max_batch} (the engine's "
                             "optimisation profile); rebuild with a larger --max-batch")
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, arr in feeds.items():
            if arr.dtype != self.dtypes[name] or arr.shape[1:] != self.shapes[name]:
                raise ValueError(f"input {name!r} must be (B, {self.shapes[name]}) "
                                 f"{np.dtype(self.dtypes[name])}, got {arr.shape} {arr.dtype}")
            arr = np.ascontiguousarray(arr)
            self.context.set_input_shape(name, arr.shape)
            _cuda_check(cudart.cudaMemcpyAsync(self._ptrs[name], arr.ctypes.data, arr.nbytes,
                                               h2d, self._stream))
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"{self.plan_path}: TensorRT execute_async_v3 failed")
        for name in self.outputs:
            host = self._host[name][:batch]
            _cuda_check(cudart.cudaMemcpyAsync(host.ctypes.data, self._ptrs[name], host.nbytes,
                                               d2h, self._stream))
        _cuda_check(cudart.cudaStreamSynchronize(self._stream))
        return {name: self._host[name][:batch].copy() for name in self.outputs}

    def close(self) -> None:
        cudart = self._cudart
        for ptr in self._ptrs.values():
            cudart.cudaFree(ptr)
        self._ptrs = {}
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self.context = None
        self.engine = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class TensorRTBackend(InferenceBackend):
    """Runs the bundle's TensorRT engines for this GPU (see :func:`matching_engine_key`).

    ``engine_key``: use this engine (default: the one matching this GPU and TensorRT).
    ``device_id``: CUDA device index.
    """

    name = "tensorrt"

    def __init__(self, bundle, engine_key: Optional[str] = None, device_id: int = 0):
        key = engine_key or matching_engine_key(bundle, device_id)
        if key is None or key not in bundle.engines:
            raise BackendUnavailable(
                f"{bundle.path}: no TensorRT engine for this GPU and TensorRT version "
                f"({current_engine_key(device_id)}); build one with "
                f"python -m export.to_trt --bundle {bundle.path}")
        super().__init__(bundle, "cuda")
        entry = bundle.engines[key]
        max_batch = int(entry.get("max_batch", 1))
        self.engine_key = key
        self._runners = {name: TrtRunner(entry[name], max_batch, device_id)
                         for name in ("visual", "audio")}
        log.info("streambin: TensorRT backend, engine %s", key)

    def _visual(self, frames: np.ndarray) -> np.ndarray:
        return self._runners["visual"].run({"frames": frames})["feature"]

    def _audio(self, spec: np.ndarray, feature: np.ndarray) -> np.ndarray:
        return self._runners["audio"].run({"spec": spec, "feature": feature})["mask"]

    def close(self) -> None:
        for runner in getattr(self, "_runners", {}).values():
            runner.close()
        self._runners = {}
