"""Command line: ``python -m streambin spatialize INPUT -o OUTPUT [--frames DIR | --video FILE]``.

INPUT is a mono wav (or any soundfile format) or a video with an audio track. Frames come
from ``--frames DIR`` (numbered images at ``--fps``), ``--video FILE``, or INPUT itself when it
is a video. OUTPUT is a ``.wav`` (binaural, float) or a video file (the input video's picture
with the binaural track muxed in as AAC).

The audio runs through the same streaming engine as live use (``Spatializer.process`` in
chunks of ``--chunk-ms``, frames handed over at their timestamps); the engine's fixed latency
is then removed, so the output lines up with the input sample for sample.

Example::

    python -m streambin spatialize examples/scene.wav --frames examples/scene_frames -o scene_binaural.wav
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from streambin import media
from streambin.spatializer import DEFAULT_LOOKAHEAD_FRAMES


def spatialize_file(input_path, output_path, frames_dir=None, video=None, fps: float = 10.0, model="default",
                    backend: str = "auto", device: str = "auto", block_frames=None,
                    lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES,
                    chunk_ms: float = 10.0, progress: bool = True) -> dict:
    """Spatialize a file offline through the streaming engine; returns the engine's stats."""
    from tqdm import tqdm

    from streambin.spatializer import Spatializer

    mono, rate = media.read_mono(input_path)
    if frames_dir is not None and video is not None:
        raise ValueError("give either --frames or --video, not both")
    if frames_dir is not None:
        frames = media.iter_frame_dir(frames_dir, fps)
    elif video is not None:
        frames = media.iter_video_frames(video)
    elif media.is_video(input_path):
        frames = media.iter_video_frames(input_path)
    else:
        frames = iter(())
        logging.getLogger("streambin").warning("no frames given: the model hears the scene with a neutral picture")

    sp = Spatializer(model=model, backend=backend, device=device, sample_rate=rate, block_frames=block_frames,
                     lookahead_frames=lookahead_frames)
    chunk = max(1, int(round(rate * chunk_ms / 1e3)))
    out = np.zeros((2, len(mono) + sp.latency_samples), np.float32)
    next_frame = next(frames, None)
    pos = 0
    with tqdm(total=len(mono), unit="sample", unit_scale=True, disable=not progress, desc="spatialize") as bar:
        while pos < len(mono):
            piece = mono[pos:pos + chunk]
            frame = None
            # Hand over the newest frame whose timestamp has been reached.
            while next_frame is not None and next_frame[0] <= pos / rate:
                frame = next_frame[1]
                next_frame = next(frames, None)
            out[:, pos:pos + len(piece)] = sp.process(piece, frame)
            pos += len(piece)
            bar.update(len(piece))
    out[:, len(mono):] = sp.flush()
    aligned = out[:, sp.latency_samples:]
    output_path = Path(output_path)
    if media.is_video(output_path):
        source = video or (input_path if media.is_video(input_path) else None)
        if source is None:
            raise ValueError("a video OUTPUT needs a video to take the picture from (--video or a video INPUT)")
        media.write_video_with_audio(output_path, source, aligned, rate)
    else:
        media.write_wav(output_path, aligned, rate)
    stats = sp.stats
    sp.close()
    return stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streambin", description="streambin command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("spatialize", help="mono audio + video/frames -> binaural audio",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("input", help="mono audio file, or a video with an audio track")
    sp.add_argument("-o", "--output", required=True, help="output .wav, or .mp4 (binaural track muxed in)")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--frames", help="directory of numbered frame images")
    src.add_argument("--video", help="video file whose picture drives the model")
    sp.add_argument("--fps", type=float, default=10.0, help="frame rate of --frames (default 10)")
    sp.add_argument("--model", default="default", help="'default', a bundle directory or a checkpoint")
    sp.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"])
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sp.add_argument("--block-frames", type=int, default=None)
    sp.add_argument("--lookahead-frames", type=int, default=DEFAULT_LOOKAHEAD_FRAMES)
    sp.add_argument("--chunk-ms", type=float, default=10.0, help="streaming chunk size (default 10 ms)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        stats = spatialize_file(args.input, args.output, frames_dir=args.frames, video=args.video, fps=args.fps,
                                model=args.model, backend=args.backend, device=args.device,
                                block_frames=args.block_frames, lookahead_frames=args.lookahead_frames,
                                chunk_ms=args.chunk_ms, progress=not args.quiet)
    except (media.MediaError, ValueError, FileNotFoundError) as exc:
        print(f"streambin: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({stats['blocks']} blocks on {stats['backend']}/{stats['device']}, "
          f"block p99 {stats['block_ms_p99']:.2f} ms of {stats['block_budget_ms']:.0f} ms budget, "
          f"latency {stats['latency_ms']:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
