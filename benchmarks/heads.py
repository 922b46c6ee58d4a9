"""How long does a head cost per clip? Head building next to what a clip's rendering costs anyway.

Run: ``python benchmarks/heads.py`` (about a minute on 2 cores; needs Debian ``libmysofa1``).

Per sample rate (16 kHz, the model rate; 48 kHz, a device rate), in one process, side by side:

- ``kemar_from_sofa``: reading and resampling the MIT KEMAR SOFA file (once per process);
- ``fabian_from_wav``: reading, resampling and extending FABIAN's horizontal set (once);
- ``kemar_perturbed_first``: the first perturbed KEMAR (also builds what all perturbations share);
- ``kemar_perturbed``: each further perturbed KEMAR (``kemar~p<seed>``, uncached);
- ``fabian_perturbed``: each further perturbed FABIAN (``fabian~p<seed>``, uncached);
- ``sphere``: a spherical head (``sphere~s<seed>``, uncached);
- ``cached``: ``load_head`` of a head already in the cache;
- references: ``room_brir``, one BRIR of a 5 x 4 x 2.8 m room with KEMAR (what a room clip
  computes per source and key time), and ``anechoic_render_10s``, 10 s of mono through one
  anechoic BRIR.

Every row has its median and 90th percentile in ms and its median's ratio to ``room_brir``.
Writes ``benchmarks/results/heads-<machine>.json`` with the machine and its load average (the
CPU is shared with other work, so the ratios mean more than the absolute times).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import machine_description, machine_slug  # noqa: E402
from streambin.train.sim import heads  # noqa: E402
from streambin.train.sim.render import RoomModel, RoomSpec, anechoic_brir, render_keyframed  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def bench_rate(sample_rate: int, n: int) -> list[dict]:
    heads.clear_head_cache()
    build = heads._load_head.__wrapped__  # a fresh build every call, without the cache
    times = {
        "kemar_from_sofa": timed(lambda i: heads.load_head("kemar", sample_rate), 1),
        "fabian_from_wav": timed(lambda i: heads.load_head("fabian", sample_rate), 1),
        "kemar_perturbed_first": timed(lambda i: heads.load_head("kemar~p0", sample_rate), 1),
        "kemar_perturbed": timed(lambda i: build(f"kemar~p{i + 1}", sample_rate), n),
        "fabian_perturbed": timed(lambda i: build(f"fabian~p{1001 + i}", sample_rate), n)[1:],
        "sphere": timed(lambda i: build(f"sphere~s{i}", sample_rate), n),
        "cached": timed(lambda i: heads.load_head("kemar~p0", sample_rate), n),
    }
    kemar = heads.load_head("kemar", sample_rate)
    room = RoomModel(kemar, RoomSpec((5.0, 4.0, 2.8), 0.3, (2.0, 2.0, 1.4)))
    times["room_brir"] = timed(lambda i: room.brir(np.array([3.5, 1.5, 1.5]), None), max(3, n // 4))
    x = np.random.default_rng(0).standard_normal(10 * sample_rate).astype(np.float32)
    brir = anechoic_brir(kemar, 30.0, 0.0, 2.0)[None]
    times["anechoic_render_10s"] = timed(lambda i: render_keyframed(x, brir, np.zeros(1)), max(3, n // 4))
    ref = float(np.median(times["room_brir"]))
    return [{"sample_rate": sample_rate, "what": k, "n": len(v), "ms_median": float(np.median(v)),
             "ms_p90": float(np.percentile(v, 90)), "ratio_to_room_brir": float(np.median(v)) / ref}
            for k, v in times.items()]


def main() -> None:
    info = machine_description()
    load_before = os.getloadavg()
    rows = [r for sr in (16000, 48000) for r in bench_rate(sr, 20)]
    out = {"machine": info, "loadavg_1_5_15_before": load_before, "loadavg_1_5_15_after": os.getloadavg(),
           "rows": rows}
    print(f"{'rate':>6} {'what':<24}{'n':>4}{'median ms':>11}{'p90 ms':>9}{'x room_brir':>13}")
    for r in rows:
        print(f"{r['sample_rate']:>6} {r['what']:<24}{r['n']:>4}{r['ms_median']:>11.2f}{r['ms_p90']:>9.2f}"
              f"{r['ratio_to_room_brir']:>13.3f}")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"heads-{machine_slug(info)}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print("wrote", path)


if __name__ == "__main__":
    main()
