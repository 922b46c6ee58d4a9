"""streambin._C / streambin.dsp on the CPU: framing, reconstruction, masks, bad input, threads.

The chain checks also run on the GPU path in test_dsp_devices.py (skipped where no GPU exists).
"""

import threading

import numpy as np
import pytest
import torch

from streambin import dsp, numpy_core

N_FFT, WIN, HOP = 512, 400, 160
LATENCY = WIN - HOP
CHUNK_SIZES = [1, 7, 159, 160, 161, 1000, 4096]


def stream(x, chunk, ana=None):
    """Push x through a StreamingSTFT in chunks of `chunk` samples; concatenated frames."""
    ana = ana or dsp.StreamingSTFT(N_FFT, WIN, HOP)
    frames = [ana.push(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(frames, axis=0)


def torch_reference_stft(x):
    """center=False torch.stft of the zero-primed input: the documented offline equivalent.

    The (n_fft - win)//2 zeros behind x fall under the zero part of the last window; they only
    let torch form that last frame.
    """
    primed = torch.cat([torch.zeros(dsp.prime_samples(N_FFT, WIN, HOP)), torch.from_numpy(x),
                        torch.zeros((N_FFT - WIN) // 2)])
    spec = torch.stft(primed, N_FFT, HOP, WIN, torch.hann_window(WIN, periodic=True), center=False,
                      return_complex=True)
    return spec.T.numpy()  # (frames, bins)


def test_latency_and_priming_constants():
    assert dsp.latency_samples() == LATENCY == 240
    assert dsp.prime_samples() == (N_FFT + WIN) // 2 - HOP == 296
    w = dsp._C.padded_hann(N_FFT, WIN, HOP)
    np.testing.assert_allclose(w, np.pad(torch.hann_window(WIN, periodic=True).numpy(), (56, 56)), atol=1e-6)


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_streaming_stft_equals_torch_stft(rng, chunk):
    x = rng.standard_normal(5000).astype(np.float32)
    frames = stream(x, chunk)
    ref = torch_reference_stft(x)
    assert frames.shape == (len(x) // HOP, N_FFT // 2 + 1)
    np.testing.assert_allclose(frames, ref[: len(frames)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_identity_mask_returns_delayed_input(rng, chunk):
    x = rng.standard_normal(8000).astype(np.float32)
    ana, syn = dsp.StreamingSTFT(), dsp.StreamingISTFT(channels=1)
    out = []
    for i in range(0, len(x), chunk):
        spec = ana.push(x[i:i + chunk])
        ones = np.zeros((1, 2, spec.shape[1], spec.shape[0]), np.float32)
        ones[:, 0] = 1.0
        out.append(syn.push(dsp.apply_mask(spec, ones))[0])
    y = np.concatenate(out)
    assert len(y) == (len(x) // HOP) * HOP
    np.testing.assert_allclose(y[LATENCY:], x[: len(y) - LATENCY], atol=1e-5, rtol=0)
    np.testing.assert_allclose(y[:LATENCY], 0.0, atol=1e-6)


def numpy_overlap_add(spec, length):
    """(C, bins, frames) complex -> (C, length) by irfft, window, overlap-add, envelope division."""
    w = np.pad(torch.hann_window(WIN).numpy(), ((N_FFT - WIN) // 2,) * 2)
    frames = np.fft.irfft(spec, n=N_FFT, axis=1) * w[None, :, None]
    y, env = np.zeros((spec.shape[0], length)), np.zeros(length)
    for t in range(spec.shape[2]):
        y[:, t * HOP: t * HOP + N_FFT] += frames[:, :, t]
        env[t * HOP: t * HOP + N_FFT] += w ** 2
    return np.where(env > 1e-11, y / np.maximum(env, 1e-11), 0.0)


def _random_masks(rng, n_masks, n_frames):
    return rng.uniform(-1, 1, size=(n_masks, 2, N_FFT // 2 + 1, n_frames)).astype(np.float32)


@pytest.mark.parametrize("mode,n_masks", [("direct", 1), ("direct", 2), ("side", 1)])
def test_random_masks_streaming_equals_offline(rng, mode, n_masks):
    x = rng.standard_normal(6400).astype(np.float32)
    n_frames = len(x) // HOP
    masks = _random_masks(rng, n_masks, n_frames)
    # Offline: masked offline STFT, inverted offline (interior compared).
    spec = dsp.stft(x)
    ears_offline = dsp.apply_mask(spec, masks, mode=mode)
    offline = dsp.istft(ears_offline)  # aligned with x
    # Independent reference: torch.stft, then a numpy overlap-add inverse (torch.istft refuses
    # center=False signals whose edges no window covers).
    primed = np.concatenate([np.zeros(dsp.prime_samples(), np.float32), x, np.zeros(56, np.float32)])
    ref_spec = torch.stft(torch.from_numpy(primed), N_FFT, HOP, WIN, torch.hann_window(WIN), center=False,
                          return_complex=True).numpy()
    m = masks[:, 0] + 1j * masks[:, 1]
    ref_ears = ref_spec[None] * m if mode == "direct" else np.stack([ref_spec * (1 + m[0]), ref_spec * (1 - m[0])])
    ref = numpy_overlap_add(ref_ears, len(primed))[:, dsp.prime_samples():]
    interior = slice(400, len(x) - 400)
    np.testing.assert_allclose(offline[:, interior], ref[:, interior], atol=1e-5, rtol=0)
    # Streaming, in awkward chunks, with masks consumed as frames arrive.
    n_out = offline.shape[0]
    for chunk in (1, 161, 4096):
        ana, syn = dsp.StreamingSTFT(), dsp.StreamingISTFT(channels=n_out)
        got, t = [], 0
        for i in range(0, len(x), chunk):
            s = ana.push(x[i:i + chunk])
            got.append(syn.push(dsp.apply_mask(s, masks[:, :, :, t:t + len(s)], mode=mode)))
            t += len(s)
        y = np.concatenate(got, axis=1)
        np.testing.assert_allclose(y[:, LATENCY:][:, interior], offline[:, interior], atol=1e-5, rtol=0)


def test_output_identical_for_any_chunking(rng):
    x = rng.standard_normal(7000).astype(np.float32)
    masks = _random_masks(rng, 1, len(x) // HOP)

    def run(chunks):
        ana, syn = dsp.StreamingSTFT(), dsp.StreamingISTFT(channels=2)
        out, i, t = [], 0, 0
        for c in chunks:
            s = ana.push(x[i:i + c])
            out.append(syn.push(dsp.apply_mask(s, masks[:, :, :, t:t + len(s)], mode="side")))
            i, t = i + c, t + len(s)
        return np.concatenate(out, axis=1)

    whole = run([len(x)])
    for chunks in ([1] * 500 + [6500], [7, 159, 160, 161, 1000, 4096, 1417], [64, 65] * 53 + [163]):
        assert sum(chunks) == len(x)
        np.testing.assert_array_equal(run(chunks), whole)


def test_apply_mask_in_place_and_views(rng):
    spec = (rng.standard_normal((5, 257)) + 1j * rng.standard_normal((5, 257))).astype(np.complex64)
    full = _random_masks(rng, 2, 64)
    view = full[:, :, :, -5:]  # strided view: newest frames of a model output
    expected = spec[None] * (view[:, 0] + 1j * view[:, 1]).transpose(0, 2, 1)
    np.testing.assert_allclose(dsp.apply_mask(spec, view), expected, rtol=1e-6, atol=1e-6)
    side = dsp.apply_mask(spec, view[:1], mode="side")
    d = spec * (view[0, 0] + 1j * view[0, 1]).T
    np.testing.assert_allclose(side, np.stack([spec + d, spec - d]), rtol=1e-6, atol=1e-6)
    inplace = spec.copy()
    dsp.apply_mask(inplace, view[:1], out=inplace)
    np.testing.assert_allclose(inplace, expected[0], rtol=1e-6, atol=1e-6)


def test_offline_center_framing_matches_torch(rng):
    x = rng.standard_normal((2, 3000)).astype(np.float32)
    ours = dsp.stft(x, framing="center", pad_mode="reflect")
    ref = torch.stft(torch.from_numpy(x), N_FFT, HOP, WIN, torch.hann_window(WIN), center=True, pad_mode="reflect",
                     return_complex=True).transpose(1, 2).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    back = dsp.istft(ours, framing="center", length=3000)
    np.testing.assert_allclose(back, x, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------ chirp-z transform


def direct_dft(x, window, step, n_out, gain, start, hop, k):
    """ChirpZ's definition in complex128: gain[j] sum_n window[n] x[start + t*hop + n] e^(-2 pi i step j n)."""
    W = len(window)
    frames = np.stack([x[start + t * hop:start + t * hop + W] for t in range(k)]).astype(np.float64) * window
    return frames @ np.exp(-2j * np.pi * step * np.outer(np.arange(W), np.arange(n_out))) * gain


@pytest.mark.parametrize("core", ["native", "numpy"])
@pytest.mark.parametrize("W,n_out,step,k", [
    (1102, 257, 31.25 / 44100, 1), (1102, 257, 31.25 / 44100, 4),   # the 44.1 kHz full-band engine's
    (400, 257, 1 / 512, 2),                                            # bins of a 512-point FFT
    (64, 40, 0.3, 3), (2, 1, 0.1, 2), (10, 7, -0.05, 1),
])
def test_chirp_z_equals_the_direct_dft(core, W, n_out, step, k, rng, monkeypatch):
    if core == "numpy":
        monkeypatch.setattr(dsp, "_C", numpy_core)
    window = rng.uniform(0.1, 1.0, W)
    gain = rng.standard_normal(n_out) + 1j * rng.standard_normal(n_out)
    start, hop = 5, max(1, W // 3)
    x = rng.standard_normal(start + (k - 1) * hop + W + 7).astype(np.float32)
    czt = dsp.ChirpZ(window, step, n_out, gain)
    assert czt.fft_size >= W // 2 + 2 * n_out - 2 and dsp.is_fast_fft_size(czt.fft_size)
    out = np.full((k, n_out), np.nan, np.complex64)
    czt.run(x, start, hop, out)
    ref = direct_dft(x, window, step, n_out, gain, start, hop, k)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()
    czt.run(x, start, hop, out[:0])                        # no windows: nothing to do


@pytest.mark.parametrize("core", ["native", "numpy"])
def test_chirp_z_rejects_bad_input(core, monkeypatch):
    if core == "numpy":
        monkeypatch.setattr(dsp, "_C", numpy_core)
    for args, match in [((np.ones(5), 0.01, 3), r"W even"), ((np.ones((2, 4)), 0.01, 3), r"real \(W,\)"),
                        ((np.ones(8), 0.01, 0), "n_out"), ((np.ones(8), np.nan, 3), "step"),
                        ((np.ones(8), 0.01, 3, np.ones(4)), r"gain\): expected \(3,\)")]:
        with pytest.raises(ValueError, match=match):
            dsp.ChirpZ(*args)
    czt, x, out = dsp.ChirpZ(np.ones(8), 0.01, 3), np.zeros(20, np.float32), np.zeros((2, 3), np.complex64)
    for call, match in [
        (lambda: czt.run(x.astype(np.float64), 0, 4, out), r"run\(samples\): expected a C-contiguous \(m,\) float32"),
        (lambda: czt.run(x[::2], 0, 1, out), r"C-contiguous \(m,\) float32"),
        (lambda: czt.run(x, 0, 4, np.zeros((2, 4), np.complex64)), r"run\(out\): expected \(k, 3\) complex64"),
        (lambda: czt.run(x, 0, 4, out.astype(np.complex128)), r"run\(out\): expected a C-contiguous"),
        (lambda: czt.run(x, 0, 13, out), r"2 windows of 8 samples from 0 every 13 need m >= 21"),
        (lambda: czt.run(x, -1, 4, out), "start >= 0 and hop >= 1"),
        (lambda: czt.run(x, 0, 0, out), "start >= 0 and hop >= 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(ValueError, match="FFT size >= window/2"):   # the core's own check
        dsp._C.ChirpZ(np.ones(8, np.complex64), np.ones(4, np.complex64), np.ones(3, np.complex64),
                      np.ones(3, np.complex64))


def test_one_chirp_z_shared_by_threads(rng):
    """Threads running ONE ChirpZ at once (the native runs with the GIL released, its scratch
    buffers guarded by the object's lock) each get their own input's transform."""
    czt = dsp.ChirpZ(np.hanning(1102), 31.25 / 44100, 257)
    inputs = [rng.standard_normal(1102 + 3 * 441).astype(np.float32) for _ in range(4)]
    expected = []
    for x in inputs:
        expected.append(np.zeros((4, 257), np.complex64))
        czt.run(x, 0, 441, expected[-1])
    bad = []

    def work(i):
        out = np.zeros((4, 257), np.complex64)
        for _ in range(200):
            czt.run(inputs[i], 0, 441, out)
            if not np.array_equal(out, expected[i]):
                bad.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("bad,err,match", [
    (np.zeros(10, np.int16), TypeError, "real floating"),
    (np.zeros(10, np.complex64), TypeError, "real floating"),
    (np.zeros((2, 10), np.float32), ValueError, r"expected shape \(n,\)"),
    (np.array([0.0, np.nan, 1.0], np.float32), ValueError, "NaN or inf"),
    (np.array([np.inf], np.float32), ValueError, "NaN or inf"),
    ([0.0, 1.0], TypeError, "numpy array"),
])
def test_stft_push_rejects_bad_audio(bad, err, match):
    ana = dsp.StreamingSTFT()
    ana.push(np.ones(100, np.float32))
    with pytest.raises(err, match=match):
        ana.push(bad)
    # State untouched by the rejected push: the next frame is as if it never happened.
    ref = dsp.StreamingSTFT()
    ref.push(np.ones(100, np.float32))
    np.testing.assert_array_equal(ana.push(np.ones(60, np.float32)), ref.push(np.ones(60, np.float32)))


def test_float64_and_non_contiguous_audio_are_converted(rng):
    x = rng.standard_normal(2000)
    a = dsp.StreamingSTFT().push(x)                      # float64 -> float32
    b = dsp.StreamingSTFT().push(x.astype(np.float32))
    np.testing.assert_array_equal(a, b)
    strided = np.repeat(x.astype(np.float32), 2)[::2]   # non-contiguous view
    np.testing.assert_array_equal(dsp.StreamingSTFT().push(strided), b)


def test_native_layer_rejects_wrong_dtype_directly():
    # The bindings check too: calling _C without the Python layer gives a clear error, no crash.
    with pytest.raises(ValueError, match=r"\(n,\) float32"):
        dsp._C.StreamingStft(512, 400, 160).push(np.zeros(10, np.float64))
    with pytest.raises(ValueError, match="not C-contiguous"):
        dsp._C.StreamingStft(512, 400, 160).push(np.zeros(20, np.float32)[::2])


def test_mask_shape_mismatch_is_a_clear_error(rng):
    spec = np.zeros((4, 257), np.complex64)
    with pytest.raises(ValueError, match=r"expected shape \(n_masks, 2, 257, 4\)"):
        dsp.apply_mask(spec, np.zeros((1, 2, 256, 4), np.float32))
    with pytest.raises(TypeError, match="float32"):
        dsp.apply_mask(spec, np.zeros((1, 2, 257, 4), np.float64))
    with pytest.raises(ValueError, match="exactly one mask"):
        dsp.apply_mask(spec, np.zeros((2, 2, 257, 4), np.float32), mode="side")
    with pytest.raises(ValueError, match="mode"):
        dsp.apply_mask(spec, np.zeros((1, 2, 257, 4), np.float32), mode="sideways")
    with pytest.raises(ValueError, match=r"\(2, 4, 257\)"):
        dsp._C.apply_mask(spec, np.zeros((1, 2, 257, 4), np.float32), np.zeros((1, 4, 257), np.complex64), 1)


def test_istft_rejects_bad_frames():
    syn = dsp.StreamingISTFT(channels=2)
    with pytest.raises(ValueError, match=r"\(2, k, 257\)"):
        syn.push(np.zeros((1, 3, 257), np.complex64))
    with pytest.raises(TypeError, match="complex"):
        syn.push(np.zeros((2, 3, 257), np.float32))
    bad = np.zeros((2, 1, 257), np.complex64)
    bad[0, 0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        syn.push(bad)


@pytest.mark.parametrize("params,match", [
    ((511, 400, 160), "even"), ((512, 600, 160), "win_length"), ((512, 401, 160), "centred"),
    ((512, 400, 0), "hop"), ((512, 400, 401), "hop"),
])
def test_invalid_stft_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        dsp.StreamingSTFT(*params)


def test_empty_push_and_reset(rng):
    ana = dsp.StreamingSTFT()
    assert ana.push(np.zeros(0, np.float32)).shape == (0, 257)
    x = rng.standard_normal(1000).astype(np.float32)
    first = ana.push(x)
    ana.reset()
    np.testing.assert_array_equal(ana.push(x), first)


@pytest.mark.parametrize("core", ["native", "numpy"])
def test_one_stft_and_istft_shared_by_threads(core, monkeypatch, rng):
    """Threads pushing into ONE StreamingSTFT and ONE StreamingISTFT at once get what serial pushes give.

    Guards the per-object lock. Every push reads and writes the analyser's pending-sample count
    and sample history and the synthesiser's overlap-add accumulator; the native pushes run with
    the GIL released, so without the lock two pushes interleave and frames are lost or doubled
    (a wrong frame count, or frames written past the buffer sized before the push) and histories
    and accumulators get mixed (frames that differ from the steady-state one).

    The input repeats with a period of one hop and every push carries whole hops, so in any
    serial order, once warmed up, each push returns the same frames and the same samples.
    """
    if core == "numpy":
        monkeypatch.setattr(dsp, "_C", numpy_core)
    hops_per_push, n_threads, pushes = 8, 4, 150
    chunk = np.tile(rng.standard_normal(HOP).astype(np.float32), hops_per_push)
    ana, syn = dsp.StreamingSTFT(), dsp.StreamingISTFT(channels=1)
    for _ in range(3):  # fill the analyser's history and the synthesiser's accumulator
        spec = ana.push(chunk)
        steady_samples = syn.push(spec)
    steady_frames = ana.push(chunk)
    np.testing.assert_allclose(steady_frames, np.broadcast_to(steady_frames[:1], steady_frames.shape), atol=1e-4)
    steady_samples = syn.push(steady_frames)

    start, errors = threading.Barrier(n_threads), []

    def worker():
        try:
            start.wait()
            for _ in range(pushes):
                frames = ana.push(chunk)
                samples = syn.push(steady_frames)
                assert frames.shape == steady_frames.shape, f"{frames.shape[0]} frames, not {hops_per_push}"
                np.testing.assert_allclose(frames, steady_frames, atol=1e-4, rtol=0)
                np.testing.assert_allclose(samples, steady_samples, atol=1e-4, rtol=0)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{len(errors)} of {n_threads} threads failed; first: {errors[0]!r}"
    assert ana.frames_for(HOP - 1) == 0  # no stray samples pending: every push was whole hops
    np.testing.assert_allclose(ana.push(chunk), steady_frames, atol=1e-4, rtol=0)
