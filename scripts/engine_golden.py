"""Is the engine's output bit-identical to what it was? For restructurings that must not
change behaviour.

Streams the first 3 s of ``examples/scene.wav`` (resampled with soxr to 16, 44.1 and 48 kHz:
the model-rate path, the chirp-z full-band path and the exact full-band path) with a still
picture through ``streambin.spatialize`` with the default model, block 2, and writes or checks
the outputs::

    python scripts/engine_golden.py --write /tmp/golden.npz     # before the change
    python scripts/engine_golden.py --check /tmp/golden.npz     # after it: exit 1 if any differ

Bit-identity holds on one machine and library build; across machines ONNX Runtime's kernels
may differ in the last bits, so keep both runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATES = (16000, 44100, 48000)


def engine_outputs(model: str = "default") -> dict:
    """``{"r<rate>": (2, n) float32}`` for each rate in :data:`RATES`."""
    import soundfile as sf
    import soxr

    import streambin

    x, sr = sf.read(os.path.join(ROOT, "examples", "scene.wav"), dtype="float32")
    x = x[:3 * sr]
    still = np.zeros((90, 160, 3), np.uint8)
    still[:, 110:] = 200                                    # something bright on the right
    out = {}
    for rate in RATES:
        y = soxr.resample(x, sr, rate).astype(np.float32)
        out[f"r{rate}"] = streambin.spatialize(y, rate, frames=still, model=model, block_frames=2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="NPZ", help="write the outputs here")
    group.add_argument("--check", metavar="NPZ", help="compare with outputs written before")
    parser.add_argument("--model", default="default", help="model bundle (default: the shipped one)")
    args = parser.parse_args(argv)
    outputs = engine_outputs(args.model)
    if args.write:
        np.savez(args.write, **outputs)
        print(f"wrote {args.write}: {', '.join(outputs)}")
        return 0
    before = np.load(args.check)
    differ = 0
    for key, now in outputs.items():
        same = key in before and before[key].shape == now.shape and np.array_equal(before[key], now)
        diff = float(np.max(np.abs(before[key] - now))) if key in before and before[key].shape == now.shape else None
        print(f"{key}: {'bit-identical' if same else f'DIFFERS (max abs {diff})'}")
        differ += not same
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
