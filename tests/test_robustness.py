"""Spatializer under faults and hostile input: no poisoned state, no leaks, defined behaviour.

Each test names the failure it guards against. Tiny exported models with random weights
(tests/conftest.py); 16 kHz (the model rate, no resampler) where the rate does not matter.
"""

import gc
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streambin.spatializer import DEFAULT_BLOCK_FRAMES, MAX_ABS_SAMPLE, Spatializer

RATE = 16000


def noise(n, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


@pytest.fixture
def sp(tiny_unet):
    s = Spatializer(tiny_unet[0], sample_rate=RATE, block_frames=1, lookahead_frames=1)
    yield s
    s.close()


def state_of(s):
    """Everything a call may change, as comparable values."""
    st_ = dict(s.stats)
    for k in ("block_ms_mean", "block_ms_p99", "block_ms_max", "visual_ms_last", "stage_ms"):
        st_.pop(k)
    return st_, len(s._fifo), s._runner.n_pending, s._warned_nonfinite


# ----------------------------------------------------------------------------- faults


def test_a_failure_inside_a_block_resets_the_stream_and_the_next_call_works(sp, tiny_unet):
    x = noise(8000)
    audio = sp.backend.audio
    sp.process(x[:4000])

    def broken(*args):
        raise FloatingPointError("injected")

    sp.backend.audio = broken
    with pytest.raises(RuntimeError, match="stream was reset"):
        sp.process(x[:4000])
    sp.backend.audio = audio
    y = sp.process(x)                               # used to raise a broadcast error forever
    fresh = Spatializer(tiny_unet[0], sample_rate=RATE, block_frames=1, lookahead_frames=1)
    np.testing.assert_array_equal(y, fresh.process(x))


def test_absurd_finite_input_is_clipped_counted_and_output_stays_finite(sp):
    x = noise(4000)
    x[1000:3000] = 1e37
    x[3000] = -3e38
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = sp.process(x)
        y2 = sp.process(noise(4000, seed=1))        # the normal chunk after it
        sp.process(np.full(100, 1e300))             # float64 beyond float32's range: inf, counted
    assert np.isfinite(y).all() and np.isfinite(y2).all()
    assert sp.stats["clipped_samples"] == 2001
    assert sp.stats["nonfinite_samples"] == 100
    messages = [str(w.message) for w in caught]
    assert not any("overflow" in m or "invalid value" in m for m in messages), messages
    assert sum("clipped" in m for m in messages) == 1
    assert MAX_ABS_SAMPLE == 1000.0


@pytest.mark.parametrize("fps", [10, 11, 12, 15, 30])
@pytest.mark.parametrize("chunk", [160, 683, 1365])      # 480, 2048, 4096 samples at 48 kHz
def test_visual_cap_is_reached_by_any_camera_at_or_above_it(tiny_unet, fps, chunk):
    s = Spatializer(tiny_unet[0], sample_rate=RATE, block_frames=1, lookahead_frames=0)
    s.backend.audio = lambda spec, feat: np.zeros((1, s.bundle.n_masks, 2, s.n_bins, s.context_frames), np.float32)
    frame = np.zeros((8, 8, 3), np.uint8)
    seconds, k = 8, 0
    x = np.zeros(chunk, np.float32)
    for pos in range(0, seconds * RATE, chunk):
        f = None
        while k / fps <= pos / RATE:                 # the newest frame due by this chunk's start
            f, k = frame, k + 1
        s.process(x, f)
    runs = s.stats["visual_runs"]
    assert 0.95 * 10 * seconds <= runs <= 10 * seconds + 2, runs


def test_an_unclosed_threaded_instance_stops_its_worker_when_collected(tiny_unet):
    def workers():
        return sum(t.name == "streambin-visual" and t.is_alive() for t in threading.enumerate())

    before = workers()
    with pytest.warns(ResourceWarning, match="not closed"):
        for _ in range(3):
            s = Spatializer(tiny_unet[0], sample_rate=RATE, threaded_visual=True)
            s.process(noise(1600), np.zeros((8, 8, 3), np.uint8))
            del s
            gc.collect()
    assert workers() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # closed ones do not warn
        with Spatializer(tiny_unet[0], sample_rate=RATE, threaded_visual=True) as s:
            s.process(noise(1600))
        del s
        gc.collect()


def test_one_long_chunk_keeps_working_memory_bounded(sp):
    n = 20 * RATE
    x = noise(n)
    sp.process(x[:RATE])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    y = sp.process(x)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    result = y.nbytes
    # Before: a float32 copy and a mask of the chunk, the FIFO grown to twice the output, then
    # the result (~4.5x the result); now the result plus a few seconds' worth of scratch and FIFO.
    assert peak <= result + 4 * (2 * 4 * RATE), (peak, result)
    assert len(sp._fifo._buf) <= 4 * RATE           # the FIFO holds seconds, not the 20 s chunk
    assert np.isfinite(y).all()


def test_a_concurrent_call_gets_a_clear_error_and_the_running_one_completes(sp):
    inside, release = threading.Event(), threading.Event()
    audio = sp.backend.audio

    def slow(*args):
        inside.set()
        release.wait(10)
        return audio(*args)

    sp.backend.audio = slow
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("y", sp.process(noise(1600))))
    t.start()
    assert inside.wait(10)
    with pytest.raises(RuntimeError, match="one call at a time"):
        sp.process(noise(160))
    release.set()
    t.join(10)
    assert result["y"].shape == (2, 1600)
    sp.backend.audio = audio
    assert sp.process(noise(160)).shape == (2, 160)


