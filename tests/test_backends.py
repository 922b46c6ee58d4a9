"""streambin.backends: backend choice, ONNX Runtime I/O, input checks, torch == ORT."""

import importlib.util
import logging

import numpy as np
import pytest

from streambin.backends import BackendUnavailable, create_backend
from streambin.backends.onnxruntime_backend import OnnxRuntimeBackend
from streambin.bundle import BundleError, load_bundle
from tests.export.factory import TINY, TINY_VISUAL, exported_bundle, make_tiny_bundle, tiny_reference

T = TINY["context_frames"]


@pytest.fixture
def bundle(tmp_path):
    return load_bundle(make_tiny_bundle(tmp_path / "bundle"))


def _inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (batch, *TINY_VISUAL, 3), dtype=np.uint8)
    spec = rng.standard_normal((batch, 2, 257, T)).astype(np.float32)
    return frames, spec


def test_auto_picks_onnxruntime_cpu_here(bundle, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() or \
            importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("this machine has a GPU runtime; the CPU choice is tested where there is none")
    with caplog.at_level(logging.INFO, logger="streambin"):
        be = create_backend(bundle)
    assert be.name == "onnxruntime" and be.device == "cpu"
    assert be.providers == ["CPUExecutionProvider"]
    assert "TensorRT" not in caplog.text  # a CPU machine: nothing to say about GPU runtimes
    assert "using ONNX Runtime on CPU" in caplog.text
    be.close()
    # Asking for a GPU explicitly still explains why there is none.
    with caplog.at_level(logging.INFO, logger="streambin"), pytest.raises(BackendUnavailable):
        create_backend(bundle, backend="auto", device="cuda")
    assert "tensorrt package is not installed" in caplog.text


@pytest.mark.parametrize("io_binding,spinning", [(False, False), (True, False), (False, True)])
def test_onnxruntime_matches_numpy_reference(bundle, io_binding, spinning):
    with OnnxRuntimeBackend(bundle, device="cpu", io_binding=io_binding,
                            intra_op_num_threads=2, allow_spinning=spinning) as be:
        assert be.allow_spinning is spinning
        for batch in (1, 3, 1):  # batch sizes change between calls (IOBinding buffers per batch)
            frames, spec = _inputs(batch, seed=batch)
            feat_ref, mask_ref = tiny_reference(frames, spec)
            feat = be.visual(frames)
            mask = be.audio(spec, feat)
            assert feat.dtype == np.float32 and feat.shape == (batch, 4)
            assert mask.dtype == np.float32 and mask.shape == (batch, 1, 2, 257, T)
            np.testing.assert_allclose(feat, feat_ref, atol=1e-5)
            np.testing.assert_allclose(mask, mask_ref, atol=1e-5)
    with pytest.raises(RuntimeError, match="closed"):
        be.visual(frames)


def test_io_binding_outputs_are_not_aliased(bundle):
    be = OnnxRuntimeBackend(bundle, device="cpu", io_binding=True)
    f1, s1 = _inputs(1, seed=1)
    f2, s2 = _inputs(1, seed=2)
    out1 = be.visual(f1)
    kept = out1.copy()
    be.visual(f2)
    np.testing.assert_array_equal(out1, kept)  # a later call must not overwrite earlier results


def test_input_validation_messages(bundle):
    be = create_backend(bundle, backend="onnxruntime", device="cpu")
    frames, spec = _inputs(2)
    feat = be.visual(frames)
    with pytest.raises(TypeError, match=r"frames must be uint8 RGB \(B, 8, 16, 3\), got dtype float32"):
        be.visual(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"frames must have shape \(B, 8, 16, 3\).*got \(2, 16, 8, 3\)"):
        be.visual(np.zeros((2, 16, 8, 3), np.uint8))
    with pytest.raises(TypeError, match=r"spec must be float32 \(B, 2, 257, 32\), got dtype float64"):
        be.audio(spec.astype(np.float64), feat)
    with pytest.raises(ValueError, match=r"spec must have shape \(B, 2, 257, 32\)"):
        be.audio(spec[:, :, :256], feat)
    with pytest.raises(ValueError, match=r"feature must have shape \(2, 4\) to match spec's batch 2"):
        be.audio(spec, feat[:1])
    with pytest.raises(TypeError, match="numpy array"):
        be.visual(frames.tolist())


def test_bad_arguments(bundle):
    with pytest.raises(ValueError, match="backend must be one of"):
        create_backend(bundle, backend="openvino")
    with pytest.raises(ValueError, match="device must be one of"):
        create_backend(bundle, device="tpu")
    with pytest.raises(ValueError, match="intra_op_num_threads"):
        OnnxRuntimeBackend(bundle, intra_op_num_threads=0)


def test_cuda_without_provider_is_refused_here(bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        create_backend(bundle, backend="onnxruntime", device="cuda")
    with pytest.raises(BackendUnavailable, match="device 'cuda' was requested"):
        create_backend(bundle, backend="auto", device="cuda")


def test_silent_cpu_fallback_is_warned(bundle, monkeypatch):
    """ORT drops a requested CUDA provider it cannot load and runs on CPU; simulate the missing
    CUDA libraries by advertising the provider without having it (the hardware edge)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("real CUDA provider present")
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.warns(RuntimeWarning, match="FELL BACK TO CPU"):
        be = OnnxRuntimeBackend(bundle, device="cuda", io_binding=False)
    assert be.device == "cpu"
    frames, spec = _inputs(1)
    np.testing.assert_allclose(be.visual(frames), tiny_reference(frames, spec)[0], atol=1e-5)


def test_tensorrt_backend_unavailable_here(bundle):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed")
    with pytest.raises(BackendUnavailable, match=r"TensorRT is not installed: pip install tensorrt"):
        create_backend(bundle, backend="tensorrt")


def test_corrupt_graph_reported_by_onnxruntime_backend(bundle):
    path = bundle.graphs["audio"]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BundleError, match=r"audio\.onnx.*could not load the audio graph"):
        OnnxRuntimeBackend(bundle)


def test_torch_backend_needs_weights(bundle):
    with pytest.raises(BundleError, match="weights.pt is missing"):
        create_backend(bundle, backend="torch", device="cpu")


@pytest.mark.parametrize("arch", ["unet", "apnet"])
def test_torch_backend_matches_onnxruntime(arch):
    bundle, _model, _ = exported_bundle(arch)
    assert bundle.weights is not None
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (2, *bundle.frame_shape), dtype=np.uint8)
    spec = (rng.standard_normal((2, *bundle.spec_shape)) * 0.5).astype(np.float32)
    with create_backend(bundle, backend="torch", device="cpu") as tb, \
            create_backend(bundle, backend="onnxruntime", device="cpu") as ob:
        assert tb.name == "torch" and ob.name == "onnxruntime"
        feat_t, feat_o = tb.visual(frames), ob.visual(frames)
        assert feat_t.shape == feat_o.shape == (2, *bundle.feature_shape)
        np.testing.assert_allclose(feat_o, feat_t, atol=1e-4 * max(1.0, np.abs(feat_t).max()))
        mask_t, mask_o = tb.audio(spec, feat_t), ob.audio(spec, feat_t)
        assert mask_t.shape == (2, *bundle.mask_shape)
        assert mask_t.std() > 0.05  # a real comparison, not of two constant outputs
        np.testing.assert_allclose(mask_o, mask_t, atol=1e-4)
