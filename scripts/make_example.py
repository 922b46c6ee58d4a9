"""Make the shipped example clip: a generated scene (test split) as mp4 + mono wav.

    python scripts/make_example.py --data data/simbin --clip 000203 --out examples/scene.mp4

Writes ``scene.mp4`` (the scene's 10 fps frames, H.264, with the mono track as AAC so any player
shows it) and ``scene.wav`` beside it (the same mono track, 16-bit PCM: exact, without AAC's
encoder delay). The mono track is (L + R) / 2 of the scene's binaural rendering: what a single
microphone at the listener's head would record.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    import av

    from streambin.train.data import read_clip

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--clip", required=True)
    p.add_argument("--out", default="examples/scene.mp4")
    args = p.parse_args(argv)
    audio, rate, frames_dir = read_clip(args.data, args.clip)
    mono = ((audio[0] + audio[1]) / 2).astype(np.float32)
    names = sorted(f for f in os.listdir(frames_dir) if f.endswith(".png"))
    with open(os.path.join(args.data, "meta", f"{args.clip}.json")) as f:
        meta = json.load(f)
    fps = int(meta["fps"])
    import cv2

    first = cv2.imread(os.path.join(frames_dir, names[0]))
    h, w = first.shape[:2]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with av.open(args.out, "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": "23", "preset": "medium"}
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for i, name in enumerate(names):
            rgb = cv2.imread(os.path.join(frames_dir, name))[:, :, ::-1]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
        peak = float(np.abs(mono).max()) or 1.0
        pcm = (mono * min(1.0, 0.99 / peak)).reshape(1, -1)
        for start in range(0, pcm.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, start:start + 1024]), format="fltp",
                                            layout="mono")
            af.sample_rate = rate
            af.pts = start
            for packet in a.encode(af):
                out.mux(packet)
        for packet in a.encode(None):
            out.mux(packet)
    import soundfile as sf

    wav = os.path.splitext(args.out)[0] + ".wav"
    sf.write(wav, mono, rate, subtype="PCM_16")
    print(f"wrote {wav} and {args.out} ({os.path.getsize(args.out) / 1e3:.0f} kB): clip {args.clip}, "
          f"sources {[s['name'] for s in meta['sources']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