def test_default_block_size_is_fixed_and_the_probe_runs_only_when_asked(tiny_unet, monkeypatch):
    def no_probe(self):
        raise AssertionError("speed probe ran without block_frames='auto'")

    monkeypatch.setattr(Spatializer, "_measure_audio_ms", no_probe)
    a = Spatializer(tiny_unet[0], sample_rate=48000)
    b = Spatializer(tiny_unet[0], sample_rate=48000)
    assert a.block_frames == b.block_frames == DEFAULT_BLOCK_FRAMES
    assert a.latency_samples == b.latency_samples
    x = noise(9600)
    np.testing.assert_array_equal(a.process(x), b.process(x))
    with pytest.raises(AssertionError, match="speed probe"):
        Spatializer(tiny_unet[0], sample_rate=48000, block_frames="auto")


def test_a_rejected_call_changes_nothing(sp):
    sp.process(noise(1600))
    before = state_of(sp)
    x = noise(1600)
    x[:10] = np.nan
    with pytest.raises(TypeError, match="uint8"):
        sp.process(x, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        sp.process(np.zeros((2, 100), np.float32))
    assert state_of(sp) == before
    with pytest.warns(RuntimeWarning, match="NaN"):  # the one-time warning was not used up
        sp.process(x)
    assert sp.stats["nonfinite_samples"] == 10


# ----------------------------------------------------------------------------- usage errors


def test_arguments_are_validated_with_messages_that_name_them(tiny_unet):
    model = tiny_unet[0]
    with pytest.raises(ValueError, match="lookahead_frames must be below the .* mask frames the model.s audio graph returns"):
        Spatializer(model, lookahead_frames=1000)
    for bad in (1000, 0, -1, 2.0, True):
        with pytest.raises(ValueError, match="num_threads"):
            Spatializer(model, num_threads=bad)
    with pytest.raises(ValueError, match="threaded_visual"):
        Spatializer(model, threaded_visual="yes")
    with pytest.raises(ValueError, match="lookahead_frames"):
        Spatializer(model, lookahead_frames=True)
    for bad in (0, 17, "fast", 1.5, True):
        with pytest.raises(ValueError, match="block_frames"):
            Spatializer(model, block_frames=bad)
    with pytest.raises(TypeError, match="model must be"):
        Spatializer(123)
    with pytest.raises(ValueError, match="model must be"):
        Spatializer("")


def test_every_call_after_close_raises_a_clear_error(sp):
    sp.process(noise(1600))
    sp.close()
    for n in (10, 160, 1600):                       # short chunks used to run on, then fail cryptically
        with pytest.raises(RuntimeError, match="closed"):
            sp.process(noise(n))
    with pytest.raises(RuntimeError, match="closed"):
        sp.flush()
    sp.close()                                      # twice is harmless


def test_denormal_input_is_flushed_to_zero(sp, tiny_unet):
    tiny = np.full(3200, 1e-40, np.float32)         # denormal float32
    assert 0 < tiny[0] < np.finfo(np.float32).tiny
    y = sp.process(tiny)
    zero = Spatializer(tiny_unet[0], sample_rate=RATE, block_frames=1, lookahead_frames=1)
    np.testing.assert_array_equal(y, zero.process(np.zeros(3200, np.float32)))


# ----------------------------------------------------------------------------- properties

_FRAMES = st.one_of(st.none(), st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 3, 4])))
_VALUES = st.one_of(st.floats(-1, 1, width=32), st.sampled_from(
    [0.0, 1e-40, -1e-42, 1e-30, 1e30, -1e37, 3.4e38, float("nan"), float("inf"), -float("inf"), 1.0, -1.0]))


def _make_frame(spec, seed):
    if spec is None:
        return None
    h, w, c = spec
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _cast(x, dtype):
    if dtype == "int16":
        return (np.clip(np.nan_to_num(x), -1, 1) * 32767).astype(np.int16)
    if dtype == "int32":
        return (np.clip(np.nan_to_num(x), -1, 1) * 2147483647).astype(np.int32)
    return x.astype(dtype)


@pytest.fixture(scope="module")
def prop_sp(tiny_unet):
    s = Spatializer(tiny_unet[0], sample_rate=RATE, block_frames=2, lookahead_frames=1)
    yield s
    s.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_VALUES, min_size=0, max_size=3000),
       cuts=st.lists(st.integers(0, 3000), max_size=6),
       dtype=st.sampled_from(["float32", "float64", "int16", "int32"]),
       frame=_FRAMES)
