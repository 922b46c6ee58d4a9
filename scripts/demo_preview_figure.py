"""Draw the live demo's preview for one frame of the example scene (docs/figures/demo_preview_peaks.png).

    python scripts/demo_preview_figure.py [--frame 15] [--out docs/figures/demo_preview_peaks.png]

Streams ``examples/scene.wav`` with ``examples/scene.mp4``'s frames through the shipped default (as
the demo does, 10 ms chunks at the file's rate) up to the given frame, feeds the output to the
demo's ILD meter, and renders the preview as the demo shows it: the picture with the side
renderer's peaks of that frame, the meter below.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import streambin  # noqa: E402
from streambin import media  # noqa: E402
from streambin.demo_overlay import LevelHistory, render_overlay  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frame", type=int, default=15, help="index of the video frame to draw (default 15)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "figures", "demo_preview_peaks.png"))
    args = p.parse_args(argv)
    import cv2

    mono, rate = media.read_mono(os.path.join(ROOT, "examples", "scene.wav"))
    frames = list(media.iter_video_frames(os.path.join(ROOT, "examples", "scene.mp4")))
    if not 0 <= args.frame < len(frames):
        p.error(f"--frame must be in [0, {len(frames) - 1}]")
    chunk = rate // 100
    meter = LevelHistory(rate)
    with streambin.Spatializer("default", sample_rate=rate) as sp:
        k = 0
        end = int(round(frames[args.frame][0] * rate)) + chunk
        for start in range(0, min(end, len(mono)), chunk):
            frame = None
            while k < len(frames) and frames[k][0] * rate <= start:
                frame = frames[k][1]
                k += 1
            meter.push(sp.process(mono[start:start + chunk], frame))
        renderer = sp.visual.side_renderer
        peaks = renderer.last_peaks
    picture = np.ascontiguousarray(frames[args.frame][1][:, :, ::-1])
    image = render_overlay(picture, meter.values, status=f"example scene, frame {args.frame}",
                           peaks=peaks, hfov_deg=renderer.hfov_deg)
    cv2.imwrite(args.out, image)
    print("peaks (azimuth deg, weight): " + ", ".join(f"{a:+.1f} {w:.2f}" for a, w in zip(*peaks)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
