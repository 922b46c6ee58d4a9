"""The offline CLI: python -m streambin spatialize (on the shipped example scene, tiny model)."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from streambin import cli, media
from streambin.bundle import load_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE_WAV = os.path.join(ROOT, "examples", "scene.wav")
EXAMPLE_MP4 = os.path.join(ROOT, "examples", "scene.mp4")


def test_example_ships_with_the_repo():
    mono, rate = media.read_mono(EXAMPLE_WAV)
    assert rate == 16000 and mono.ndim == 1 and len(mono) == 160000
    frames = list(media.iter_video_frames(EXAMPLE_MP4))
    assert len(frames) == 100 and frames[0][1].shape == (224, 448, 3)


def test_spatialize_wav_is_aligned_with_the_input(tiny_unet, tmp_path):
    """The CLI removes the engine's latency: with a side-mask model (L + R) / 2 is the input."""
    out = tmp_path / "out.wav"
    stats = cli.spatialize_file(EXAMPLE_WAV, out, video=EXAMPLE_MP4, model=tiny_unet[0], progress=False)
    y, rate = sf.read(str(out), dtype="float32", always_2d=True)
    mono, _ = media.read_mono(EXAMPLE_WAV)
    assert rate == 16000 and y.shape == (len(mono), 2)
    np.testing.assert_allclose((y[:, 0] + y[:, 1]) / 2, mono, atol=1e-5)
    assert stats["visual_runs"] == 100 and stats["underrun_samples"] == 0


def test_spatialize_to_mp4_and_frames_dir(tiny_unet, tmp_path):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    import cv2

    for i, (_, rgb) in enumerate(media.iter_video_frames(EXAMPLE_MP4)):
        if i >= 20:
            break
        cv2.imwrite(str(frames_dir / f"{i + 1:06d}.png"), rgb[:, :, ::-1])
    out_wav = tmp_path / "a.wav"
    cli.spatialize_file(EXAMPLE_WAV, out_wav, frames_dir=frames_dir, model=tiny_unet[0], progress=False)
    assert sf.info(str(out_wav)).channels == 2
    out_mp4 = tmp_path / "a.mp4"
    cli.spatialize_file(EXAMPLE_WAV, out_mp4, video=EXAMPLE_MP4, model=tiny_unet[0], progress=False)
    import av

    with av.open(str(out_mp4)) as c:
        kinds = sorted(s.type for s in c.streams)
        assert kinds == ["audio", "video"]
        assert c.streams.audio[0].codec_context.channels == 2


