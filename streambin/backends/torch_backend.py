"""PyTorch backend: runs the generator from the bundle's weights.pt directly.

Useful as a reference (the ONNX graphs are checked against it at export) and where ONNX Runtime
is missing. Needs torch only (``pip install torch``): the networks and the weights reader are
:mod:`streambin.nets`, not the training package.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from streambin.backends import BackendUnavailable, InferenceBackend
from streambin.bundle import BundleError

log = logging.getLogger("streambin")


class TorchBackend(InferenceBackend):
    """Runs ``model.visual`` / ``model.audio`` of the generator in weights.pt.

    ``device``: "auto" (CUDA when torch sees a GPU), "cpu" or "cuda". ``num_threads``: if given,
    sets torch's intra-op thread count (process-wide).
    """

    name = "torch"

    def __init__(self, bundle, device: str = "auto", num_threads=None):
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable("the torch backend needs PyTorch: pip install torch") from exc
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("device 'cuda' was requested but torch sees no CUDA GPU "
                                     f"(torch {torch.__version__})")
        if bundle.weights is None:
            raise BundleError(f"{bundle.path}: weights.pt is missing; the torch backend needs "
                              "it (re-export the bundle with python -m export.to_onnx)")
        super().__init__(bundle, device)
        from streambin.nets.weights import load_generator_weights

        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self._torch = torch
        model, _config = load_generator_weights(str(bundle.weights))
        self.model = model.to(device).eval()
        try:  # the masks of the graphs: the context's last output_frames frames
            self.model.check_last_frames(bundle.output_frames, bundle.context_frames)
        except ValueError as exc:
            raise BundleError(f"{bundle.path}: config.json's output_frames does not fit weights.pt: {exc}") from None
        self._masks = functools.partial(self.model.audio, last_frames=bundle.output_frames)
        if getattr(self.model, "mask_kind", bundle.mask_kind) != bundle.mask_kind:
            raise BundleError(f"{bundle.weights}: model mask_kind {self.model.mask_kind!r} "
                              f"differs from config.json's {bundle.mask_kind!r}")
        log.info("streambin: torch backend on %s (%s)", device, bundle.weights)

    def _run(self, fn, *arrays) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("backend is closed")
        torch = self._torch
        with torch.inference_mode():
            tensors = [torch.from_numpy(a).to(self.device) for a in arrays]
            out = fn(*tensors)
        return out.float().cpu().numpy()

    def _visual(self, frames: np.ndarray) -> np.ndarray:
        return self._run(self.model.visual, frames)

    def _audio(self, spec: np.ndarray, feature: np.ndarray) -> np.ndarray:
        return self._run(self._masks, spec, feature)

    def close(self) -> None:
        self.model = None
        self._masks = None  # it holds the model too
