"""ONNX Runtime backend (CPU, or CUDA through onnxruntime-gpu).

CPU sessions: ``intra_op_num_threads`` (default ``min(2, cores)``), graph optimisation level
ALL, sequential execution, and intra-op threads that sleep instead of spinning between runs
(``allow_spinning=False``): the engine runs the audio net about 50 times a second and the visual
net on another thread, and spinning workers of two sessions on 2 cores steal each other's time
(benchmarks/results/ort-threads-*.json measures it). CUDA sessions run through IOBinding with input and output buffers
preallocated on the device once per batch size, so the per-block path does not allocate device
memory (ORT's CUDA-graph mode needs exactly such fixed addresses). ONNX Runtime silently falls
back to CPU when CUDA libraries are missing: the session's providers are checked and a warning
is raised in that case.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Dict, Optional, Tuple

import numpy as np

from streambin.backends import BackendUnavailable, InferenceBackend
from streambin.bundle import BundleError

log = logging.getLogger("streambin")


def default_threads() -> int:
    """Default intra-op thread count: min(2, CPU cores) (leaves cores to the audio thread)."""
    return max(1, min(2, os.cpu_count() or 1))


def session_options(intra_op_num_threads: int, allow_spinning: bool = False):
    """The engine's ``onnxruntime.SessionOptions`` (see the module docstring): ``intra_op_num_threads``
    threads, one inter-op thread, graph optimisation ALL, sequential execution, errors-only logging,
    idle threads sleeping unless ``allow_spinning``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_num_threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: ORT's warnings are not actionable here
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return opts


class _BoundGraph:
    """One session run through IOBinding with buffers preallocated per batch size.

    ``device`` is ORT's device name ("cuda" or "cpu"; "cpu" is used by the tests to exercise
    this path without a GPU). Outputs are copied to new host arrays on return.
    """

    def __init__(self, session, device: str, device_id: int = 0):
        import onnxruntime as ort

        self._ort = ort
        self.session = session
        self.device = device
        self.device_id = device_id
        self._by_batch: Dict[tuple, Tuple[object, Dict[str, object], Dict[str, object]]] = {}

    @staticmethod
    def _np_dtype(ort_type: str):
        return {"tensor(float)": np.float32, "tensor(uint8)": np.uint8,
                "tensor(float16)": np.float16}[ort_type]

    def _buffers(self, batches: Dict[str, int]):
        """IOBinding and buffers for inputs of these batch sizes (outputs: the largest, as a
        graph taking one context for several features returns one mask per feature)."""
        key = tuple(sorted(batches.items()))
        if key not in self._by_batch:
            ort = self._ort
            binding = self.session.io_binding()
            ins, outs = {}, {}
            batch = max(batches.values())
            for arg in self.session.get_inputs():
                shape = [batches[arg.name]] + list(arg.shape[1:])
                ins[arg.name] = ort.OrtValue.ortvalue_from_shape_and_type(
                    shape, self._np_dtype(arg.type), self.device, self.device_id)
                binding.bind_ortvalue_input(arg.name, ins[arg.name])
            for arg in self.session.get_outputs():
                shape = [batch] + list(arg.shape[1:])
                outs[arg.name] = ort.OrtValue.ortvalue_from_shape_and_type(
                    shape, self._np_dtype(arg.type), self.device, self.device_id)
                binding.bind_ortvalue_output(arg.name, outs[arg.name])
            self._by_batch[key] = (binding, ins, outs)
        return self._by_batch[key]

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        binding, ins, outs = self._buffers({name: arr.shape[0] for name, arr in feeds.items()})
        for name, arr in feeds.items():
            ins[name].update_inplace(arr)  # host -> preallocated (device) buffer
        self.session.run_with_iobinding(binding)
        if self.device == "cpu":  # numpy() of a CPU OrtValue is a view of the reused buffer
            return {name: val.numpy().copy() for name, val in outs.items()}
        return {name: val.numpy() for name, val in outs.items()}  # device -> new host array


class OnnxRuntimeBackend(InferenceBackend):
    """Runs visual.onnx / audio.onnx with ONNX Runtime.

    ``device``: "cpu" or "cuda". ``intra_op_num_threads``: CPU threads per session (default
    :func:`default_threads`). ``io_binding``: run through preallocated IOBinding buffers (always
    on for CUDA; optional on CPU). ``device_id``: CUDA device index. ``allow_spinning``: let
    idle intra-op threads busy-wait for the next run (ONNX Runtime's own default; default here
    False, see the module docstring).
    """

    name = "onnxruntime"

    def __init__(self, bundle, device: str = "cpu", intra_op_num_threads: Optional[int] = None,
                 io_binding: Optional[bool] = None, device_id: int = 0, allow_spinning: bool = False):
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime "
                                     "(or onnxruntime-gpu for CUDA)") from exc
        if intra_op_num_threads is None:
            intra_op_num_threads = default_threads()
        if not isinstance(intra_op_num_threads, int) or intra_op_num_threads < 1:
            raise ValueError(f"intra_op_num_threads must be a positive int, "
                             f"got {intra_op_num_threads!r}")
        super().__init__(bundle, device)
        self.intra_op_num_threads = intra_op_num_threads

        opts = session_options(intra_op_num_threads, allow_spinning)
        self.allow_spinning = bool(allow_spinning)
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(
                    "ONNX Runtime has no CUDAExecutionProvider here (available: "
                    f"{ort.get_available_providers()}): pip install onnxruntime-gpu")
            providers = [("CUDAExecutionProvider", {"device_id": device_id}),
                         "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]

        self._sessions = {}
        for name, path in bundle.graphs.items():
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... classes
                raise BundleError(f"{path}: ONNX Runtime could not load the {name} graph "
                                  f"(corrupt or unsupported): {exc}") from exc
            if device == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
                warnings.warn(
                    f"streambin: ONNX Runtime FELL BACK TO CPU for {path.name} although CUDA was "
                    f"requested (session providers: {sess.get_providers()}); the CUDA/cuDNN "
                    "libraries onnxruntime-gpu needs are probably missing. Inference will be "
                    "much slower.", RuntimeWarning, stacklevel=2)
                log.warning("streambin: onnxruntime fell back to CPU for %s", path.name)
                self.device = "cpu"
            self._sessions[name] = sess
        use_binding = io_binding if io_binding is not None else self.device == "cuda"
        self._bound = None
        if use_binding:
            ort_dev = "cuda" if self.device == "cuda" else "cpu"
            self._bound = {n: _BoundGraph(s, ort_dev, device_id) for n, s in self._sessions.items()}
        log.info("streambin: onnxruntime backend on %s (providers %s, %d threads, io_binding=%s)",
                 self.device, self._sessions["audio"].get_providers(), intra_op_num_threads,
                 use_binding)

    @property
    def providers(self):
        """Execution providers of the audio session, in priority order."""
        return self._sessions["audio"].get_providers()

    def _run(self, name: str, feeds: Dict[str, np.ndarray], out: str) -> np.ndarray:
        if self._sessions is None:
            raise RuntimeError("backend is closed")
        if self._bound is not None:
            return self._bound[name].run(feeds)[out]
        return self._sessions[name].run([out], feeds)[0]

    def _visual(self, frames: np.ndarray) -> np.ndarray:
        return self._run("visual", {"frames": frames}, "feature")

    def _audio(self, spec: np.ndarray, feature: np.ndarray) -> np.ndarray:
        return self._run("audio", {"spec": spec, "feature": feature}, "mask")

    def close(self) -> None:
        self._bound = None
        self._sessions = None
