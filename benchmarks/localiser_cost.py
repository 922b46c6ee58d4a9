"""What a second visual net per camera frame would cost the engine: the dense object localiser
(``scripts/experiments/object_localiser.py``) beside the shipped bundle's visual graph.

Both run as the engine runs its visual graph: ONNX Runtime on the CPU with the engine's session
options (``streambin.backends.onnxruntime_backend``: 2 intra-op threads, no spinning), a batch of
2 (the frame and its mirror image, as mirror averaging runs it), uint8 frames in (the localiser
is exported here with its normalisation inside the graph, at its own ``(96, 192)`` input; the
shipped graph takes ``(64, 128)``). Calls alternate between the two graphs, ``--calls`` per
turn, ``--repeats`` turns; the medians of the per-turn mean times are reported, with their ratio
and what each costs per second of a 30 fps camera (ms per frame x 30 / 1000: the share of one
second it occupies, the same measure as the real-time factor).

    python benchmarks/localiser_cost.py --localiser runs/objloc3/last.pt [--repeats 15] [--calls 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "experiments"))

from benchmarks.machine import machine_description, write_result  # noqa: E402

CAMERA_FPS = 30.0


class _Uint8Localiser(torch.nn.Module):
    """``(B, 96, 192, 3) uint8`` -> the localiser's ``(B, 6, 24, 48)`` maps (normalisation inside)."""

    def __init__(self, net):
        super().__init__()
        from object_localiser import normalise  # beside the experiments
        self.net, self.normalise = net, normalise

    def forward(self, frames):
        return self.net(self.normalise(frames))


def _session(path: Path):
    """A CPU session with the engine's options and default thread count."""
    import onnxruntime as ort

    from streambin.backends.onnxruntime_backend import default_threads, session_options

    return ort.InferenceSession(str(path), sess_options=session_options(default_threads()),
                                providers=["CPUExecutionProvider"])


def _mean_ms(session, feeds: dict, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feeds)
    return (time.perf_counter() - start) / calls * 1000.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--localiser", required=True, help="an object_localiser.py train checkpoint")
    p.add_argument("--bundle", default=str(ROOT / "streambin" / "models" / "default"),
                   help="the bundle whose visual graph is compared (default: the shipped default)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--out", help="results JSON (default benchmarks/results/localiser-cost-<machine>.json)")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.calls < 1:
        p.error("--repeats and --calls must be >= 1")
    visual_path = Path(a.bundle) / "visual.onnx"
    if not visual_path.is_file():
        p.error(f"{visual_path} not found: --bundle must be a model bundle folder")
    from object_localiser import INPUT_H, INPUT_W, load_localiser

    net = load_localiser(a.localiser)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        local_path = Path(tmp) / "localiser.onnx"
        example = torch.from_numpy(rng.integers(0, 256, (2, INPUT_H, INPUT_W, 3), dtype=np.uint8))
        with warnings.catch_warnings():  # the tracer's notes on constants are expected here
            warnings.simplefilter("ignore")
            torch.onnx.export(_Uint8Localiser(net).eval(), (example,), str(local_path), dynamo=False,
                              opset_version=17, input_names=["frames"], output_names=["maps"])
        sessions = {"shipped visual graph": _session(visual_path), "object localiser": _session(local_path)}
        feeds = {}
        for name, sess in sessions.items():
            shape = [2 if not isinstance(d, int) else d for d in sess.get_inputs()[0].shape]
            feeds[name] = {sess.get_inputs()[0].name: rng.integers(0, 256, shape, dtype=np.uint8)}
            _mean_ms(sess, feeds[name], 5)                                   # warm up
        with torch.no_grad():  # the exported localiser agrees with the torch one
            ref = _Uint8Localiser(net)(example).numpy()
        got = sessions["object localiser"].run(None, {"frames": example.numpy()})[0]
        max_abs_err = float(np.max(np.abs(got - ref)))
        times = {name: [] for name in sessions}
        for _ in range(a.repeats):
            for name, sess in sessions.items():
                times[name].append(_mean_ms(sess, feeds[name], a.calls))
    med = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "machine": machine_description(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "localiser": a.localiser, "bundle": a.bundle, "batch": 2, "repeats": a.repeats, "calls": a.calls,
        "localiser_onnx_max_abs_err": max_abs_err,
        "input_shapes": {name: list(next(iter(f.values())).shape) for name, f in feeds.items()},
        "median_ms_per_call": med, "per_turn_ms": times,
        "ratio_localiser_to_visual": med["object localiser"] / med["shipped visual graph"],
        "share_of_a_second_at_30fps": {name: m * CAMERA_FPS / 1000.0 for name, m in med.items()},
    }
    for name, m in med.items():
        print(f"{name:22s} {m:7.2f} ms per call (batch 2), {m * CAMERA_FPS / 1000.0:.3f} of each second at 30 fps")
    print(f"localiser / shipped visual graph: {result['ratio_localiser_to_visual']:.2f}x "
          f"(exported localiser max abs error {max_abs_err:.2e})")
    write_result(result, "localiser-cost", a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
