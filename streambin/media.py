"""Reading and writing the media the offline CLI and the demo use.

* audio: wav/flac/ogg through soundfile; the audio track of a video through PyAV;
* frames: a directory of numbered images (``000001.png`` ...) at a given fps, or the video
  track of a file through PyAV; both yield ``(time_s, (H, W, 3) uint8 RGB)`` lazily;
* output: an audio file (wav: float; flac: 24-bit; ogg: Vorbis), or a video (mp4, m4v, mkv,
  mov) whose picture is copied from the input video and whose audio is the binaural track
  (AAC). Other formats (webm: its codecs cannot carry the copied H.264 picture and AAC) are
  refused by :func:`check_output` before any work is done.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
# Outputs and how they are written: soundfile subtype for audio, PyAV container for video.
AUDIO_OUTPUTS = {".wav": "FLOAT", ".flac": "PCM_24", ".ogg": "VORBIS"}
VIDEO_OUTPUTS = (".mp4", ".m4v", ".mkv", ".mov")

log = logging.getLogger("streambin")


class MediaError(ValueError):
    """A media file is missing, unreadable or of an unsupported kind."""


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def require_av():
    """Import PyAV (video reading and writing) or fail in one line naming the package."""
    try:
        import av
    except ImportError as exc:
        raise MediaError("video needs PyAV (a dependency of streambin): pip install av") from exc
    return av


def check_output(path, video_source=None) -> None:
    """Refuse an output ``path`` that cannot be written, before any processing.

    ``video_source``: the video the picture of a video output is copied from (None: there is none).
    """
    suffix = Path(path).suffix.lower()
    if suffix in AUDIO_OUTPUTS:
        return
    if suffix in VIDEO_OUTPUTS:
        if video_source is None:
            raise MediaError(f"{path}: a video output needs a video to take the picture from "
                             "(--video or a video INPUT); write audio (.wav, .flac, .ogg) instead")
        require_av()
        return
    audio = ", ".join(AUDIO_OUTPUTS)
    video = ", ".join(VIDEO_OUTPUTS)
    why = " (webm holds only VP8/VP9/AV1 pictures, and the input's picture is copied)" if suffix == ".webm" else ""
    raise MediaError(f"{path}: cannot write {suffix or 'a file without a suffix'}{why}; "
                     f"choose audio ({audio}) or video ({video})")


def read_mono(path) -> Tuple[np.ndarray, int]:
    """Read the audio of ``path`` as ``(n,)`` float32 mono and its sample rate.

    Multichannel audio (audio files and video tracks alike) is averaged to mono, with one
    warning line: streambin's input is one microphone.
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
        log.warning("streambin: %s has %d audio channels: mixed down to mono (the input is one microphone)",
                    path, audio.shape[0])
    mono = np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)
    if mono.size == 0:
        raise MediaError(f"{path}: the audio is empty")
    return mono, int(rate)


def _read_video_audio(path: Path) -> Tuple[np.ndarray, int]:
    """``(channels, n)`` float32 audio of the first audio track and its rate."""
    av = require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: the video has no audio track; pass a wav as INPUT and the video "
                                 "with --video")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            # Planar float, every channel kept (mixed down by read_mono as for audio files).
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
            parts = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray())
            for out in resampler.resample(None):
                parts.append(out.to_ndarray())
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
    av = require_av()

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
    """Write ``(2, n)`` float32 audio as a float wav (no clipping of peaks above 1), whatever the suffix."""
    import soundfile as sf

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(str(path), np.ascontiguousarray(audio.T), rate, format="WAV", subtype="FLOAT")


def _fit_peak(audio: np.ndarray, what: str) -> np.ndarray:
    """Scale audio whose peak exceeds 1 to a 0.99 peak (for formats that would clip it)."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak <= 1.0:
        return audio
    warnings.warn(f"binaural track peaks at {peak:.2f}; scaled to 0.99 for {what}", RuntimeWarning, stacklevel=3)
    return audio * (0.99 / peak)


def write_audio(path, audio: np.ndarray, rate: int, normalize: bool = False) -> None:
    """Write ``(2, n)`` float32 audio as wav (float), flac (24-bit) or ogg (Vorbis).

    A peak above 1 (full scale) is never clipped: flac and ogg (which would clip it) scale the
    track to a 0.99 peak, and so does every format with ``normalize=True``; a float wav keeps
    it otherwise. Either way a RuntimeWarning says what happened.
    """
    import soundfile as sf

    suffix = Path(path).suffix.lower()
    if suffix not in AUDIO_OUTPUTS:
        raise MediaError(f"{path}: audio output must be one of {', '.join(AUDIO_OUTPUTS)}")
    subtype = AUDIO_OUTPUTS[suffix]
    if subtype != "FLOAT" or normalize:
        audio = _fit_peak(audio, suffix[1:])
    else:
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 1.0:
            warnings.warn(f"binaural track peaks at {peak:.2f} (above full scale); kept in the float "
                          f"wav: players may clip it (--normalize scales it to 0.99)", RuntimeWarning,
                          stacklevel=2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(str(path), np.ascontiguousarray(audio.T), rate, subtype=subtype)


def write_video_with_audio(path, video_source, audio: np.ndarray, rate: int) -> None:
    """Copy the video track of ``video_source`` into ``path`` and add ``(2, n)`` audio as AAC."""
    av = require_av()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    audio = _fit_peak(audio, "AAC")  # AAC input is float in [-1, 1]: scale rather than clip
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
