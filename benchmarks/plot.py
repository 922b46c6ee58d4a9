"""PNG of a latency benchmark result (benchmarks/latency.py's JSON).

Top row, one panel per model: box plots of per-``process()``-call time for each backend and
chunk size (box = quartiles, whiskers = p1..p99, dot = max), with the chunk's duration drawn as a
red bar over each box: a chunk must be processed in less than its own duration. Bottom panel:
compute per second of audio (bars, log scale) and the latency each approach imposes (text), for
the papers' offline method, streambin offline and streambin streaming.

    python benchmarks/plot.py benchmarks/results/latency-cpu-2core.json  # writes the .png beside it
"""

from __future__ import annotations

import json
import os
import sys


def _measured(rows):
    return [r for r in rows if not r.get("skipped") and not r.get("error")]


def plot_latency(result: dict, png_path: str) -> str:
    """Draw ``result`` ({"machine", "rows", ...}) to ``png_path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise ValueError("result must be a dict with a 'rows' list (benchmarks/latency.py's JSON)")
    rows = _measured(result["rows"])
    streams = [r for r in rows if r.get("kind") == "stream" and r.get("box")]
    models = list(dict.fromkeys(r["model"] for r in rows)) or ["(none)"]
    fig, axes = plt.subplots(2, len(models), figsize=(max(7, 6 * len(models)), 9), squeeze=False)
    for j, model in enumerate(models):
        ax = axes[0, j]
        mine = sorted((r for r in streams if r["model"] == model),
                      key=lambda r: (r["backend"], r["device"], r["chunk_samples"]))
        if not mine:
            ax.text(0.5, 0.5, "no streaming rows", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            stats = [dict(r["box"], label=f"{r['backend']}\n{r['device']} {r['chunk_samples']}") for r in mine]
            ax.bxp(stats, showfliers=True, flierprops={"marker": "o", "markersize": 3})
            for i, r in enumerate(mine, start=1):
                ax.hlines(r["chunk_ms"], i - 0.4, i + 0.4, colors="red", linewidth=2,
                          label="chunk duration" if i == 1 else None)
            ax.set_yscale("log")
            ax.set_ylabel("ms per process() call")
            ax.tick_params(axis="x", labelsize=7)
            ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"model: {model} — per-chunk time at {mine[0]['sample_rate'] if mine else '?'} Hz")

        ax = axes[1, j]
        picks = [r for r in rows if r["model"] == model and r.get("kind") in ("papers", "offline")]
        smallest = {}
        for r in (r for r in streams if r["model"] == model):
            key = (r["backend"], r["device"])
            if key not in smallest or r["chunk_samples"] < smallest[key]["chunk_samples"]:
                smallest[key] = r
        picks += list(smallest.values())
        if not picks:
            ax.set_axis_off()
            continue
        labels, values, colors, notes = [], [], [], []
        for r in picks:
            kind = {"papers": "papers' offline", "offline": "streambin offline",
                    "stream": f"stream {r['chunk_samples']}"}[r["kind"]]
            labels.append(f"{kind}\n{r['backend']}/{r['device']}")
            values.append(r["ms_per_audio_s"])
            colors.append("tab:gray" if r.get("reference") else "tab:blue" if r["kind"] == "stream" else "tab:cyan")
            lat = r["end_to_end_latency_ms"]
            notes.append("latency: whole file" if lat is None else f"latency {lat:.0f} ms")
        bars = ax.bar(range(len(values)), values, color=colors)
        for b, note in zip(bars, notes):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), note, ha="center", va="bottom", fontsize=7)
        ax.axhline(1000, color="red", linewidth=1, linestyle="--", label="real time (1000 ms/s)")
        ax.set_xticks(range(len(values)), labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("ms of compute per s of audio")
        ax.set_title("papers' offline method (gray) vs streambin")
        ax.legend(loc="upper right", fontsize=8)
    m = result.get("machine", {})
    fig.suptitle(f"streambin latency — {m.get('cpu', '?')}, {m.get('cores', '?')} cores"
                 + (f", {m['gpu']}" if m.get("gpu") else ""), fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].endswith(".json"):
        print("usage: python benchmarks/plot.py RESULTS.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        result = json.load(f)
    print(plot_latency(result, argv[0][:-len(".json")] + ".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
