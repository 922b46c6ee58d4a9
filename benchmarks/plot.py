"""PNG of a latency benchmark result (benchmarks/latency.py's JSON). Linear axes from 0.

One column per model, three panels:

1. per ``process()`` call, for each backend and chunk size: p50, p99 and max, against the chunk's
   duration (a chunk must be processed in less than its own duration). Calls fall into two
   groups: those that complete an audio block run the network (milliseconds), the others only
   buffer (tens of microseconds); the share of calls that run a block is written under each
   configuration, since the percentiles say which group they come from.
2. per audio block (the network run): p99 against the block's budget, its own duration.
3. compute per second of audio (bars) and the latency each approach imposes (text) for the
   papers' offline method, streambin offline and streambin streaming; approaches the run
   skipped are named with the reason, not drawn.

    python benchmarks/plot.py benchmarks/results/latency-cpu-2core.json  # writes the .png beside it
"""

from __future__ import annotations

import json
import os
import sys

KIND_NAMES = {"papers": "papers' offline", "offline": "streambin offline", "stream": "stream"}


def _measured(rows):
    return [r for r in rows if not r.get("skipped") and not r.get("error")]


BACKEND_SHORT = {"onnxruntime": "ORT", "tensorrt": "TRT", "torch": "torch"}


def _config_label(r, with_share: bool = False) -> str:
    """Backend, device and chunk size (and the share of calls that run a block) in short lines."""
    label = f"{BACKEND_SHORT.get(r['backend'], r['backend'])} {r['device']}\n{r['chunk_samples']}"
    share = r["blocks"] / r["n_chunks"] if r.get("blocks") is not None and r.get("n_chunks") else None
    if with_share and share is not None:
        label += f"\n{min(share, 1):.0%} blk"
    return label


def _per_call_panel(ax, streams, model):
    xs = range(len(streams))
    p50 = [r["p50_ms"] for r in streams]
    p99 = [r["p99_ms"] for r in streams]
    mx = [r.get("max_ms") or r["p99_ms"] for r in streams]
    ax.plot(xs, p50, "o", color="tab:blue", label="p50 per call")
    ax.plot(xs, p99, "^", color="tab:orange", label="p99 per call")
    ax.plot(xs, mx, "x", color="black", label="max per call")
    for i, r in enumerate(streams):
        ax.hlines(r["chunk_ms"], i - 0.35, i + 0.35, colors="red", linewidth=2,
                  label="chunk duration (deadline)" if i == 0 else None)
    top = max(mx + [r["chunk_ms"] for r in streams])
    ax.set_ylim(0, top * 1.15)
    ax.set_xticks(list(xs), [_config_label(r, with_share=True) for r in streams], fontsize=7)
    ax.set_xlim(-0.6, len(streams) - 0.4)
    ax.set_xlabel("backend, chunk (samples), share of calls that run a block (blk)", fontsize=7)
    ax.set_ylabel("ms per process() call")
    ax.set_title(f"{model}: time per process() call at {streams[0]['sample_rate']} Hz", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)


