"""Interaural cues of every generated head: do ITD and ILD keep their sign and rise with azimuth?

Run: ``python benchmarks/head_cues.py`` (about 15 minutes on 2 cores; ``--quick``: 1 minute).

The tests check a few heads of each kind; this checks all of them: every perturbed head
(``<base>~p<seed>``) and every spherical head (``sphere~s<seed>``) of both pools at 16 kHz, and
the first 40 train and 20 OOD seeds of each at 48 kHz. Cues are measured as in the tests
(:func:`streambin.train.sim.hrtf.interaural_cues`): ITD by cross-correlation below 1.5 kHz,
to 1/64 sample; ILD as the broadband energy ratio. Per group it reports

- ``itd_rising``: heads whose ITD rises at every 5-degree step over -80..80 degrees (el 0);
- ``signs_right``: heads whose ITD and ILD have the source's sign at +-30 and +-60 degrees
  azimuth, elevations -20, 0 and 20;
- ``ild_rising_65`` / ``_60`` / ``_50``: heads whose ILD rises at every step over -65..65 etc.;
- ``ild_smallest_step_db`` over -65..65 and the seed where it is;
- ``itd_90_ms``: the range of |ITD| at +-90 degrees;
- for perturbations, the largest error of ITD(90) / base ITD(90) against ``itd_scale`` and of
  the mean ILD ratio (30..65 degrees) against ``ild_scale``.

Writes ``benchmarks/results/head-cues.json`` (the result depends on no machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from streambin.train.sim import heads  # noqa: E402
from streambin.train.sim.hrtf import interaural_cues  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "head-cues.json")
AZ = np.arange(-80, 81, 5)


def cues(h, azimuths, elevation_deg=0.0, upsample=16):
    pairs = np.stack([h.interpolate(a, elevation_deg) for a in azimuths])
    return interaural_cues(pairs, h.sample_rate, upsample=upsample)


def check_group(prefix: str, seeds: range, sample_rate: int) -> dict:
    build = heads._load_head.__wrapped__  # no cache: every head built once
    n, itd_rising, signs_right = len(seeds), 0, 0
    ild_rising = {65: 0, 60: 0, 50: 0}
    steps, itd_90, scale_err = [], [], []
    base = None
    t = time.perf_counter()
    for seed in seeds:
        head_id = f"{prefix}{seed}"
        h = build(head_id, sample_rate)
        itd, ild = cues(h, AZ, upsample=64)
        itd_rising += bool(np.all(np.diff(itd) > 0))
        for r in ild_rising:
            ild_rising[r] += bool(np.all(np.diff(ild[np.abs(AZ) <= r]) > 0))
        steps.append(float(np.diff(ild[np.abs(AZ) <= 65]).min()))
        ok = True
        for el in (-20.0, 0.0, 20.0):
            i, l = cues(h, [-60, -30, 30, 60], el)
            ok &= bool(np.all(np.sign(i) == [-1, -1, 1, 1]) and np.all(np.sign(l) == [-1, -1, 1, 1]))
        signs_right += ok
        i90, _ = cues(h, [90, -90], upsample=64)
        itd_90.append(np.abs(i90) * 1e3)
        if "~p" in prefix:
            p = heads.describe_head(head_id)
            if base is None:
                b = heads.load_head(p["base"], sample_rate)
                base = (cues(b, [90], upsample=64)[0][0], cues(b, AZ)[1])
            right = (AZ >= 30) & (AZ <= 65)
            scale_err.append((abs(i90[0] / base[0] - p["itd_scale"]),
                              abs(np.mean(ild[right] / base[1][right]) - p["ild_scale"])))
    itd_90 = np.array(itd_90)
    row = {"heads": f"{prefix}{seeds.start}..{seeds.stop - 1}", "sample_rate": sample_rate, "n": n,
           "itd_rising": itd_rising, "signs_right": signs_right,
           **{f"ild_rising_{r}": v for r, v in ild_rising.items()},
           "ild_smallest_step_db": round(min(steps), 3), "ild_smallest_step_seed": seeds[int(np.argmin(steps))],
           "ild_steps_below_0": sum(s <= 0 for s in steps), "ild_steps_below_-0.1db": sum(s < -0.1 for s in steps),
           "itd_90_ms": [round(float(itd_90.min()), 3), round(float(itd_90.max()), 3)],
           "ms_per_head_incl_checks": round((time.perf_counter() - t) / n * 1e3, 1)}
    if scale_err:
        e = np.array(scale_err)
        row["itd_scale_max_err"], row["ild_scale_max_err"] = round(float(e[:, 0].max()), 3), round(float(e[:, 1].max()), 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 seeds per group, no file written")
    args = ap.parse_args()
    k = 10 if args.quick else None

    def first(r: range, m: int | None) -> range:
        return range(r.start, r.start + m) if m else r
    t, o = heads.TRAIN_SEEDS, heads.OOD_SEEDS
    groups = [(f"{b}~p", t, 16000) for b in heads._measured("train")]
    groups += [(f"{b}~p", o, 16000) for b in heads.MEASURED_HEADS]
    groups += [("sphere~s", t, 16000), ("sphere~s", o, 16000)]
    groups += [(f"{b}~p", first(t, 40), 48000) for b in heads._measured("train")]
    groups += [(f"{b}~p", first(o, 20), 48000) for b in heads.MEASURED_HEADS]
    groups += [("sphere~s", first(t, 40), 48000), ("sphere~s", first(o, 20), 48000)]
    rows = []
    for prefix, seeds, sr in groups:
        rows.append(check_group(prefix, first(seeds, k), sr))
        print(json.dumps(rows[-1]), flush=True)
    if not args.quick:
        with open(RESULTS, "w") as f:
            json.dump({"rows": rows}, f, indent=1)
        print("wrote", RESULTS)


if __name__ == "__main__":
    main()
