"""streambin.Spatializer: the streaming contract (latency, chunking, parity, bad input).

Runs on tiny exported models with random weights (tests/conftest.py): what is checked is the
engine, not the model's quality.
"""

import numpy as np
import pytest

from streambin import dsp
from streambin.spatializer import Spatializer

RATES = [16000, 22050, 44100, 48000]


def run_chunked(sp, x, chunks, frames=None):
    """Feed x in the given chunk sizes; frames: {sample_index: frame} handed with the chunk
    that starts at that index."""
    out, i = [], 0
    frames = frames or {}
    for c in chunks:
        out.append(sp.process(x[i:i + c], frames.get(i)))
        i += c
    assert i == len(x)
    return np.concatenate(out, axis=1)


def split(n, sizes):
    """Chunk sizes cycling through `sizes`, summing to n."""
    out, i = [], 0
    while i < n:
        c = min(sizes[len(out) % len(sizes)], n - i)
        out.append(c)
        i += c
    return out


@pytest.fixture
def noise():
    return np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1


@pytest.mark.parametrize("rate", RATES)
def test_latency_samples_is_the_true_delay(tiny_unet, rate):
    """With a side mask, (L + R) / 2 is the mono input itself: an impulse must come out
    exactly latency_samples later."""
    sp = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=2)
    x = np.zeros(rate // 2, np.float32)
    x[rate // 5] = 1.0
    y = run_chunked(sp, x, split(len(x), [333, 1, 4096]))
    mid = (y[0] + y[1]) / 2
    assert int(np.argmax(np.abs(mid))) == rate // 5 + sp.latency_samples
    assert sp.stats["underrun_samples"] == 0


def test_mono_passes_through_exactly_at_model_rate(tiny_unet, noise):
    sp = Spatializer(tiny_unet[0], sample_rate=16000, block_frames=1)
    y = np.concatenate([run_chunked(sp, noise, split(len(noise), [160])), sp.flush()], axis=1)
    L = sp.latency_samples
    np.testing.assert_allclose((y[0] + y[1])[L:L + len(noise)] / 2, noise, atol=1e-5)
    assert np.abs(y[0] - y[1]).max() > 1e-4  # the model does make the ears differ


@pytest.mark.parametrize("rate", [44100, 48000])
def test_output_identical_for_any_chunking(tiny_apnet, rate):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(rate).astype(np.float32) * 0.1
    frame_a = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    frame_b = rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)
    frames = {0: frame_a, 8000: frame_b}  # chunk starts present in every chunking below
    sp = Spatializer(tiny_apnet[0], sample_rate=rate, block_frames=3, lookahead_frames=2)
    ref = run_chunked(sp, x, [8000, len(x) - 8000], frames)
    for sizes in ([1, 7, 64, 65], [4096, 8193], [480]):
        sp.reset()
        chunks = split(8000, sizes) + split(len(x) - 8000, sizes)
        np.testing.assert_array_equal(run_chunked(sp, x, chunks, frames), ref)


def test_torch_and_onnxruntime_backends_agree(tiny_unet, noise):
    bundle, ckpt = tiny_unet
    frame = np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    outs = {}
    for name, model, backend in (("ort", bundle, "onnxruntime"), ("torch", ckpt, "torch")):
        sp = Spatializer(model, backend=backend, sample_rate=48000, block_frames=2)
        assert sp.backend.name == backend
        outs[name] = run_chunked(sp, noise, split(len(noise), [480]), {0: frame})
    np.testing.assert_allclose(outs["torch"], outs["ort"], atol=1e-4, rtol=0)


def test_streaming_equals_an_offline_reference(tiny_apnet):
    """Golden reference written independently of the engine: for every frame t, run the audio
    net on the T frames ending at t (normalised by their samples' RMS), take the mask of
    frame t - lookahead, multiply, and invert the whole spectrogram offline."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(160 * 40).astype(np.float32) * 0.2
    a = 1
    sp = Spatializer(tiny_apnet[0], sample_rate=16000, block_frames=1, lookahead_frames=a)
    y = np.concatenate([sp.process(x), sp.flush()], axis=1)[:, sp.latency_samples:sp.latency_samples + len(x)]

    b = sp.bundle
    T, hop = b.context_frames, b.hop
    spec = dsp.stft(x)                                        # (frames, 257), streaming framing
    padded = np.concatenate([np.zeros((T, spec.shape[1]), np.complex64), spec])
    samples = np.concatenate([np.zeros(T * hop, np.float32), x])
    feat = sp.visual.neutral[None]
    ears = np.zeros((2, len(spec), spec.shape[1]), np.complex64)
    for t in range(len(spec)):
        ctx = padded[t + 1: t + 1 + T]                       # frames t-T+1 .. t
        s = samples[(t + 1) * hop: (t + 1 + T) * hop]
        scale = b.input_rms / max(float(np.sqrt(np.mean(s.astype(np.float64) ** 2))), b.rms_floor)
        net_in = (np.stack([ctx.real.T, ctx.imag.T])[None] * scale).astype(np.float32)
        mask = sp.backend.audio(net_in, feat)[0][:, :, :, T - 1 - a]   # masks of frame t - a
        if t - a >= 0:
            ears[:, t - a] = spec[t - a] * (mask[:, 0] + 1j * mask[:, 1])
    expected = dsp.istft(ears)
    n = min(expected.shape[1], y.shape[1]) - 400
    np.testing.assert_allclose(y[:, :n], expected[:, :n], atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------ bad input

def test_nan_and_inf_are_sanitised_and_do_not_corrupt_later_output(tiny_unet, noise):
    bad = noise.copy()
    bad[1000:1010] = np.nan
    bad[5000] = np.inf
    clean = noise.copy()
    clean[1000:1010] = 0
    clean[5000] = 0
    sp = Spatializer(tiny_unet[0], sample_rate=48000)
    with pytest.warns(RuntimeWarning, match="NaN/inf"):
        got = run_chunked(sp, bad, split(len(bad), [480]))
    assert np.isfinite(got).all()
    assert sp.stats["nonfinite_samples"] == 11
    sp.reset()
    np.testing.assert_array_equal(got, run_chunked(sp, clean, split(len(clean), [480])))


def test_chunk_dtypes_and_ranks(tiny_unet):
    sp = Spatializer(tiny_unet[0], sample_rate=16000)
    assert sp.process(np.zeros(0, np.float32)).shape == (2, 0)
    assert sp.process(np.zeros(100)).dtype == np.float32                # float64 converted
    assert sp.process(np.zeros((100, 1), np.float32)).shape == (2, 100)  # (n, 1) accepted
    pcm = (np.random.default_rng(0).standard_normal(500) * 3000).astype(np.int16)
    ref = Spatializer(tiny_unet[0], sample_rate=16000)
    ref.process(np.zeros(200, np.float32))
    np.testing.assert_allclose(sp.process(pcm), ref.process(pcm.astype(np.float32) / 32768), atol=1e-7)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        sp.process(np.zeros((2, 100), np.float32))
    with pytest.raises(TypeError, match="dtype complex64"):
        sp.process(np.zeros(10, np.complex64))
    with pytest.raises(TypeError, match="numpy array"):
        sp.process([0.0] * 10)


def test_huge_chunk_equals_small_chunks(tiny_unet):
    x = np.random.default_rng(4).standard_normal(48000 * 3).astype(np.float32) * 0.1
    sp = Spatializer(tiny_unet[0], sample_rate=48000)
    whole = sp.process(x)
    sp.reset()
    np.testing.assert_array_equal(run_chunked(sp, x, split(len(x), [1024])), whole)


def test_frame_formats(tiny_unet):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)
    x = rng.standard_normal(4800).astype(np.float32) * 0.1

    def out_with(frame, **kw):
        sp = Spatializer(tiny_unet[0], sample_rate=48000, block_frames=1, **kw)
        return sp.process(x, frame), sp

    ref, sp = out_with(rgb)
    assert sp.stats["visual_runs"] == 1 and sp.stats["frames_received"] == 1
    np.testing.assert_array_equal(out_with(rgb[:, :, ::-1].copy(), color="bgr")[0], ref)
    rgba = np.concatenate([rgb, np.full((40, 70, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(out_with(rgba)[0], ref)                 # alpha dropped
    grey = rgb[:, :, 1]
    np.testing.assert_array_equal(out_with(grey)[0], out_with(np.stack([grey] * 3, axis=2))[0])
    # A frame of another size mid-stream is resized like any other.
    sp = Spatializer(tiny_unet[0], sample_rate=48000)
    sp.process(x, rgb)
    assert sp.process(x, rng.integers(0, 255, (300, 17, 3), dtype=np.uint8)).shape == (2, len(x))


def test_bad_frames_raise_and_leave_the_stream_untouched(tiny_unet):
    x = np.random.default_rng(6).standard_normal(4800).astype(np.float32) * 0.1
    sp = Spatializer(tiny_unet[0], sample_rate=48000)
    ref = Spatializer(tiny_unet[0], sample_rate=48000)
    for bad, err, match in [(np.zeros((10, 10, 3), np.float32), TypeError, "uint8"),
                            (np.zeros((10, 10, 2), np.uint8), ValueError, "RGBA"),
                            (np.zeros((0, 10, 3), np.uint8), ValueError, "1x1"),
                            (np.zeros((2, 10, 10, 3), np.uint8), ValueError, "RGBA"),
                            ("frame.png", TypeError, "numpy array")]:
        with pytest.raises(err, match=match):
            sp.process(x, bad)
    np.testing.assert_array_equal(sp.process(x), ref.process(x))
    assert sp.stats["samples_in"] == len(x)


def test_flush_and_reset(tiny_unet, noise):
    sp = Spatializer(tiny_unet[0], sample_rate=48000)
    first = run_chunked(sp, noise, split(len(noise), [512]))
    tail = sp.flush()
    assert tail.shape == (2, sp.latency_samples + sp.tail_samples)
    mid = (np.concatenate([first, tail], axis=1)[0] + np.concatenate([first, tail], axis=1)[1]) / 2
    assert np.abs(mid[:sp.latency_samples - 80]).max() < 1e-6   # the delay is silence (FIR rings only near it)
    sp.reset()
    np.testing.assert_array_equal(run_chunked(sp, noise, split(len(noise), [512])), first)


def test_constructor_validation(tiny_unet):
    with pytest.raises(ValueError, match="sample_rate"):
        Spatializer(tiny_unet[0], sample_rate=12345)
    with pytest.raises(ValueError, match="block_frames"):
        Spatializer(tiny_unet[0], block_frames=0)
    with pytest.raises(ValueError, match="lookahead_frames"):
        Spatializer(tiny_unet[0], lookahead_frames=-1)
    with pytest.raises(ValueError, match="resample_quality"):
        Spatializer(tiny_unet[0], resample_quality="best")
    with pytest.raises(ValueError, match="torch backend"):
        Spatializer(tiny_unet[1], backend="onnxruntime")
    with pytest.raises(TypeError, match="backend_options"):
        Spatializer(tiny_unet[0], backend_options=["allow_spinning"])
    # Idle ONNX Runtime threads sleep by default; backend_options reach the backend.
    assert Spatializer(tiny_unet[0], backend="onnxruntime").backend.allow_spinning is False
    sp = Spatializer(tiny_unet[0], backend="onnxruntime", backend_options={"allow_spinning": True}, num_threads=1)
    assert sp.backend.allow_spinning is True and sp.backend.intra_op_num_threads == 1


def test_auto_block_size_and_stats(tiny_unet, noise):
    sp = Spatializer(tiny_unet[0], sample_rate=48000, block_frames="auto")      # measured
    assert 1 <= sp.block_frames <= 16
    run_chunked(sp, noise, split(len(noise), [480]))
    s = sp.stats
    assert s["blocks"] == (len(noise) // 3 // 160) // sp.block_frames
    for key in ("block_ms_p99", "latency_ms", "frames_dropped", "backend", "underrun_samples"):
        assert key in s
    assert s["backend"] == "onnxruntime" and s["device"] == "cpu"


def test_threaded_visual_mode(tiny_unet, noise):
    frame = np.random.default_rng(7).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    with Spatializer(tiny_unet[0], sample_rate=48000, threaded_visual=True) as sp:
        out = sp.process(noise[:4800], frame)
        sp.visual.wait_idle()
        out = np.concatenate([out, sp.process(noise[4800:])], axis=1)
        assert sp.stats["visual_runs"] == 1
        assert np.isfinite(out).all() and out.shape == (2, len(noise))


def camera_run(sp, seconds, fps, rate=48000, chunk=480, gap=None):
    """Feed `seconds` of noise in chunks with a new frame whenever one is due at `fps` (handed
    with the first chunk starting at or after its time); gap=(t0, t1): no frames in between."""
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    x = rng.standard_normal(int(seconds * rate)).astype(np.float32) * 0.1
    k = 0
    for pos in range(0, len(x), chunk):
        f = None
        while k / fps <= pos / rate:
            f = frame if gap is None or not gap[0] <= k / fps < gap[1] else None
            k += 1
        sp.process(x[pos:pos + chunk], f)
    return sp.stats


def test_visual_rate_cap_on_the_audio_clock(tiny_unet):
    sp = Spatializer(tiny_unet[0], sample_rate=48000, block_frames=2)       # default cap: 10 fps
    s = camera_run(sp, 1.0, fps=30)
    assert s["frames_received"] == 30
    assert s["visual_runs"] == 10 and s["frames_skipped"] == 20
    sp.reset()
    s = camera_run(sp, 2.0, fps=25)              # a camera a little off the cap still averages it
    assert 19 <= s["visual_runs"] <= 20 and s["visual_runs"] + s["frames_skipped"] == 50
    sp.reset()
    s = camera_run(sp, 2.0, fps=30, gap=(0.5, 1.5))   # no catch-up burst after a gap: one banked run at most
    assert s["visual_runs"] == 5 + 6
    every = Spatializer(tiny_unet[0], sample_rate=48000, block_frames=2, visual_fps=None)
    s = camera_run(every, 1.0, fps=30)
    assert s["visual_runs"] == 30 and s["frames_skipped"] == 0
    for bad in (0, -1.0, float("nan"), "10", True):
        with pytest.raises(ValueError, match="visual_fps"):
            Spatializer(tiny_unet[0], visual_fps=bad)


def test_skipped_frames_are_still_validated(tiny_unet, noise):
    sp = Spatializer(tiny_unet[0], sample_rate=48000)
    sp.process(noise[:480], np.zeros((10, 10, 3), np.uint8))                 # runs
    with pytest.raises(TypeError, match="uint8"):                          # would be skipped
        sp.process(noise[480:960], np.zeros((10, 10, 3), np.float32))
    assert sp.stats["frames_received"] == 1 and sp.stats["frames_skipped"] == 0


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_num_threads_reaches_every_backend(tiny_unet, backend):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()  # torch's setting is process-wide: restore it after
    model = tiny_unet[0] if backend == "onnxruntime" else tiny_unet[1]
    try:
        sp = Spatializer(model, backend=backend, num_threads=1, sample_rate=16000)
        assert sp.process(np.zeros(320, np.float32)).shape == (2, 320)
        if backend == "torch":
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
