"""streambin.demo: the live demo's real-time path.

There is no sound card, camera or display in CI. The real-time path is therefore driven by
file mode (the same callback, rings and worker, fed by a thread playing the sound card), the
callback is called directly with numpy buffers, and the live mode runs against a stand-in
``sounddevice`` module whose stream calls the callback from a thread (the only mocks here:
the missing sound card and the missing PortAudio library).
"""

import _thread
import builtins
import signal
import sys
import threading
import time
import types

import numpy as np
import pytest
import soundfile as sf

from streambin import demo
from streambin.demo_overlay import LevelHistory, render_overlay
from streambin.demo_realtime import AudioBridge, SampleRing

RATE = 48000


def _write_scene(tmp_path, seconds=1.5, rate=RATE, n_frames=15):
    """A noise + tone wav and a directory of frames with a white square moving left to right."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.05 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wav = tmp_path / "in.wav"
    sf.write(wav, mono, rate, subtype="FLOAT")
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2

    for i in range(n_frames):
        img = np.full((90, 160, 3), 30, np.uint8)
        x = int(10 + 120 * i / max(n_frames - 1, 1))
        img[30:60, x:x + 30] = 255
        cv2.imwrite(str(frames / f"{i + 1:06d}.png"), img)
    return wav, frames, mono


def _read(path):
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.T, rate


# ---------------------------------------------------------------------------- file mode, end to end

def test_file_mode_real_time_path_equals_offline_cli(tiny_unet, tmp_path):
    """Frames + audio in, binaural wav out through callback/rings/worker at the default settings:
    no underruns, overruns or dropped frames, and after removing the demo's delay the output is
    the offline CLI's. The CLI output is latency-compensated (sample i of the output belongs to
    input sample i); the demo writes the played stream, which is delayed by the engine's
    algorithmic latency plus the jitter buffer (one callback block of pre-roll):
    ``output_offset_samples``."""
    from streambin.cli import spatialize_file

    bundle = tiny_unet[0]
    wav, frames, mono = _write_scene(tmp_path)
    report = demo.run_file_mode(wav, tmp_path / "demo.wav", frames_dir=frames, fps=10.0, model=bundle,
                                pace=False, print_report=False)
    block = int(RATE * demo.FILE_BLOCK_MS / 1e3)
    assert report["underruns"] == 0 and report["overruns"] == 0 and report["skipped_samples"] == 0
    assert report["engine_underrun_samples"] == 0
    assert report["frames_in"] == 15 and report["frames_dropped"] == 0 and report["frames_overwritten"] == 0
    assert report["frames_skipped"] == 0  # 10 fps frames, the default visual_fps cap
    assert report["blocks"] >= len(mono) // (report["block_frames"] * RATE // 100)
    assert report["callback_frames"] == block
    assert report["jitter_ms"] == pytest.approx(1e3 * block / RATE)  # the pre-roll, nothing more
    alg_samples = round(report["algorithmic_latency_ms"] * RATE / 1e3)
    assert report["output_offset_samples"] == alg_samples + block
    assert report["end_to_end_latency_ms"] == pytest.approx(
        report["algorithmic_latency_ms"] + 2 * 1e3 * block / RATE)

    out, rate = _read(tmp_path / "demo.wav")
    assert rate == RATE and out.shape == (2, len(mono) + report["output_offset_samples"])
    assert not out[:, :block].any()  # pre-roll silence

    spatialize_file(wav, tmp_path / "cli.wav", frames_dir=frames, fps=10.0, model=bundle,
                    block_frames=report["block_frames"], progress=False)
    ref, _ = _read(tmp_path / "cli.wav")
    aligned = out[:, report["output_offset_samples"]:]
    assert aligned.shape == ref.shape
    assert np.abs(ref).max() > 0.05
    np.testing.assert_allclose(aligned, ref, atol=1e-5, rtol=0)
    # The two ears differ: the model did spatialize (it is not a mono pass-through).
    assert np.abs(aligned[0] - aligned[1]).max() > 1e-4


def test_file_mode_mirror_is_the_cli_mirror(tiny_apnet, tmp_path):
    """--mirror reaches the engine in the demo as in the CLI (a tiny APNet: its output depends
    on the picture), and it changes the output."""
    from streambin.cli import spatialize_file

    wav, frames, mono = _write_scene(tmp_path)
    assert demo.build_parser().parse_args(["--mirror"]).mirror
    report = demo.run_file_mode(wav, tmp_path / "demo.wav", frames_dir=frames, fps=10.0, model=tiny_apnet[0],
                                pace=False, print_report=False, mirror=True)
    out, _ = _read(tmp_path / "demo.wav")
    for mirror in (True, False):
        spatialize_file(wav, tmp_path / f"cli_{mirror}.wav", frames_dir=frames, fps=10.0, model=tiny_apnet[0],
                        block_frames=report["block_frames"], mirror=mirror, progress=False)
    mirrored, _ = _read(tmp_path / "cli_True.wav")
    plain, _ = _read(tmp_path / "cli_False.wav")
    aligned = out[:, report["output_offset_samples"]:]
    # The demo hands frames to a worker thread, so a frame can take effect a block earlier or
    # later than in the CLI: compare distances rather than samples.
    to_mirrored, to_plain = np.linalg.norm(aligned - mirrored), np.linalg.norm(aligned - plain)
    assert to_mirrored < 0.5 * to_plain


def test_file_mode_command_line_and_ctrl_c_writes_what_was_played(tiny_unet, tmp_path, capsys):
    """Paced like a live stream; a simulated Ctrl-C after 0.4 s stops it cleanly: exit code 0,
    the wav holds what was played so far, the report is printed."""
    wav, frames, mono = _write_scene(tmp_path, seconds=3.0)
    out_wav = tmp_path / "partial.wav"
    done = threading.Event()

    def ctrl_c_once_playing():
        while not done.is_set():
            if any(t.name == "streambin-demo-feeder" for t in threading.enumerate()):
                time.sleep(0.4)
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    # interrupt_main() does nothing where SIGINT is ignored, as in a job a non-interactive shell
    # started with '&': give the test Python's own Ctrl-C handler for its duration.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=ctrl_c_once_playing, daemon=True).start()
    try:
        rc = demo.main(["--input-wav", str(wav), "--frames", str(frames), "--output-wav", str(out_wav),
                        "--model", str(tiny_unet[0]), "--no-preview"])
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)
    captured = capsys.readouterr()
    assert rc == 0
    assert "stopped early" in captured.out and "end-to-end" in captured.out
    out, _ = _read(out_wav)
    block = int(RATE * demo.FILE_BLOCK_MS / 1e3)
    # Played in whole callback blocks, and far less than the 3 s clip (paced at real time).
    assert out.shape[0] == 2 and out.shape[1] > 0 and out.shape[1] % block == 0
    assert out.shape[1] < len(mono)


def test_file_mode_bad_arguments(tmp_path, capsys):
    assert demo.main(["--input-wav", str(tmp_path / "missing.wav"), "--output-wav", str(tmp_path / "o.wav"),
                      "--no-preview"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert demo.main(["--input-wav", str(tmp_path / "x.wav"), "--no-preview"]) == 2
    assert "--output-wav" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the callback alone

def _worker_step(bridge, gain=1.0):
    """What the worker does, without a model: input ring -> (x, -x) * gain -> output ring."""
    buf = np.zeros((bridge.input.capacity, 1), np.float32)
    n = bridge.input.pop_into(buf, len(buf))
    y = np.concatenate([buf[:n], -buf[:n]], axis=1) * gain
    assert bridge.output.push(y) == n


def test_callback_prerolls_then_plays_and_underruns_grow_the_jitter_buffer():
    """The sounddevice callback called directly with numpy buffers (no sound card in CI)."""
    bridge = AudioBridge(input_capacity=1000, output_capacity=1000)
    frames = 64
    blocks = [np.arange(i * frames, (i + 1) * frames, dtype=np.float32)[:, None] / 1000 for i in range(6)]
    out = np.full((frames, 2), 9.0, np.float32)

    bridge.callback(blocks[0], out, frames, None, None)
    assert not out.any()  # pre-roll: one block of silence
    assert bridge.input.available == frames and bridge.jitter_samples == frames
    _worker_step(bridge)

    bridge.callback(blocks[1], out, frames, None, None)
    np.testing.assert_array_equal(out[:, 0], blocks[0][:, 0])
    np.testing.assert_array_equal(out[:, 1], -blocks[0][:, 0])
    assert bridge.underruns == 0

    # The worker is late: the callback plays a whole block of silence and consumes nothing.
    bridge.callback(blocks[2], out, frames, None, None)
    assert not out.any()
    assert bridge.underruns == 1 and bridge.underrun_samples == frames
    assert bridge.jitter_samples == 2 * frames  # one block deeper from now on
    _worker_step(bridge)  # blocks 1 and 2 arrive together

    # Nothing was dropped: block 1 plays next, then block 2, with no further underrun.
    for expected, new in ((blocks[1], blocks[3]), (blocks[2], blocks[4])):
        bridge.callback(new, out, frames, None, None)
        np.testing.assert_array_equal(out[:, 0], expected[:, 0])
        _worker_step(bridge)
    assert bridge.underruns == 1 and bridge.overruns == 0
    assert bridge.callbacks == 5 and bridge.samples_in == 5 * frames


def test_callback_variable_block_sizes_status_and_recording():
    """Variable block sizes (sounddevice's blocksize=0): the pre-roll is the first callback's
    size; a later, larger block than the ring holds underruns once and deepens the buffer."""
    bridge = AudioBridge(input_capacity=500, output_capacity=4000, record_capacity=4000)
    sizes = [100, 37, 256, 1, 160]
    played, stream_in = [], []
    rng = np.random.default_rng(1)
    for k, n in enumerate(sizes):
        x = rng.standard_normal((n, 1)).astype(np.float32)
        stream_in.append(x[:, 0])
        out = np.empty((n, 2), np.float32)
        bridge.callback(x, out, n, None, "input overflow" if k == 2 else None)
        played.append(out.copy())
        _worker_step(bridge)
    played = np.concatenate(played)
    x = np.concatenate(stream_in)
    assert bridge.underruns == 1 and bridge.underrun_samples == 256
    assert bridge.jitter_samples == 100 + 256
    expected = np.concatenate([np.zeros(100), x[:37], np.zeros(256), x[37:37 + 161]])
    np.testing.assert_array_equal(played[:, 0], expected)
    np.testing.assert_array_equal(played[:, 1], -expected)
    assert bridge.device_status == 1
    rec = np.zeros((4000, 2), np.float32)  # the recording ring got a copy of every outdata
    n = bridge.record.pop_into(rec, 4000)
    np.testing.assert_array_equal(rec[:n], played)


def test_callback_overruns_and_jitter_cap():
    """The worker stalls: the input ring (500) fills and the part that does not fit is dropped
    (overrun); the output runs dry and underruns deepen the jitter buffer up to its 300-sample
    cap, past which late audio is skipped to hold the latency."""
    bridge = AudioBridge(input_capacity=500, output_capacity=4000, preroll_samples=0, max_jitter_samples=300)
    out = np.empty((200, 2), np.float32)
    for _ in range(4):
        bridge.callback(np.ones((200, 1), np.float32), out, 200, None, None)
    assert bridge.input.available == 500
    assert bridge.overruns == 2 and bridge.overrun_samples == 300
    assert bridge.underruns == 4 and bridge.underrun_samples == 800
    # 800 samples of silence were played; the buffer was held at the cap by owing 200 skipped
    # samples, and the 300 lost input samples shorten the delay of everything after them.
    assert bridge.skipped_samples == 200
    assert bridge.jitter_samples == 800 - 200 - 300 == 300
    _worker_step(bridge, gain=2.0)  # the 500 late samples arrive: the first 200 are discarded
    bridge.callback(np.ones((200, 1), np.float32), out, 200, None, None)
    np.testing.assert_array_equal(out, np.tile([[2.0, -2.0]], (200, 1)))
    assert bridge.output.available == 100 and bridge.underruns == 4


def test_sample_ring_wraps_and_validates():
    ring = SampleRing(5, 2)
    out = np.zeros((5, 2), np.float32)
    for start in range(0, 30, 3):
        x = np.arange(start, start + 3, dtype=np.float32)[:, None].repeat(2, axis=1)
        assert ring.push(x) == 3
        assert ring.pop_into(out, 3) == 3
        np.testing.assert_array_equal(out[:3], x)
    assert ring.push(np.zeros((7, 2), np.float32)) == 5 and ring.free == 0
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        ring.push(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError):
        SampleRing(0, 1)


# ---------------------------------------------------------------------------- the preview's meter

def test_level_history_sign_and_overlay_marker():
    meter = LevelHistory(16000, window_ms=50)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(800 * 3).astype(np.float32)
    meter.push(np.stack([0.5 * x, x]))            # right ear 6 dB louder
    meter.push(np.stack([x[:800], 0.25 * x[:800]]))  # left ear 12 dB louder
    meter.push(np.zeros((2, 800), np.float32))    # silence
    assert len(meter.values) == 5
    np.testing.assert_allclose(list(meter.values), [6.02, 6.02, 6.02, -12.04, 0.0], atol=0.01)
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        meter.push(np.zeros(10, np.float32))

    frame = np.zeros((120, 240, 3), np.uint8)
    img_right = render_overlay(frame, [6.0], width=320, strip_height=64)
    img_left = render_overlay(frame, [-6.0], width=320, strip_height=64)
    assert img_right.shape == (160 + 64, 320, 3)
    def bar(img):  # the current-value bar: amber (BGR 0, 220, 255) in rows 2-8 of the strip
        rows = img[160 + 2:160 + 9].astype(int)
        return (rows[:, :, 2] > 200) & (rows[:, :, 0] < 60)

    bar_right, bar_left = bar(img_right), bar(img_left)
    assert bar_right[:, 170:].any() and not bar_right[:, :150].any()
    assert bar_left[:, :150].any() and not bar_left[:, 170:].any()


def test_overlay_marks_the_side_renderers_peaks_where_the_camera_sees_them():
    """At the renderer's 90 degrees of view, a peak at atan(0.5) = 26.6 degrees right sits 3/4 of
    the way across the picture (u = W/2 + (W/2) tan(az)); with a mirrored camera, 1/4."""
    frame = np.zeros((120, 240, 3), np.uint8)
    az = float(np.degrees(np.arctan(0.5)))

    def marked_columns(img):
        rows = img[10:40].astype(int)   # above the labels: only the lines are drawn there
        hot = (rows[:, :, 2] > 200) & (rows[:, :, 1] > 60)
        return np.flatnonzero(hot.any(axis=0))

    cols = marked_columns(render_overlay(frame, [], width=320, strip_height=32, peaks=([az], [1.0])))
    assert cols.size and abs(cols.mean() - 240) <= 3                 # 3/4 of 320
    mirrored = marked_columns(render_overlay(frame, [], width=320, strip_height=32, peaks=([az], [1.0]),
                                             mirror=True))
    assert mirrored.size and abs(mirrored.mean() - 80) <= 3          # the selfie picture: flipped
    assert marked_columns(render_overlay(frame, [], width=320, strip_height=32)).size == 0
    two = marked_columns(render_overlay(frame, [], width=320, strip_height=32,
                                        peaks=([-az, az], [0.2, 0.8])))
    assert (abs(two - 80) <= 3).any() and (abs(two - 240) <= 4).any()
    with pytest.raises(ValueError, match="peaks must be"):
        render_overlay(frame, [], peaks=([1.0, 2.0], [1.0]))
    # a featureless frame's plateau of tied peaks: only the strongest few are marked
    many = np.linspace(-40, 40, 200)
    weights = np.full(200, 0.5 / 199)
    weights[57] = 0.5
    marked = marked_columns(render_overlay(frame, [], width=320, strip_height=32, peaks=(many, weights)))
    strongest = 160 + 160 * np.tan(np.radians(many[57]))
    assert (abs(marked - strongest) <= 3).any() and marked.size <= 8 * 3


# ---------------------------------------------------------------------------- missing hardware

def test_missing_portaudio_message(monkeypatch, capsys):
    """sounddevice raises OSError('PortAudio library not found') at import without libportaudio2."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(demo.DemoError, match="PortAudio is not installed: apt-get install libportaudio2"):
        demo.import_sounddevice()
    assert demo.main(["--list-devices"]) == 2
    assert demo.PORTAUDIO_MESSAGE in capsys.readouterr().err
    assert demo.main(["--no-camera", "--no-preview"]) == 2  # live mode fails the same way
    assert "--input-wav/--output-wav" in capsys.readouterr().err


def test_missing_camera_message():
    """A camera index that cannot open, with the real OpenCV."""
    with pytest.raises(demo.DemoError, match=r"camera 99 could not be opened: .*use --video FILE or --frames DIR"):
        demo.open_camera(99)


# ---------------------------------------------------------------------------- live mode, stand-in card

class _FakeStream:
    """Stands in for sounddevice.Stream: a thread calls the callback with a 440 Hz tone in
    480-sample blocks at about real time, then simulates Ctrl-C."""

    instances = []

    def __init__(self, device, samplerate, blocksize, channels, dtype, callback):
        assert channels == (1, 2) and dtype == "float32" and blocksize == 0
        self.rate, self.callback = samplerate, callback
        self.latency = (0.005, 0.010)
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        _FakeStream.instances.append(self)

    def _run(self):
        n, t = 480, 0
        while not self._stop.is_set():
            x = (0.3 * np.sin(2 * np.pi * 440 * (t + np.arange(n)) / self.rate)).astype(np.float32)[:, None]
            out = np.empty((n, 2), np.float32)
            self.callback(x, out, n, None, None)
            self.calls += 1
            t += n
            if self.calls == 40:
                _thread.interrupt_main()
            time.sleep(n / self.rate)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_live_mode_with_a_stand_in_sound_card(tiny_unet, tmp_path, monkeypatch, capsys):
    fake = types.SimpleNamespace(
        PortAudioError=RuntimeError,
        query_devices=lambda device=None, kind=None: (
            [{"name": "fake"}] if kind is None else {"name": f"fake {kind}", "default_samplerate": 48000.0}),
        Stream=_FakeStream)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    _, frames, _ = _write_scene(tmp_path, seconds=0.1, n_frames=3)
    out_wav = tmp_path / "live.wav"
    rc = demo.main(["--frames", str(frames), "--model", str(tiny_unet[0]), "--output-wav", str(out_wav),
                    "--no-preview"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    stream = _FakeStream.instances[-1]
    assert "live mode, 48000 Hz" in captured.out and "device in+out 15.0 ms" in captured.out
    played, rate = _read(out_wav)
    assert rate == 48000 and played.shape[1] == stream.calls * 480  # everything played was recorded
    assert not played[:, :480].any() and np.abs(played).max() > 0.01  # pre-roll, then sound


def test_no_audio_devices_message(monkeypatch, capsys):
    fake = types.SimpleNamespace(PortAudioError=RuntimeError, query_devices=lambda device=None, kind=None: [])
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    assert demo.main(["--no-camera", "--no-preview"]) == 2
    assert "no audio devices found" in capsys.readouterr().err
    assert demo.main(["--list-devices"]) == 0
    assert "use file mode: --input-wav/--output-wav" in capsys.readouterr().out


def test_file_mode_reads_the_pictures_at_the_cameras_field_of_view(tmp_path, capsys):
    """--camera-hfov reaches the engine (the shipped default's side renderer) and the report."""
    wav, frames, _ = _write_scene(tmp_path, seconds=0.5, n_frames=5)
    assert demo.build_parser().parse_args([]).camera_hfov is None
    assert demo.main(["--input-wav", str(wav), "--frames", str(frames), "--output-wav", str(tmp_path / "o.wav"),
                      "--no-pace", "--no-preview", "--camera-hfov", "70"]) == 0
    assert "pictures read at 70 degrees of view" in capsys.readouterr().out
    assert demo.main(["--input-wav", str(wav), "--output-wav", str(tmp_path / "o.wav"), "--no-pace",
                      "--no-preview", "--camera-hfov", "70", "--no-side-renderer"]) == 2
    assert "read by the side renderer, which is off here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.build_parser().parse_args(["--camera-hfov", "0"])