def test_property_any_chunking_dtype_and_values(prop_sp, values, cuts, dtype, frame):
    """Shape (2, n), finite output, and the same output however the input is chunked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the documented NaN/clip warnings
        x = _cast(np.array(values, np.float64), dtype)
        f = _make_frame(frame, len(values))
        prop_sp.reset()
        whole = prop_sp.process(x, f)
        assert whole.shape == (2, len(x)) and whole.dtype == np.float32
        assert np.isfinite(whole).all()
        prop_sp.reset()
        bounds = [0] + sorted(min(c, len(x)) for c in cuts) + [len(x)]
        parts = [prop_sp.process(x[a:b], f if a == 0 else None) for a, b in zip(bounds[:-1], bounds[1:])]
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.sampled_from(["float_frame", "rank4_frame", "empty_frame", "int8_chunk", "stereo_chunk", "list_chunk"]),
       n=st.integers(0, 2000))
def test_property_rejected_calls_leave_the_stream_untouched(prop_sp, bad, n):
    x = noise(n, seed=n)
    x[: n // 10] = np.nan
    args = {"float_frame": (x, np.zeros((4, 4, 3), np.float32)),
            "rank4_frame": (x, np.zeros((1, 4, 4, 3), np.uint8)),
            "empty_frame": (x, np.zeros((0, 4, 3), np.uint8)),
            "int8_chunk": (np.zeros(n, np.int8), None),
            "stereo_chunk": (np.zeros((2, n + 2), np.float32), None),
            "list_chunk": ([0.0] * n, None)}[bad]
    prop_sp.reset()
    prop_sp.process(noise(700))
    before = state_of(prop_sp)
    with pytest.raises((TypeError, ValueError)):
        prop_sp.process(*args)
    assert state_of(prop_sp) == before
    after = prop_sp.process(noise(500, seed=3))
    prop_sp.reset()
    prop_sp.process(noise(700))
    np.testing.assert_array_equal(after, prop_sp.process(noise(500, seed=3)))


# ----------------------------------------------------------------------------- command line


@pytest.fixture
def short_wav(tmp_path):
    import soundfile as sf

    path = tmp_path / "in.wav"
    sf.write(path, noise(1600), RATE)
    return path


def test_cli_model_backend_and_output_folder_errors_are_one_line_exit_2(tiny_unet, short_wav, tmp_path,
                                                                           monkeypatch, capsys):
    import streambin.backends
    from streambin import cli

    bad_ckpt = tmp_path / "notes.pt"
    bad_ckpt.write_text("not a checkpoint")
    model = str(tiny_unet[0])
    assert cli.main(["spatialize", str(short_wav), "-o", str(tmp_path / "a.wav"), "--model", str(bad_ckpt),
                     "--quiet"]) == 2
    assert "not a streambin training checkpoint" in capsys.readouterr().err
    # A path under a regular file: refused before any processing (it used to fail at the write).
    assert cli.main(["spatialize", str(short_wav), "-o", str(short_wav / "x.wav"), "--model", model,
                     "--quiet"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err

    def unavailable(*args, **kwargs):
        raise streambin.backends.BackendUnavailable("TensorRT is not installed")

    monkeypatch.setattr(streambin.backends, "create_backend", unavailable)
    assert cli.main(["spatialize", str(short_wav), "-o", str(tmp_path / "b.wav"), "--model", model,
                     "--backend", "tensorrt", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "Traceback" not in err
    assert not (tmp_path / "a.wav").exists() and not (tmp_path / "b.wav").exists()


def test_demo_file_mode_leaves_no_output_file_when_it_fails(tiny_unet, short_wav, tmp_path):
    from streambin.demo import DemoError, run_file_mode

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    out = tmp_path / "out.wav"
    with pytest.raises(Exception) as info:
        run_file_mode(str(short_wav), str(out), video=str(garbage), model=str(tiny_unet[0]), pace=False,
                      print_report=False)
    assert isinstance(info.value, (DemoError, ValueError)), info.value
    assert not out.exists()                          # used to be a 0-sample wav


@pytest.mark.parametrize("rate,full_band", [(16000, None), (22050, None), (44100, None), (48000, None),
                                            (48000, False)])
def test_flush_returns_everything_owed(tiny_unet, rate, full_band):
    """After flush() the output of silence is exactly silent: nothing is left in the stream."""
    sp = Spatializer(tiny_unet[0], sample_rate=rate, full_band=full_band)
    x = np.random.default_rng(1).standard_normal(rate // 2).astype(np.float32) * 0.3
    head = sp.process(x)
    tail = sp.flush()
    assert tail.shape == (2, sp.latency_samples + sp.tail_samples)
    assert np.abs(tail[:, sp.latency_samples:]).max() > 0       # the decay is real audio ...
    assert np.abs(sp.process(np.zeros(rate // 2, np.float32))).max() < 1e-7  # ... and all of it
    aligned = np.concatenate([head, tail], axis=1)[:, sp.latency_samples:sp.latency_samples + len(x)]
    assert aligned.shape == (2, len(x))
