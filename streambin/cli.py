"""Command line: ``python -m streambin spatialize INPUT -o OUTPUT [--frames DIR | --video FILE]``.

INPUT is a mono audio file (wav, flac, ogg, ... at any sample rate; several channels are mixed
down) or a video with an audio track. Frames come from ``--frames DIR`` (numbered images at
``--fps``), ``--video FILE``, or INPUT itself when it is a video. OUTPUT is audio (``.wav``
float, ``.flac``, ``.ogg``) or a video (``.mp4``, ``.m4v``, ``.mkv``, ``.mov``: the input
video's picture with the binaural track muxed in as AAC); other formats are refused before
any work is done.

The clip runs through the same streaming engine as live use (streambin.spatialize: 10 ms
chunks, frames handed over at their timestamps); the engine's fixed latency is then removed,
so the output lines up with the input sample for sample.

Examples (files shipped in the repository)::

    python -m streambin spatialize examples/scene.wav --video examples/scene.mp4 -o scene_binaural.wav
    python -m streambin spatialize examples/scene.wav --video examples/scene.mp4 -o scene_binaural.mp4 --plot scene.png
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from streambin import media
from streambin.backends import BackendUnavailable
from streambin.cli_options import (add_camera_hfov_option, add_mirror_average_options, add_side_gain_option,
                                   add_side_renderer_option)
from streambin.spatializer import DEFAULT_LOOKAHEAD_FRAMES

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def spatialize_file(input_path, output_path, frames_dir=None, video=None, fps: float = 10.0, model="default",
                    backend: str = "auto", device: str = "auto", block_frames=None,
                    lookahead_frames: int = DEFAULT_LOOKAHEAD_FRAMES, mirror: bool = False,
                    plot_path=None, progress: bool = True, normalize: bool = False,
                    mirror_average: bool | None = None, side_gain: float | None = None,
                    side_renderer: bool | None = None, camera_hfov_deg: float | None = None) -> dict:
    """Spatialize a file offline through the streaming engine; returns the engine's stats plus
    ``seconds`` (audio duration), ``wall_s`` (time taken) and ``sample_rate``.

    Everything that can be checked without processing (the output format, a picture source for
    a video output, the plot's format and matplotlib) is checked first.
    """
    from tqdm import tqdm

    from streambin.offline import OFFLINE_BLOCK_FRAMES, run_offline

    if frames_dir is not None and video is not None:
        raise ValueError("give either --frames or --video, not both")
    picture_source = video or (input_path if media.is_video(input_path) else None)
    media.check_output(output_path, picture_source)
    _check_output_dir(output_path)
    if plot_path is not None:
        if Path(plot_path).suffix.lower() not in PLOT_SUFFIXES:
            raise ValueError(f"--plot {plot_path}: choose one of {', '.join(PLOT_SUFFIXES)}")
        from streambin.result_plot import require_matplotlib

        require_matplotlib()

    mono, rate = media.read_mono(input_path)
    if frames_dir is not None:
        frames = media.iter_frame_dir(frames_dir, fps)
    elif picture_source is not None:
        frames = media.iter_video_frames(picture_source)
    else:
        frames = iter(())
        logging.getLogger("streambin").warning("streambin: no frames given: the model hears the scene with a "
                                               "neutral picture")
    strip = None
    if plot_path is not None:
        from streambin.result_plot import StripCollector

        strip = StripCollector(len(mono) / rate)
        frames = strip.wrap(frames)

    seconds = len(mono) / rate
    t0 = time.perf_counter()
    # Progress in seconds of audio; shown on a terminal only unless progress=False.
    with tqdm(total=round(seconds, 1), unit="s", disable=None if progress else True, desc="spatialize",
              bar_format="{desc}: {n:.1f}/{total:.1f} s of audio |{bar}| {elapsed}<{remaining}") as bar:
        def on_progress(done_samples):
            bar.update(round(done_samples / rate, 1) - bar.n)

        result = run_offline(mono, rate, frames, model=model, backend=backend, device=device,
                             block_frames=OFFLINE_BLOCK_FRAMES if block_frames is None else block_frames,
                             lookahead_frames=lookahead_frames, mirror=mirror, mirror_average=mirror_average,
                             side_gain=side_gain, side_renderer=side_renderer, camera_hfov_deg=camera_hfov_deg,
                             on_progress=on_progress)
    wall_s = time.perf_counter() - t0
    if media.is_video(output_path):
        media.write_video_with_audio(output_path, picture_source, result.audio, rate)
    else:
        media.write_audio(output_path, result.audio, rate, normalize=normalize)
    if plot_path is not None:
        from streambin.result_plot import plot_spatialized

        plot_spatialized(plot_path, mono, result.audio, rate, strip.frames, title=f"{Path(input_path).name} -> "
                         f"{Path(output_path).name}")
    return {**result.stats, "seconds": seconds, "wall_s": wall_s, "sample_rate": rate,
            "engine_rate": result.engine_rate}


def _check_output_dir(output_path) -> None:
    """Fail before any work when the output's folder cannot exist (a file stands in its path)."""
    for parent in Path(output_path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"-o {output_path}: {parent} is a file, not a folder")
            return


def summary(output_path, stats: dict) -> str:
    """The one line printed after a successful run."""
    speed = stats["seconds"] / max(stats["wall_s"], 1e-9)
    resampled = (f", run at {stats['engine_rate']} Hz and resampled back"
                 if stats["engine_rate"] != stats["sample_rate"] else "")
    renderer = ", side renderer on" if stats.get("side_renderer") else ""
    return (f"wrote {output_path}: {stats['seconds']:.1f} s of audio at {stats['sample_rate']} Hz in "
            f"{stats['wall_s']:.1f} s ({speed:.1f}x real time, {stats['backend']} on {stats['device']}{renderer}"
            f"{resampled}); "
            f"aligned with the input (the engine's {stats['latency_ms']:.1f} ms latency removed)")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (every option with its help text)."""
    parser = argparse.ArgumentParser(prog="python -m streambin", description="streambin command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("spatialize", help="mono audio + video/frames -> binaural audio",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("input", help="mono audio file (any rate; several channels are mixed down), or a video "
                                  "with an audio track")
    sp.add_argument("-o", "--output", required=True,
                    help="output: .wav (float), .flac, .ogg, or .mp4/.m4v/.mkv/.mov (the picture of --video or of "
                         "a video INPUT, with the binaural track)")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--frames", help="directory of numbered frame images (png/jpg/bmp), shown at --fps")
    src.add_argument("--video", help="video file whose picture drives the model")
    sp.add_argument("--fps", type=float, default=10.0, help="frame rate of --frames (default 10)")
    sp.add_argument("--mirror", action="store_true",
                    help="flip the pictures left-right before the model: for front (selfie) cameras, whose "
                         "picture is a mirror image")
    add_mirror_average_options(sp)
    add_side_gain_option(sp)
    add_side_renderer_option(sp)
    add_camera_hfov_option(sp)
    sp.add_argument("--plot", metavar="FIG.png",
                    help="also draw what was done: frames, input and output spectrograms, right-minus-left "
                         "level over time (png/pdf/svg; needs matplotlib)")
    sp.add_argument("--model", default="default",
                    help="'default' (the shipped model), a bundle directory or a training checkpoint (.pt)")
    sp.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                    help="inference backend (default auto: TensorRT, then ONNX Runtime, then torch)")
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (default auto)")
    sp.add_argument("--block-frames", type=int, default=None,
                    help="10 ms STFT frames per audio-net run (default 1; larger runs faster offline)")
    sp.add_argument("--lookahead-frames", type=int, default=DEFAULT_LOOKAHEAD_FRAMES,
                    help=f"frames of future context the masks see (default {DEFAULT_LOOKAHEAD_FRAMES}; "
                         "10 ms of latency each, removed from the output)")
    sp.add_argument("-v", "--verbose", action="store_true", help="log what the engine chose (backend, block, latency)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--normalize", action="store_true",
                    help="scale an output that peaks above full scale to a 0.99 peak (flac, ogg and video "
                         "always do; a float wav otherwise keeps such peaks, with a warning)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        stats = spatialize_file(args.input, args.output, frames_dir=args.frames, video=args.video, fps=args.fps,
                                model=args.model, backend=args.backend, device=args.device,
                                block_frames=args.block_frames, lookahead_frames=args.lookahead_frames,
                                mirror=args.mirror, mirror_average=args.mirror_average, side_gain=args.side_gain,
                                side_renderer=args.side_renderer, camera_hfov_deg=args.camera_hfov,
                                plot_path=args.plot, progress=not args.quiet,
                                normalize=args.normalize)
    except (media.MediaError, ValueError, FileNotFoundError, ImportError, BackendUnavailable) as exc:
        print(f"streambin: error: {exc}", file=sys.stderr)
        return 2
    print(summary(args.output, stats))
    if args.plot:
        print(f"wrote {args.plot}")
    if args.verbose:
        print(f"audio blocks: p99 {stats['block_ms_p99']:.2f} ms per {stats['block_budget_ms']:.0f} ms block "
              f"({stats['blocks']} blocks); visual net runs: {stats['visual_runs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
