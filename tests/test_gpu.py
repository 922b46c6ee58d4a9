"""streambin.gpu: the DSP chain on device arrays. The CUDA tests run where a GPU exists and are
skipped elsewhere; the argument checks of streambin.gpu run everywhere (they never touch a device)."""

import numpy as np
import pytest

from streambin import dsp
from streambin import gpu

torch = pytest.importorskip("torch")
needs_gpu = pytest.mark.skipif(dsp.cuda_device_count() == 0 or not torch.cuda.is_available(),
                               reason="no CUDA GPU visible (streambin._C built_with_cuda=%s)" % dsp.has_cuda())


class FakeCudaArray:
    """Carries only a __cuda_array_interface__ (what CuPy/Numba arrays expose); never dereferenced."""

    def __init__(self, shape, typestr, strides=None, ptr=0xDEAD00):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "strides": strides,
                                         "data": (ptr, False), "version": 3}


def test_device_array_reads_the_cuda_array_interface():
    ptr, shape, strides = gpu.device_array(FakeCudaArray((4, 257), "<c8"), "x", np.complex64, (None, 257))
    assert (ptr, shape, strides) == (0xDEAD00, (4, 257), (257, 1))
    # A strided view (e.g. the newest frames of a mask) keeps its element strides.
    _, _, strides = gpu.device_array(FakeCudaArray((1, 2, 257, 3), "<f4", strides=(4 * 2 * 257 * 64, 4 * 257 * 64, 4 * 64, 4)),
                                     "mask", np.float32, (None, 2, 257, 3))
    assert strides == (2 * 257 * 64, 257 * 64, 64, 1)


@pytest.mark.parametrize("arr,match", [
    (FakeCudaArray((4, 257), "<f8"), "dtype float64"),
    (FakeCudaArray((4, 256), "<c8"), r"shape \(\*, 257\)"),
    (np.zeros((4, 257), np.complex64), "CUDA"),  # host memory, imported through DLPack
])
def test_device_array_rejects_bad_arrays(arr, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gpu.device_array(arr, "x", np.complex64, (None, 257))


def test_cpu_tensor_is_rejected_with_its_device():
    with pytest.raises(ValueError, match="CUDA tensor"):
        gpu.device_array(torch.zeros(10), "x", np.float32, (None,))


def test_stream_handle():
    assert gpu.stream_handle(7) == 7
    with pytest.raises(TypeError, match="stream"):
        gpu.stream_handle("default")


@pytest.mark.skipif(dsp.cuda_device_count() > 0, reason="checks the no-GPU message")
def test_chain_without_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match="CUDA"):
        gpu.CudaDspChain()


@needs_gpu
@pytest.mark.parametrize("chunk", [1, 161, 480, 4096])
def test_gpu_chain_equals_cpu_chain(chunk):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32)
    masks = rng.uniform(-1, 1, (1, 2, 257, len(x) // 160)).astype(np.float32)
    cpu_ana, cpu_syn = dsp.StreamingSTFT(), dsp.StreamingISTFT(channels=2)
    chain = gpu.CudaDspChain(max_chunk=4096)
    spec_d = torch.empty(chain.max_frames, 257, dtype=torch.complex64, device="cuda")
    masks_d = torch.from_numpy(masks).cuda()
    got, ref, t = [], [], 0
    for i in range(0, len(x), chunk):
        xi = x[i:i + chunk]
        s = cpu_ana.push(xi)
        ref.append(cpu_syn.push(dsp.apply_mask(s, masks[:, :, :, t:t + len(s)], mode="side")))
        k = chain.stft(torch.from_numpy(xi).cuda(), spec_d)
        ears = torch.empty(2, k, 257, dtype=torch.complex64, device="cuda")
        chain.apply_mask(spec_d[:k], masks_d[:, :, :, t:t + k], ears, mode="side")
        out = torch.empty(2, k * 160, device="cuda")
        chain.istft(ears, out)
        torch.cuda.synchronize()
        got.append(out.cpu().numpy())
        t += k
    np.testing.assert_allclose(np.concatenate(got, 1), np.concatenate(ref, 1), atol=1e-4, rtol=0)


@needs_gpu
def test_gpu_spatializer_equals_cpu_and_does_not_allocate(tiny_unet):
    from streambin.spatializer import Spatializer

    bundle, ckpt = tiny_unet
    x = np.random.default_rng(1).standard_normal(48000).astype(np.float32) * 0.1
    cpu = Spatializer(ckpt, backend="torch", device="cpu", sample_rate=48000, block_frames=2)
    ref = cpu.process(x)
    sp = Spatializer(ckpt, backend="torch", device="cuda", sample_rate=48000, block_frames=2)
    assert sp._gpu is not None
    out = [sp.process(x[i:i + 480]) for i in range(0, 4800, 480)]  # warm-up
    before = torch.cuda.memory_allocated()
    out += [sp.process(x[i:i + 480]) for i in range(4800, len(x), 480)]
    assert torch.cuda.memory_allocated() == before
    np.testing.assert_allclose(np.concatenate(out, 1), ref, atol=1e-4, rtol=0)


@needs_gpu
def test_graph_replay_equals_eager(tiny_unet):
    from streambin.gpu_engine import GpuBlockRunner
    from streambin.spatializer import Spatializer

    sp = Spatializer(tiny_unet[1], backend="torch", device="cuda", sample_rate=16000, block_frames=2,
                     gpu_pipeline=False)
    runs = {}
    for use_graph in (True, False):
        r = GpuBlockRunner(sp.bundle, sp.backend.model, 2, 0, use_graph=use_graph)
        assert (r.graph is not None) == use_graph
        x = np.random.default_rng(2).standard_normal(320 * 20).astype(np.float32)
        runs[use_graph] = np.concatenate([r.run_block(x[i:i + 320], 0.1, 1e-4).copy() for i in range(0, len(x), 320)], 1)
    np.testing.assert_allclose(runs[True], runs[False], atol=1e-5, rtol=0)