def _per_block_panel(ax, streams, model):
    rows = [r for r in streams if r.get("block_ms_p99") is not None]
    if not rows:
        ax.text(0.5, 0.5, "no per-block times in this result", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    xs = range(len(rows))
    bars = ax.bar(xs, [r["block_ms_p99"] for r in rows], color="tab:blue", width=0.6, label="p99 per block")
    for i, (b, r) in enumerate(zip(bars, rows)):
        budget = r.get("block_budget_ms") or 10.0 * r["block_frames"]
        ax.hlines(budget, i - 0.35, i + 0.35, colors="red", linewidth=2, label="block budget (its duration)"
                  if i == 0 else None)
        ax.text(i, b.get_height(), f"{r['block_ms_p99']:.0f}/{budget:.0f}\nb{r['block_frames']}",
                ha="center", va="bottom", fontsize=7)
    top = max(max(r["block_ms_p99"] for r in rows), max(r.get("block_budget_ms") or 10.0 * r["block_frames"]
                                                         for r in rows))
    ax.set_ylim(0, top * 1.3)
    ax.set_xticks(list(xs), [_config_label(r) for r in rows], fontsize=7)
    ax.set_xlabel("backend, chunk (samples); above the bars: p99 / budget (ms), block frames (b)", fontsize=7)
    ax.set_ylabel("ms per audio block")
    ax.set_title(f"{model}: network block p99 against its budget", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)


def _compute_panel(ax, rows, streams, skipped, model):
    picks = [r for r in rows if r.get("kind") in ("papers", "offline")]
    smallest = {}
    for r in streams:
        key = (r["backend"], r["device"])
        if key not in smallest or r["chunk_samples"] < smallest[key]["chunk_samples"]:
            smallest[key] = r
    picks += list(smallest.values())
    labels, values, colors, notes = [], [], [], []
    for r in picks:
        kind = KIND_NAMES[r["kind"]] + (f" {r['chunk_samples']}" if r["kind"] == "stream" else "")
        labels.append(f"{kind}\n{r['backend']}/{r['device']}")
        values.append(r["ms_per_audio_s"])
        colors.append("tab:gray" if r.get("reference") else "tab:blue" if r["kind"] == "stream" else "tab:cyan")
        lat = r["end_to_end_latency_ms"]
        notes.append("latency: whole file" if lat is None else f"latency {lat:.0f} ms")
    bars = ax.bar(range(len(values)), values, color=colors, width=0.6)
    for b, v, note in zip(bars, values, notes):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.0f} ms/s\n{note}", ha="center", va="bottom",
                fontsize=7)
    ax.axhline(1000, color="red", linewidth=1, linestyle="--", label="real time (1000 ms per s)")
    ax.set_ylim(0, max(values + [1000]) * 1.25)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_xlim(-0.6, max(len(values), 1) - 0.4)
    ax.set_ylabel("ms of compute per s of audio")
    ax.set_title(f"{model}: compute per second of audio", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    if skipped:
        ax.set_xlabel("not measured in this run: " + "; ".join(skipped), fontsize=6, color="0.35", wrap=True)


def plot_latency(result: dict, png_path: str) -> str:
    """Draw ``result`` ({"machine", "rows", ...}) to ``png_path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise ValueError("result must be a dict with a 'rows' list (benchmarks/latency.py's JSON)")
    rows = _measured(result["rows"])
    models = list(dict.fromkeys(r["model"] for r in result["rows"])) or ["(none)"]
    fig, axes = plt.subplots(3, len(models), figsize=(max(7, 6.5 * len(models)), 13), squeeze=False)
    for j, model in enumerate(models):
        mine = [r for r in rows if r["model"] == model]
        streams = sorted((r for r in mine if r.get("kind") == "stream" and r.get("p50_ms") is not None),
                         key=lambda r: (r["backend"], r["device"], r["chunk_samples"]))
        skipped = sorted({f"{KIND_NAMES.get(r.get('kind'), r.get('kind'))} {r['backend']}/{r['device']}"
                          for r in result["rows"] if r["model"] == model and (r.get("skipped") or r.get("error"))})
        if streams:
            _per_call_panel(axes[0, j], streams, model)
            _per_block_panel(axes[1, j], streams, model)
        else:
            for ax in axes[:2, j]:
                ax.text(0.5, 0.5, "no streaming rows", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
        if mine:
            _compute_panel(axes[2, j], mine, streams, skipped, model)
        else:
            axes[2, j].set_axis_off()
    m = result.get("machine", {})
    fig.suptitle(f"streambin latency — {m.get('cpu', '?')}, {m.get('cores', '?')} cores"
                 + (f", {m['gpu']}" if m.get("gpu") else ""), fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=100)
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
