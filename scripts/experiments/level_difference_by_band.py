"""Where in the spectrum a lateral clip's level difference lies, in the truth and in a bundle's
streamed output, split by the sound's band (``level_ratio_by_scene.FACTORS["sound"]``) and room.

    PYTHONPATH=. python scripts/experiments/level_difference_by_band.py \\
        --data /work/data/iqval /work/data/iqfit --bundle streambin/models/default \\
        --out docs/results/level_difference_by_band.json

The goal's level ratio compares whole-clip level differences, ``10 log10(E_L / E_R)``. Their sign
and size follow the energy difference ``E_L - E_R = sum_f (E_L(f) - E_R(f))``, which this splits
into frequency bands (:data:`BAND_EDGES_HZ`, a 512-point STFT at the model rate): per clip, each
band's share of the truth's difference (the shares sum to 1), and each band's difference in the
output over the truth's whole difference (summed over the bands: the output's difference over the
truth's, a linear cousin of the goal's ratio). Clips count as the goal's ratio counts them
(``localisation_eval.qualify``: one static sounding source 10 degrees or more off the centre; a
true level difference of 1 dB or more). Without ``--bundle`` only the truth is read. Means over
the clips of each group.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
from scipy.signal import stft

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the factors' owner, beside this file
from level_ratio_by_scene import FACTORS, centroid_hz  # noqa: E402

from streambin.train.localisation_eval import MIN_TARGET_LD_DB, level_difference_db, qualify  # noqa: E402

BAND_EDGES_HZ = (0.0, 500.0, 1000.0, 2000.0, 4000.0, float("inf"))
N_FFT, HOP = 512, 128


def band_names():
    return [f"{lo / 1000:g}-{hi / 1000:g} kHz" if np.isfinite(hi) else f">= {lo / 1000:g} kHz"
            for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])]


def band_energy_difference(x: np.ndarray, rate: int) -> np.ndarray:
    """``(bands,)`` left-minus-right energy of ``x`` (2, n) float (left, right) per band of
    :data:`BAND_EDGES_HZ`."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] != 2 or x.shape[1] < N_FFT:
        raise ValueError(f"expected (2, n) audio with n >= {N_FFT}, got {x.shape}")
    freqs, _, z = stft(x, fs=rate, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)
    diff = (np.abs(z[0]) ** 2 - np.abs(z[1]) ** 2).sum(axis=1)
    return np.array([diff[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])])


def clip_rows(roots, predictor=None, max_clips: int = 0):
    """``(meta, truth's band differences, output's or None)`` of each counted clip of the roots'
    ``all`` split (``max_clips`` per root; 0: all)."""
    from streambin.train.data import SimBinauralDataset, stored_frame_size

    for root in roots:
        dataset = SimBinauralDataset(root, "all", mode="eval", visual_size=stored_frame_size(root))
        taken = 0
        for i in range(len(dataset)):
            if max_clips and taken >= max_clips:
                break
            meta = json.loads((Path(root) / "meta" / f"{dataset.clips[i]}.json").read_text())
            if not qualify(meta)["qualifies"]:
                continue
            item = dataset[i]
            truth = item["audio"].numpy().astype(np.float64)
            if abs(level_difference_db(truth)) < MIN_TARGET_LD_DB:
                continue
            taken += 1
            rate = int(meta.get("sample_rate", 16000))
            mid = truth.mean(axis=0)
            meta["mid_centroid_hz"] = centroid_hz(mid, rate)
            out = None
            if predictor is not None:
                pred = np.asarray(predictor(mid.astype(np.float32), item["frames"], float(item["fps"]), "true"))
                out = band_energy_difference(pred[:, :truth.shape[1]], rate)
            yield meta, band_energy_difference(truth, rate), out


def summarise(rows) -> dict:
    """Per group (sound band x room, and all): clips, the truth's mean share per band and, where
    there is an output, the mean of the output's band differences over the truth's whole one."""
    groups = collections.defaultdict(list)
    for meta, truth, out in rows:
        for key in ("all", f"{FACTORS['sound'](meta)}, {FACTORS['room'](meta)}", FACTORS["sound"](meta)):
            groups[key].append((truth, out))
    names = band_names()
    table = {}
    for key, members in sorted(groups.items()):
        truth = np.array([t for t, _ in members])
        total = truth.sum(axis=1, keepdims=True)
        entry = {"clips": len(members), "truth_share": dict(zip(names, np.mean(truth / total, axis=0).round(3).tolist()))}
        outs = [o for _, o in members if o is not None]
        if len(outs) == len(members):
            rel = np.array(outs) / total
            entry["output_over_truth"] = dict(zip(names, rel.mean(axis=0).round(3).tolist()))
            entry["output_over_truth_whole"] = round(float(rel.sum(axis=1).mean()), 3)
        table[key] = entry
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", type=Path, required=True, help="generated sets (their 'all' split)")
    p.add_argument("--bundle", help="stream the clips through this bundle (standing settings) to split its output too")
    p.add_argument("--side-gain", type=float, default=None, help="the Spatializer's (default: the bundle's)")
    p.add_argument("--max-clips", type=int, default=0, help="counted clips per set (default: all)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.max_clips < 0:
        p.error(f"--max-clips must be >= 0, got {args.max_clips}")
    predictor = None
    if args.bundle:
        from streambin.train.evaluate_streaming import StreamedPredictor

        predictor = StreamedPredictor(args.bundle, sample_rate=48000, block_frames=3, lookahead_frames=1,
                                      side_gain=args.side_gain)
    table = summarise(clip_rows(args.data, predictor, args.max_clips))
    if not table:
        print("no clip counted (one static sounding source >= 10 degrees off the centre, >= 1 dB level difference)")
        return 1
    result = {"command": "PYTHONPATH=. python scripts/experiments/level_difference_by_band.py "
                         + " ".join(sys.argv[1:] if argv is None else argv),
              "bands": band_names(), "groups": table}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    for key, entry in table.items():
        print(f"{key} ({entry['clips']} clips)\n  truth's share: {entry['truth_share']}")
        if "output_over_truth" in entry:
            print(f"  output / truth's whole: {entry['output_over_truth']} (sum {entry['output_over_truth_whole']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