def test_cli_errors_are_clear(tiny_unet, tmp_path, capsys):
    r = subprocess.run([sys.executable, "-m", "streambin", "spatialize", str(tmp_path / "missing.wav"), "-o",
                        str(tmp_path / "o.wav")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no such file" in r.stderr
    # A video output needs a picture source.
    code = cli.main(["spatialize", EXAMPLE_WAV, "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_unet[0]),
                     "--quiet"])
    assert code == 2 and "needs a video" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --frames and --video exclude each other
        cli.main(["spatialize", EXAMPLE_WAV, "-o", "x.wav", "--frames", "d", "--video", "v.mp4"])


def _short_wav(tmp_path, channels=1, seconds=0.6, rate=16000):
    """A short clip (a tone) as a wav with `channels` identical channels."""
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    path = tmp_path / f"short_{channels}ch.wav"
    sf.write(str(path), np.repeat(x[:, None], channels, axis=1), rate, subtype="FLOAT")
    return path, x


@pytest.mark.parametrize("suffix", [".flac", ".ogg", ".wav", ".mkv", ".mov"])
def test_every_listed_output_format_is_written(tiny_unet, tmp_path, suffix):
    wav, x = _short_wav(tmp_path)
    out = tmp_path / f"out{suffix}"
    cli.spatialize_file(wav, out, video=EXAMPLE_MP4, model=tiny_unet[0], progress=False)
    if suffix in media.AUDIO_OUTPUTS:
        y, rate = sf.read(str(out), dtype="float32", always_2d=True)
        assert rate == 16000 and y.shape == (len(x), 2)
        atol = 1e-5 if suffix == ".wav" else (1e-4 if suffix == ".flac" else 0.05)  # 24-bit, Vorbis
        np.testing.assert_allclose((y[:, 0] + y[:, 1]) / 2, x, atol=atol)
    else:
        import av

        with av.open(str(out)) as c:
            assert sorted(s.type for s in c.streams) == ["audio", "video"]
            assert c.streams.audio[0].codec_context.channels == 2


def test_unwritable_formats_are_refused_before_processing(tiny_unet, tmp_path, monkeypatch):
    import streambin.offline

    def fail(*a, **k):
        raise AssertionError("processing started")

    monkeypatch.setattr(streambin.offline, "run_offline", fail)
    for name, match in [("o.webm", "webm holds only"), ("o.mp3", "cannot write .mp3"), ("o", "without a suffix"),
                        ("o.mp4", "needs a video")]:
        with pytest.raises(media.MediaError, match=match):
            cli.spatialize_file(EXAMPLE_WAV, tmp_path / name, model=tiny_unet[0], progress=False)
    with pytest.raises(ValueError, match="--plot"):
        cli.spatialize_file(EXAMPLE_WAV, tmp_path / "o.wav", model=tiny_unet[0], plot_path=tmp_path / "p.gif",
                            progress=False)
    assert not any(tmp_path.iterdir())


def test_stereo_wav_and_video_are_mixed_down_alike(tiny_unet, tmp_path, caplog):
    """Two channels of a wav and of a video's audio track: one warning line each, same mono."""
    wav, x = _short_wav(tmp_path, channels=2)
    video = tmp_path / "stereo.mp4"
    media.write_video_with_audio(video, EXAMPLE_MP4, np.stack([x, x]), 16000)
    with caplog.at_level("WARNING", logger="streambin"):
        from_wav, _ = media.read_mono(wav)
        from_video, rate = media.read_mono(video)
    lines = [r.getMessage() for r in caplog.records if "mixed down" in r.getMessage()]
    assert len(lines) == 2 and all("\n" not in m for m in lines)
    np.testing.assert_allclose(from_wav, x, atol=1e-6)
    assert rate == 16000 and abs(len(from_video) - len(x)) <= 2048  # AAC pads to whole frames
    m = min(len(x), len(from_video))
    assert np.corrcoef(from_video[1024:m - 1024], x[1024:m - 1024])[0, 1] > 0.99


def test_quiet_by_default_and_plot_written(tiny_unet, tmp_path):
    wav, _ = _short_wav(tmp_path, channels=2)
    plot = tmp_path / "what.png"
    cmd = [sys.executable, "-m", "streambin", "spatialize", str(wav), "--video", EXAMPLE_MP4, "-o",
           str(tmp_path / "o.wav"), "--model", str(tiny_unet[0]), "--plot", str(plot)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # Only the downmix warning on stderr (no INFO lines, no TensorRT talk), one summary line out.
    assert r.stderr.strip().splitlines() == [f"streambin: {wav} has 2 audio channels: mixed down to mono "
                                             "(the input is one microphone)"]
    out = r.stdout.strip().splitlines()
    assert out[0].startswith(f"wrote {tmp_path / 'o.wav'}: 0.6 s of audio at 16000 Hz") and "latency" in out[0]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20000
    verbose = subprocess.run(cmd[:-2] + ["-v"], capture_output=True, text=True, timeout=300)
    assert "streambin: " in verbose.stderr and "audio blocks: p99" in verbose.stdout


def test_every_option_has_help():
    import argparse

    parser = cli.build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [(name, a.dest) for name, p in subcommands.items() for a in p._actions if not a.help]
    assert set(subcommands) == {"spatialize"} and missing == []
    from streambin import demo

    assert [a.dest for a in demo.build_parser()._actions if not a.help] == []


def test_peaks_above_full_scale_are_reported_the_same_way_for_every_format(tmp_path):
    """A float wav keeps a peak above 1 and says so; flac/ogg and --normalize scale it to 0.99."""
    loud = np.stack([np.linspace(-1.5, 1.5, 16000), np.zeros(16000)]).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="kept in the float wav"):
        media.write_audio(tmp_path / "a.wav", loud, 16000)
    assert abs(float(np.abs(sf.read(str(tmp_path / "a.wav"))[0]).max()) - 1.5) < 1e-6
    for name, normalize in (("b.flac", False), ("c.wav", True)):
        with pytest.warns(RuntimeWarning, match="scaled to 0.99"):
            media.write_audio(tmp_path / name, loud, 16000, normalize=normalize)
        assert abs(float(np.abs(sf.read(str(tmp_path / name))[0]).max()) - 0.99) < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say below full scale
        media.write_audio(tmp_path / "d.wav", loud / 2, 16000)
    assert "--normalize" in cli.build_parser()._subparsers._group_actions[0].choices["spatialize"].format_help()


def test_mirror_average_options_reach_the_engine(tiny_unet, tmp_path):
    """--mirror-average / --no-mirror-average override the bundle's own setting (off for the tiny one)."""
    wav, _ = _short_wav(tmp_path, channels=1)
    args = cli.build_parser().parse_args(["spatialize", str(wav), "-o", str(tmp_path / "o.wav")])
    assert args.mirror_average is None
    runs = {}
    for flag in (None, True, False):
        stats = cli.spatialize_file(wav, tmp_path / f"{flag}.wav", video=EXAMPLE_MP4, model=tiny_unet[0],
                                    progress=False, mirror_average=flag)
        runs[flag] = sf.read(str(tmp_path / f"{flag}.wav"), dtype="float32")[0]
        assert stats["mirror_average"] is bool(flag)
    np.testing.assert_array_equal(runs[None], runs[False])
    assert np.abs(runs[True] - runs[False]).max() > 1e-4
    for flag, value in (("--mirror-average", True), ("--no-mirror-average", False)):
        args = cli.build_parser().parse_args(["spatialize", str(wav), "-o", str(tmp_path / "o.wav"), flag])
        assert args.mirror_average is value


def test_no_side_renderer_reaches_the_engine(tmp_path):
    """The shipped default blends its rendered side unless --no-side-renderer; only the side changes."""
    wav, _ = _short_wav(tmp_path, channels=1)
    args = cli.build_parser().parse_args(["spatialize", str(wav), "-o", str(tmp_path / "o.wav")])
    assert args.side_renderer is None
    args = cli.build_parser().parse_args(["spatialize", str(wav), "-o", str(tmp_path / "o.wav"), "--no-side-renderer"])
    assert args.side_renderer is False
    runs = {}
    for flag in (None, False):
        stats = cli.spatialize_file(wav, tmp_path / f"{flag}.wav", video=EXAMPLE_MP4, progress=False,
                                    side_renderer=flag)
        assert stats["side_renderer"] is (flag is None)
        assert ("side renderer on" in cli.summary(tmp_path / "x.wav", stats)) is (flag is None)
        runs[flag] = sf.read(str(tmp_path / f"{flag}.wav"), dtype="float32")[0]
    assert np.abs(runs[None] - runs[False]).max() > 1e-4
    np.testing.assert_allclose(runs[None].sum(1), runs[False].sum(1), atol=1e-5)   # the mid is the same


def test_camera_field_of_view_reaches_the_engine(tmp_path, capsys):
    """--camera-hfov reads the picture through the camera's own lens: only the side changes."""
    wav, _ = _short_wav(tmp_path, channels=1)
    assert cli.build_parser().parse_args(["spatialize", str(wav), "-o", "o.wav"]).camera_hfov is None
    bundle_hfov_deg = load_bundle("default").config["side_renderer"]["hfov_deg"]   # the lens it was fitted for
    runs = {}
    for hfov in (None, 60.0):
        stats = cli.spatialize_file(wav, tmp_path / f"{hfov}.wav", video=EXAMPLE_MP4, progress=False,
                                    camera_hfov_deg=hfov)
        assert stats["camera_hfov_deg"] == (bundle_hfov_deg if hfov is None else hfov)
        runs[hfov] = sf.read(str(tmp_path / f"{hfov}.wav"), dtype="float32")[0]
    assert np.abs(runs[None] - runs[60.0]).max() > 1e-4
    np.testing.assert_allclose(runs[None].sum(1), runs[60.0].sum(1), atol=1e-5)   # the mid is the same
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["spatialize", str(wav), "-o", "o.wav", "--camera-hfov", "200"])
    assert "--camera-hfov: must be the camera's horizontal field of view in degrees" in capsys.readouterr().err
    code = cli.main(["spatialize", str(wav), "-o", str(tmp_path / "x.wav"), "--camera-hfov", "70",
                     "--no-side-renderer", "--quiet"])
    assert code == 2 and "read by the side renderer, which is off here" in capsys.readouterr().err
