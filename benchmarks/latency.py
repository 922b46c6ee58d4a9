"""streambin latency benchmark.

Run: ``python benchmarks/latency.py`` (``--quick`` for a short run).

This first version measures the DSP chain of the engine: the per-hop time of the streaming
STFT -> mask -> ISTFT chain through streambin._C against the same chain done with torch and
with numpy, all in one run, printed as a table with ratios and written to
``benchmarks/results/dsp.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import dsp_chain  # noqa: E402
from benchmarks.machine import machine_description  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def run_dsp(n_hops: int, out_path: str) -> dict:
    worst = dsp_chain.check_agreement()
    rows = [dsp_chain.time_chain(name, n_hops=n_hops) for name in dsp_chain.IMPLEMENTATIONS]
    by = {r["impl"]: r for r in rows}
    native = by["streambin._C"]["per_hop_us_p50"]
    result = {
        "machine": machine_description(),
        "hop": dsp_chain.HOP, "n_fft": dsp_chain.N_FFT, "win_length": dsp_chain.WIN,
        "chain": "streaming STFT -> side mask (both ears) -> streaming ISTFT, one hop per call",
        "max_abs_diff_between_impls": worst,
        "rows": rows,
        "speedup_vs_torch": by["torch"]["per_hop_us_p50"] / native,
        "speedup_vs_numpy": by["numpy"]["per_hop_us_p50"] / native,
        "command": "python benchmarks/latency.py" + (" --quick" if n_hops < 2000 else ""),
    }
    print(f"\nDSP chain per hop ({dsp_chain.HOP} samples = 10 ms at 16 kHz), {n_hops} hops, "
          f"outputs agree to {worst:.1e}")
    print(f"{'impl':<14}{'p50 us':>10}{'p99 us':>10}{'vs _C (p50)':>14}")
    for r in rows:
        print(f"{r['impl']:<14}{r['per_hop_us_p50']:>10.1f}{r['per_hop_us_p99']:>10.1f}"
              f"{r['per_hop_us_p50'] / native:>13.1f}x")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out_path}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (300 hops)")
    parser.add_argument("--hops", type=int, default=None, help="hops to time per implementation (default 3000)")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "dsp.json"))
    args = parser.parse_args(argv)
    n_hops = args.hops or (300 if args.quick else 3000)
    run_dsp(n_hops, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
