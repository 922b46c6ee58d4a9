"""The offline CLI: python -m streambin spatialize (on the shipped example scene, tiny model)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streambin import cli, media

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
