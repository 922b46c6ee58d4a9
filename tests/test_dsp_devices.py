"""The DSP checks written once and run on every available device.

'cpu' always runs; 'cuda' runs where streambin._C was built with CUDA and a GPU is visible,
and is skipped (reported as skipped, not passed) elsewhere.
"""

import numpy as np
import pytest

from streambin import dsp
from tests.conftest import dsp_devices

N_FFT, WIN, HOP, LATENCY = 512, 400, 160, 240


class Chain:
    """STFT -> mask -> ISTFT on one device through the host-array entry points."""

    def __init__(self, device, channels, max_chunk=8192):
        self.device = device
        if device == "cpu":
            self.ana, self.syn = dsp.StreamingSTFT(), dsp.StreamingISTFT(channels=channels)
        else:
            C = dsp._C
            self.ana = C.StreamingStftCuda(N_FFT, WIN, HOP, max_chunk)
            self.syn = C.StreamingIstftCuda(N_FFT, WIN, HOP, channels, max_chunk // HOP + 1)
        self.channels = channels

    def push(self, x, masks, mode):
        spec = self.ana.push(np.ascontiguousarray(x, np.float32))
        if self.device == "cpu":
            ears = dsp.apply_mask(spec, masks, mode=mode)
            return self.syn.push(ears)
        ears = np.empty((self.channels, spec.shape[0], spec.shape[1]), np.complex64)
        dsp._C.apply_mask_cuda(spec, np.ascontiguousarray(masks), ears, 1 if mode == "side" else 0)
        out = np.empty((self.channels, spec.shape[0] * HOP), np.float32)
        self.syn.push_into(ears, out)
        return out


@pytest.mark.parametrize("device", dsp_devices())
@pytest.mark.parametrize("chunk", [1, 7, 159, 160, 161, 1000, 4096])
def test_identity_chain_delays_by_latency(device, chunk):
    x = np.random.default_rng(0).standard_normal(6000).astype(np.float32)
    chain, out, t = Chain(device, 1), [], 0
    for i in range(0, len(x), chunk):
        k = (min(i + chunk, len(x)) // HOP) - t
        ones = np.zeros((1, 2, 257, k), np.float32)
        ones[:, 0] = 1
        out.append(chain.push(x[i:i + chunk], ones, "direct"))
        t += k
    y = np.concatenate(out, axis=1)[0]
    np.testing.assert_allclose(y[LATENCY:], x[: len(y) - LATENCY], atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", dsp_devices())
@pytest.mark.parametrize("mode,n_masks", [("direct", 2), ("side", 1)])
def test_random_masks_match_offline_cpu(device, mode, n_masks):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5000).astype(np.float32)
    masks = rng.uniform(-1, 1, (n_masks, 2, 257, len(x) // HOP)).astype(np.float32)
    offline = dsp.istft(dsp.apply_mask(dsp.stft(x), masks, mode=mode))
    chain, out, t = Chain(device, 2), [], 0
    for i in range(0, len(x), 333):
        k = (min(i + 333, len(x)) // HOP) - t
        out.append(chain.push(x[i:i + 333], masks[:, :, :, t:t + k], mode))
        t += k
    y = np.concatenate(out, axis=1)[:, LATENCY:]
    interior = slice(400, y.shape[1] - 400)
    np.testing.assert_allclose(y[:, interior], offline[:, interior], atol=1e-4, rtol=0)


@pytest.mark.parametrize("device", dsp_devices())
def test_offline_transforms(device):
    x = np.random.default_rng(2).standard_normal((3, 4000)).astype(np.float32)
    if device == "cpu":
        spec = dsp._C.stft_frames(x, N_FFT, WIN, HOP)
        back = dsp._C.istft_frames(spec, N_FFT, WIN, HOP)
    else:
        spec = dsp._C.stft_frames_cuda(x, N_FFT, WIN, HOP)
        back = dsp._C.istft_frames_cuda(spec, N_FFT, WIN, HOP)
    ref = dsp._C.stft_frames(x, N_FFT, WIN, HOP)
    np.testing.assert_allclose(spec, ref, atol=1e-4, rtol=0)
    # Outside every window (the first (n_fft - win)/2 + 1 samples, where even the periodic
    # Hann's first tap is 0, and the same at the end) the output is 0 by contract.
    # Just inside, the window-square envelope is tiny (~1e-6) and float32 round-off is
    # amplified, so exactness is checked from 40 samples in.
    edge = (N_FFT - WIN) // 2 + 1
    np.testing.assert_array_equal(back[:, :edge], 0.0)
    inner = slice(edge + 40, back.shape[1] - edge - 40)
    np.testing.assert_allclose(back[:, inner], x[:, inner], atol=1e-5, rtol=0)


def test_has_cuda_reports_the_build():
    assert dsp.has_cuda() == bool(dsp._C.built_with_cuda)
    assert dsp.cuda_device_count() >= 0


needs_cuda_build = pytest.mark.skipif(not dsp.has_cuda(), reason="streambin._C built without CUDA")
_SPEC = np.zeros((4, 257), np.complex64)


@needs_cuda_build
@pytest.mark.parametrize("call,match", [
    # mask bins/frames that do not match spec (4 frames of 257 bins)
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((1, 2, 256, 4), np.float32), np.zeros((1, 4, 257), np.complex64)),
     r"apply_mask_cuda\(mask\): expected \(n_masks, 2, 257, 4\)"),
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((1, 2, 257, 5), np.float32), np.zeros((1, 4, 257), np.complex64)),
     r"apply_mask_cuda\(mask\): expected \(n_masks, 2, 257, 4\)"),
    # out that does not hold n_out = n_masks (direct) or 2 (side) channels of spec's shape
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((2, 2, 257, 4), np.float32), np.zeros((1, 4, 257), np.complex64)),
     r"apply_mask_cuda\(out\): expected \(2, 4, 257\)"),
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((1, 2, 257, 4), np.float32), np.zeros((1, 4, 257), np.complex64), 1),
     r"apply_mask_cuda\(out\): expected \(2, 4, 257\)"),
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((1, 2, 257, 4), np.float32), np.zeros((1, 3, 257), np.complex64)),
     r"apply_mask_cuda\(out\): expected \(1, 4, 257\)"),
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((2, 2, 257, 4), np.float32), np.zeros((2, 4, 257), np.complex64), 1),
     "side mode takes exactly one mask"),
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((1, 2, 257, 4), np.float32), np.zeros((1, 4, 257), np.complex64), 2),
     r"apply_mask_cuda\(mode\)"),
    # the host path copies the mask as one block: a strided view is refused, not misread
    (lambda: dsp._C.apply_mask_cuda(_SPEC, np.zeros((1, 2, 257, 8), np.float32)[..., ::2],
                                    np.zeros((1, 4, 257), np.complex64)), "C-contiguous"),
    (lambda: dsp._C.apply_mask_cuda(_SPEC.astype(np.complex128), np.zeros((1, 2, 257, 4), np.float32),
                                    np.zeros((1, 4, 257), np.complex64)), r"apply_mask_cuda\(spec\).*complex128"),
    (lambda: dsp._C.stft_frames_cuda(np.zeros((2, 100), np.float32), N_FFT, WIN, HOP),
     r"stft_frames_cuda\(x\): need at least n_fft=512 samples per row, got 100"),
    (lambda: dsp._C.istft_frames_cuda(np.zeros((2, 3, 256), np.complex64), N_FFT, WIN, HOP),
     r"istft_frames_cuda\(spec\): expected \(batch, frames >= 1, 257\)"),
    (lambda: dsp._C.istft_frames_cuda(np.zeros((2, 0, 257), np.complex64), N_FFT, WIN, HOP),
     r"istft_frames_cuda\(spec\): expected \(batch, frames >= 1, 257\)"),
])
def test_cuda_entry_points_check_shapes_before_touching_the_gpu(call, match):
    """The CUDA host-array entry points refuse mismatched shapes with a ValueError naming the
    expected shape, before any copy to the device (so this runs without a GPU)."""
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("device", [p for p in dsp_devices() if p != "cpu"])
def test_cuda_streaming_classes_check_shapes(device):
    """StreamingStftCuda / StreamingIstftCuda refuse what would overrun their device buffers
    (a chunk over max_chunk, more frames than max_frames) or mismatch their channels/bins."""
    C = dsp._C
    ana = C.StreamingStftCuda(N_FFT, WIN, HOP, 1000)
    with pytest.raises(ValueError, match="max_chunk=1000"):
        ana.push(np.zeros(1001, np.float32))
    syn = C.StreamingIstftCuda(N_FFT, WIN, HOP, 2, 4)
    with pytest.raises(ValueError, match=r"expected \(2, k, 257\)"):
        syn.push_into(np.zeros((1, 3, 257), np.complex64), np.zeros((1, 3 * HOP), np.float32))
    with pytest.raises(ValueError, match=r"expected \(2, 480\) float32"):
        syn.push_into(np.zeros((2, 3, 257), np.complex64), np.zeros((2, 3 * HOP + 1), np.float32))
    with pytest.raises(ValueError, match="max_frames=4"):
        syn.push_into(np.zeros((2, 5, 257), np.complex64), np.zeros((2, 5 * HOP), np.float32))
