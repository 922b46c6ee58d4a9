"""streambin.numpy_core (the pure-numpy DSP used where streambin._C is missing) equals _C.

Op by op on awkward sizes, then the whole Spatializer with dsp's backend swapped, then the
import fallback itself in a fresh interpreter with the extension hidden.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from streambin import dsp, numpy_core

_native = pytest.importorskip("streambin._C")

PARAMS = [(512, 400, 160), (1024, 960, 480), (16, 12, 3)]
SIZES = [1, 64, 65, 8192, 8193]


@pytest.mark.parametrize("params", PARAMS)
def test_window_and_constants_match(params):
    np.testing.assert_array_equal(numpy_core.padded_hann(*params), _native.padded_hann(*params))
    assert numpy_core.prime_samples(*params) == _native.prime_samples(*params)
    assert numpy_core.latency_samples(*params) == _native.latency_samples(*params)


@pytest.mark.parametrize("params", PARAMS)
def test_streaming_stft_matches_in_any_chunking(params, rng):
    x = rng.standard_normal(20000).astype(np.float32)
    a, b = numpy_core.StreamingStft(*params), _native.StreamingStft(*params)
    pos, i = 0, 0
    while pos < len(x):
        c = SIZES[i % len(SIZES)]
        piece = x[pos:pos + c]
        assert a.frames_for(len(piece)) == b.frames_for(len(piece))
        fa, fb = a.push(piece), b.push(piece)
        assert fa.shape == fb.shape and fa.dtype == np.complex64
        np.testing.assert_allclose(fa, fb, rtol=1e-4, atol=1e-4)
        pos += c
        i += 1
    a.reset(), b.reset()
    np.testing.assert_allclose(a.push(x[:1000]), b.push(x[:1000]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_istft_matches(channels, rng):
    n_fft, win, hop = 512, 400, 160
    F = n_fft // 2 + 1
    a, b = numpy_core.StreamingIstft(n_fft, win, hop, channels), _native.StreamingIstft(n_fft, win, hop, channels)
    for k in (1, 3, 0, 7):
        spec = (rng.standard_normal((channels, k, F)) + 1j * rng.standard_normal((channels, k, F))).astype(np.complex64)
        oa = np.zeros((channels, k * hop), np.float32)
        ob = np.zeros_like(oa)
        a.push_into(spec, oa)
        b.push_into(spec, ob)
        np.testing.assert_allclose(oa, ob, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,n_masks", [(0, 1), (0, 2), (1, 1)])
def test_apply_mask_matches_on_strided_views(mode, n_masks, rng):
    k, F, T = 3, 257, 10
    spec = (rng.standard_normal((k, F)) + 1j * rng.standard_normal((k, F))).astype(np.complex64)
    model_out = rng.standard_normal((n_masks, 2, F, T)).astype(np.float32)
    mask = model_out[:, :, :, T - 2 - k:T - 2]  # the Spatializer's slice: a strided view
    n_out = 2 if mode == 1 else n_masks
    oa, ob = np.zeros((n_out, k, F), np.complex64), np.zeros((n_out, k, F), np.complex64)
    numpy_core.apply_mask(spec, mask, oa, mode)
    _native.apply_mask(spec, mask, ob, mode)
    np.testing.assert_allclose(oa, ob, rtol=1e-6, atol=1e-6)


def test_offline_stft_istft_match(rng):
    x = rng.standard_normal((2, 5000)).astype(np.float32)
    sa, sb = numpy_core.stft_frames(x, 512, 400, 160), _native.stft_frames(x, 512, 400, 160)
    np.testing.assert_allclose(sa, sb, rtol=1e-4, atol=1e-4)
    ya, yb = numpy_core.istft_frames(sb, 512, 400, 160), _native.istft_frames(sb, 512, 400, 160)
    # Where the window-square envelope is tiny (the first and last samples of a window) the
    # division magnifies float rounding of either FFT: compare the overlap-add itself there.
    w = numpy_core.padded_hann(512, 400, 160)
    env = np.zeros(ya.shape[1], np.float32)
    for t in range(sb.shape[1]):
        env[t * 160:t * 160 + 512] += w * w
    np.testing.assert_allclose(ya * env, yb * env, atol=1e-5)
    np.testing.assert_allclose(ya[:, env > 0.1], yb[:, env > 0.1], atol=1e-5)
    np.testing.assert_array_equal(ya == 0, yb == 0)


def test_bad_input_is_refused_as_native():
    for impl in (numpy_core, _native):
        with pytest.raises(ValueError, match="hop must be"):
            impl.StreamingStft(512, 400, 401)
        with pytest.raises(ValueError, match="float32"):
            impl.StreamingStft(512, 400, 160).push(np.zeros(10, np.float64))
        with pytest.raises(ValueError, match="side mode"):
            impl.apply_mask(np.zeros((4, 257), np.complex64), np.zeros((2, 2, 257, 4), np.float32),
                            np.zeros((2, 4, 257), np.complex64), 1)
    s = numpy_core.StreamingStft(512, 400, 160)
    with pytest.raises(ValueError, match="not finite"):
        s.push(np.array([0.0, np.nan], np.float32))
    np.testing.assert_allclose(s.push(np.ones(160, np.float32)), _native.StreamingStft(512, 400, 160).push(
        np.ones(160, np.float32)), rtol=1e-5)  # the refused push left no trace


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_spatializer_output_equal_on_numpy_dsp(tiny_unet, rate, monkeypatch, rng):
    from streambin.spatializer import Spatializer

    x = rng.standard_normal(rate // 2).astype(np.float32) * 0.1
    native = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=2).process(x)
    monkeypatch.setattr(dsp, "_C", numpy_core)
    fallback = Spatializer(tiny_unet[0], sample_rate=rate, block_frames=2).process(x)
    np.testing.assert_allclose(fallback, native, atol=2e-5)
    assert np.abs(native).max() > 1e-3


def test_import_falls_back_with_one_warning():
    """A fresh interpreter where streambin._C cannot be imported still runs streambin.dsp."""
    code = textwrap.dedent("""
        import importlib.abc, sys, warnings
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "streambin._C":
                    raise ImportError("hidden for the test")
        sys.meta_path.insert(0, Block())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import numpy as np
            from streambin import dsp
            import streambin.dsp
            spec = dsp.stft(np.ones(1600, np.float32))
        msgs = [str(w.message) for w in caught if "pure-numpy" in str(w.message)]
        print(len(msgs), dsp._C.__name__, spec.shape, dsp.has_cuda())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "streambin.numpy_core", "(10,", "257)", "False"]
