"""Reading and writing the media the offline CLI and the demo use.

* audio: wav/flac/ogg through soundfile; the audio track of a video through PyAV;
* frames: a directory of numbered images (``000001.png`` ...) at a given fps, or the video
  track of a file through PyAV; both yield ``(time_s, (H, W, 3) uint8 RGB)`` lazily;
* output: a wav, or an mp4 whose video is copied from the input video and whose audio is the
  binaural track (AAC).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


class MediaError(ValueError):
    """A media file is missing, unreadable or of an unsupported kind."""


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_mono(path) -> Tuple[np.ndarray, int]:
    """Read the audio of ``path`` as ``(n,)`` float32 mono and its sample rate.

    Multichannel audio is averaged to mono (with a warning: streambin's input is one mic).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if is_video(path):
        audio, rate = _read_video_audio(path)
    else:
        import soundfile as sf

        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
            raise MediaError(f"{path}: cannot read audio ({exc})") from exc
        audio = audio.T
    if audio.shape[0] > 1:
        warnings.warn(f"{path}: {audio.shape[0]} channels averaged to mono", RuntimeWarning, stacklevel=2)
    mono = np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)
    if mono.size == 0:
        raise MediaError(f"{path}: the audio is empty")
    return mono, int(rate)


def _read_video_audio(path: Path) -> Tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: the video has no audio track; pass a wav as INPUT and the video "
                                 "with --video")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
            parts = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(1, -1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(1, -1))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot decode ({exc})") from exc
    return np.concatenate(parts, axis=1).astype(np.float32), int(rate)


def iter_frame_dir(directory, fps: float) -> Iterator[Tuple[float, np.ndarray]]:
    """Frames of a directory of images sorted by name, frame i at time i / fps."""
    import cv2

    directory = Path(directory)
    if not directory.is_dir():
        raise MediaError(f"{directory}: frames directory does not exist")
    names = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise MediaError(f"{directory}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if fps <= 0:
        raise MediaError(f"fps must be > 0, got {fps}")
    for i, name in enumerate(names):
        bgr = cv2.imread(str(name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MediaError(f"{name}: cannot read image")
        yield i / fps, bgr[:, :, ::-1]


def iter_video_frames(path) -> Iterator[Tuple[float, np.ndarray]]:
    """Frames of the video track of ``path`` with their presentation times in seconds."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video track")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
                yield t, frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot decode video ({exc})") from exc


def write_wav(path, audio: np.ndarray, rate: int) -> None:
    """Write ``(2, n)`` float32 audio as a float wav (no clipping of peaks above 1)."""
    import soundfile as sf

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(str(path), np.ascontiguousarray(audio.T), rate, subtype="FLOAT")


def write_video_with_audio(path, video_source, audio: np.ndarray, rate: int) -> None:
    """Copy the video track of ``video_source`` into ``path`` and add ``(2, n)`` audio as AAC."""
    import av

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:  # AAC input is float in [-1, 1]: scale rather than clip
        warnings.warn(f"binaural track peaks at {peak:.2f}; scaled to 0.99 for AAC", RuntimeWarning, stacklevel=2)
        audio = audio * (0.99 / peak)
    with av.open(str(video_source)) as src, av.open(str(path), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=rate)
        aout.layout = "stereo"
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        frame_size = 1024
        pcm = np.ascontiguousarray(audio.astype(np.float32))
        for start in range(0, pcm.shape[1], frame_size):
            block = np.ascontiguousarray(pcm[:, start:start + frame_size])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = start
            for packet in aout.encode(frame):
                dst.mux(packet)
        for packet in aout.encode(None):
            dst.mux(packet)
