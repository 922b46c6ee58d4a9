"""Median predicted / true level difference of streamed evaluations' lateral clips, split by
scene kind and by what each clip's meta says of it (room, head kind, silent objects, the
sounding source's kind of sound).

    PYTHONPATH=. python scripts/experiments/level_ratio_by_scene.py \\
        --set held-out docs/results/ood_renderer.json /work/data/ood_val \\
        --set held-out docs/results/ood_confirm_default.json /work/data/ood_confirm \\
        --set train_pool docs/results/blendfit_lateral_default.json /work/data/blendfit \\
        --bootstrap 1000 --plot docs/figures/level_ratio_by_sound.png

(An underscore in a set's name shows as a space in the plot.)

Evaluations given the same set name are pooled (a clip of one data root counted once). Clips
count where they qualify (``localisation_eval.qualify``) and their true level difference is at
least ``MIN_TARGET_LD_DB``, as the goal's median does.

The ratio runs well above 1 in rooms and below it in free field, and far below it for sounds
whose energy lies low (the "sound" factor: the spectral centroid of the true mid, left plus
right, in four bands), so a set's median moves with its shares of room clips and of low sounds.
Each set also gets medians balanced by room and by sound band (each group of the factor weighing
the same), and with ``--bootstrap N`` a 95 % percentile interval (N resamples of the clips) for
the set's medians and each group's.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from streambin.train.localisation_eval import MIN_TARGET_LD_DB

CENTROID_BANDS_HZ = (500.0, 1000.0, 2000.0)  # the "sound" factor's band edges


def sound_band(centroid_hz: float) -> str:
    """The band of :data:`CENTROID_BANDS_HZ` a spectral centroid falls in, e.g. ``"0.5-1 kHz"``."""
    edges = (0.0,) + CENTROID_BANDS_HZ + (float("inf"),)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= centroid_hz < hi:
            return f"{lo / 1000:g}-{hi / 1000:g} kHz" if np.isfinite(hi) else f">= {lo / 1000:g} kHz"
    raise ValueError(f"spectral centroid must be a finite frequency >= 0, got {centroid_hz}")


def centroid_hz(x: np.ndarray, rate: int) -> float:
    """Spectral centroid (Hz, power-weighted) of ``x`` (n,) at ``rate``."""
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((power * np.fft.rfftfreq(len(x), 1.0 / rate)).sum() / max(power.sum(), 1e-30))


def mid_centroid_hz(wav: Path) -> float:
    """Spectral centroid of the mid (mean of the two ears) of a clip file."""
    x, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return centroid_hz(x.mean(axis=1), sr)


FACTORS = {
    "room": lambda meta: "room" if meta.get("room") else "free field",
    "head": lambda meta: (meta.get("head_info") or {}).get("kind", "?"),
    "silent objects": lambda meta: "with" if any(s.get("silent") for s in meta["sources"]) else "without",
    # the first sounding source's kind of sound: stamp (the object's own), instrument, speech, ...
    "sound kind": lambda meta: next((s.get("sound_kind", "?") for s in meta["sources"] if not s.get("silent")), "?"),
    "sound": lambda meta: sound_band(meta["mid_centroid_hz"]),
}


def rows_of(evaluation: Path, data_root: Path):
    """``(scene kind, meta, ratio)`` of each counted lateral clip of one evaluation JSON."""
    for r in json.loads(evaluation.read_text())["localisation"]["per_clip"]:
        if r["qualifies"] and abs(r["ld_target_db"]) >= MIN_TARGET_LD_DB:
            meta = json.loads((data_root / "meta" / f"{r['clip']}.json").read_text())
            meta["mid_centroid_hz"] = mid_centroid_hz(data_root / "binaural_audios" / f"{r['clip']}.wav")
            yield r["scene_kind"], meta, r["ld_pred_db"] / r["ld_target_db"]


def weighted_median(values, weights) -> float:
    """The value where the cumulative weight of the sorted values first reaches half the total."""
    v, w = np.asarray(values, float), np.asarray(weights, float)
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cum, 0.5 * cum[-1])])


def balanced_median(rows, factor: str) -> float:
    """Median ratio with each group of ``factor`` (a key of :data:`FACTORS`) weighing the same,
    whatever its number of clips."""
    groups = [FACTORS[factor](meta) for _, meta, _ in rows]
    counts = collections.Counter(groups)
    return weighted_median([ratio for _, _, ratio in rows], [1.0 / counts[g] for g in groups])


def bootstrap_interval(rows, statistic, n: int, seed: int = 0) -> list:
    """95 % percentile interval of ``statistic(rows)`` over ``n`` resamples of the rows."""
    rng = np.random.default_rng(seed)
    draws = [statistic([rows[i] for i in rng.integers(len(rows), size=len(rows))]) for _ in range(n)]
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def _median(rows) -> float:
    return float(np.median([ratio for _, _, ratio in rows]))


def plot_by_sound(sets: dict, path: Path, n_bootstrap: int) -> None:
    """The median ratio of each set's clips per sound band and over all of them, with 95 %
    bootstrap intervals, beside the goal's range (0.7-1.4)."""
    from streambin.result_plot import require_matplotlib

    plt = require_matplotlib()
    edges = (0.0,) + CENTROID_BANDS_HZ
    bands = [sound_band(e) for e in edges] + ["all"]
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    ax.axhspan(0.7, 1.4, color="tab:green", alpha=0.12, label="goal's range (0.7-1.4)")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    width = 0.8 / max(len(sets), 1)
    for k, (name, rows) in enumerate(sets.items()):
        xs, ys, lo, hi, counts = [], [], [], [], []
        for b, band in enumerate(bands):
            group = rows if band == "all" else [r for r in rows if FACTORS["sound"](r[1]) == band]
            if not group:
                continue
            m = _median(group)
            a, z = bootstrap_interval(group, _median, n_bootstrap) if n_bootstrap else (m, m)
            xs.append(b - 0.4 + width * (k + 0.5)); ys.append(m); lo.append(m - a); hi.append(z - m)
            counts.append(len(group))
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=name.replace("_", " "))
        for x, y, c in zip(xs, ys, counts):
            ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(4, -3), fontsize=7)
    ax.set_xticks(range(len(bands)), [f"centroid {b}" if b != "all" else "all clips" for b in bands], fontsize=8)
    ax.set_ylabel("predicted / true level difference, median")
    title = "Lateral single-source clips by the sound's spectral centroid\n(clips beside each point"
    ax.set_title(title + (f"; 95 % bootstrap intervals, {n_bootstrap} resamples)" if n_bootstrap else ")"),
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "EVALUATION", "DATA_ROOT"))
    p.add_argument("--out", help="also write the table as JSON")
    p.add_argument("--plot", type=Path, help="draw each set's median by sound band (PNG)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="also a 95 %% interval of each median from N resamples (default 0: none)")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        p.error(f"--bootstrap must be >= 0, got {args.bootstrap}")

    def summary(rows, *statistics):
        out = [len(rows)] + [f(rows) for f in statistics]
        if args.bootstrap:
            out += [bootstrap_interval(rows, f, args.bootstrap) for f in statistics]
        return out

    def shown(v) -> str:
        interval = f" [{v[-1][0]:.2f}-{v[-1][1]:.2f}]" if args.bootstrap else ""
        return f"{v[1]:.2f} ({v[0]}){interval}"

    sets = collections.defaultdict(dict)
    for name, evaluation, root in args.set:
        for kind, meta, ratio in rows_of(Path(evaluation), Path(root)):
            sets[name][(root, meta["clip"])] = (kind, meta, ratio)
    table = {}
    for name, clips in sets.items():
        rows = list(clips.values())
        table[name] = {"all": summary(rows, _median),
                       "balanced by room": summary(rows, lambda r: balanced_median(r, "room")),
                       "balanced by sound": summary(rows, lambda r: balanced_median(r, "sound"))}
        for factor, of in [("scene kind", lambda meta: "")] + list(FACTORS.items()):
            groups = collections.defaultdict(list)
            for row in rows:
                groups[f"{row[0]} {of(row[1])}".strip()].append(row)
            table[name][factor] = {g: summary(v, _median) for g, v in sorted(groups.items())}
        print(f"== {name}: median ratio {shown(table[name]['all'])}; balanced by room "
              f"{shown(table[name]['balanced by room'])}, by sound {shown(table[name]['balanced by sound'])}")
        for factor, groups in list(table[name].items())[3:]:
            print(f"  {factor}: " + ", ".join(f"{g} {shown(v)}" for g, v in groups.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))
    if args.plot:
        plot_by_sound({name: list(clips.values()) for name, clips in sets.items()}, args.plot, args.bootstrap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
