"""Make the dataset card's figure: one scene's frames and its left/right level difference.

Usage::

    python -m streambin.train.sim.card --root DIR [--clip NAME] [--out docs/figures/scene_example.png]

Without ``--clip`` the clip with one moving source and the widest sweep (anechoic preferred;
else the first clip) is shown. ``--kinds`` instead draws one clip of each scene kind of a
``--mix validation`` set (single static source, photograph, moving, two sources, centre): its
first and last frames and its level difference.
The level difference is ``10 log10(E_right / E_left)`` over 100 ms windows (positive: louder
right), plotted with the source azimuths from the sidecar (positive: right).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def short_time_ild_db(audio: np.ndarray, sample_rate: int, window_s: float = 0.1):
    """``(times_s, ild_db)`` of a ``(2, n)`` signal over non-overlapping windows; windows with
    less than 1e-4 of the median energy give NaN."""
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio must be (2, n), got {audio.shape}")
    w = max(1, int(window_s * sample_rate))
    k = audio.shape[1] // w
    seg = audio[:, : k * w].astype(np.float64).reshape(2, k, w)
    e = (seg ** 2).sum(axis=2)
    tot = e.sum(axis=0)
    ok = tot > 1e-4 * np.median(tot)
    ild = np.full(k, np.nan)
    ild[ok] = 10 * np.log10(np.maximum(e[1, ok], 1e-20) / np.maximum(e[0, ok], 1e-20))
    return (np.arange(k) + 0.5) * w / sample_rate, ild


def pick_clip(root: Path) -> str:
    metas = sorted((root / "meta").glob("*.json"))
    if not metas:
        raise FileNotFoundError(f"no sidecars in {root / 'meta'}")
    best, best_score = metas[0].stem, -1.0
    for p in metas:
        m = json.loads(p.read_text())
        if len(m["sources"]) == 1 and m["sources"][0]["moving"]:
            az = m["sources"][0]["azimuth_deg"]
            score = abs(az[-1] - az[0]) + (100.0 if m["room"] is None else 0.0)
            if score > best_score:
                best, best_score = p.stem, score
    return best


def make_figure(root: Path, clip: str, out: Path) -> Path:
    import cv2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    meta = json.loads((root / "meta" / f"{clip}.json").read_text())
    audio, sr = sf.read(str(root / "binaural_audios" / f"{clip}.wav"), dtype="float32", always_2d=True)
    t, ild = short_time_ild_db(audio.T, sr)
    n = meta["n_frames"]
    show = [0, n // 2, n - 1]
    fig = plt.figure(figsize=(12, 6.2))
    gs = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.1])
    for col, j in enumerate(show):
        ax = fig.add_subplot(gs[0, col])
        img = cv2.cvtColor(cv2.imread(str(root / "frames" / clip / f"{j + 1:06d}.png")), cv2.COLOR_BGR2RGB)
        ax.imshow(img)
        for s in meta["sources"]:
            x0, y0, x1, y1 = s["bbox"][j]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1))
            ax.text(x0, max(y0 - 4, 8), f"{s['name'].split('/')[-1]} {s['azimuth_deg'][j]:+.0f}°",
                    color="lime", fontsize=7)
        ax.set_title(f"frame {j + 1} (t = {meta['frame_times_s'][j]:.2f} s)", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(gs[1, :])
    ax.plot(t, ild, color="tab:red", label="level difference R - L (dB, 100 ms windows)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("R - L level (dB)", color="tab:red")
    ax2 = ax.twinx()
    for s in meta["sources"]:
        ax2.plot(meta["frame_times_s"], s["azimuth_deg"], "--", label=f"azimuth {s['name'].split('/')[-1]}")
    ax2.set_ylabel("azimuth (deg, + = right)")
    lim = max(5.0, float(np.nanmax(np.abs(ild))) * 1.1) if np.any(np.isfinite(ild)) else 10.0
    ax.set_ylim(-lim, lim)
    ax2.set_ylim(-50, 50)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    room = meta["room"]
    room_s = (f"room {room['dims_m'][0]:.1f}x{room['dims_m'][1]:.1f}x{room['dims_m'][2]:.1f} m, "
              f"RT60 {room['rt60_s']:.2f} s") if room else "anechoic"
    fig.suptitle(f"SimBinaural-lite clip {clip}: {room_s}, background {meta['background']}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def scene_label(meta: dict) -> str:
    """Which scenario a sidecar shows: photograph / moving / two sources / centre / single static
    (silent distractors do not count as sources)."""
    sounding = [s for s in meta["sources"] if not s.get("silent", False)]
    if meta.get("scene_kind") == "photograph":
        return "photograph"
    if any(s["moving"] for s in sounding):
        return "moving"
    if len(sounding) >= 2:
        return "two sources"
    if abs(sounding[0]["azimuth_deg"][0]) <= 5.0:
        return "centre"
    return "single static"


KIND_ORDER = ("single static", "photograph", "moving", "two sources", "centre")


def make_kinds_figure(root: Path, out: Path) -> Path:
    import cv2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    chosen: dict = {}
    for p in sorted((root / "meta").glob("*.json")):
        m = json.loads(p.read_text())
        chosen.setdefault(scene_label(m), (p.stem, m))
    kinds = [k for k in KIND_ORDER if k in chosen]
    if not kinds:
        raise FileNotFoundError(f"no sidecars in {root / 'meta'}")
    fig, axes = plt.subplots(len(kinds), 3, figsize=(13, 2.3 * len(kinds)),
                             gridspec_kw={"width_ratios": [1, 1, 1.5]})
    axes = np.atleast_2d(axes)
    for row, kind in enumerate(kinds):
        clip, meta = chosen[kind]
        audio, sr = sf.read(str(root / "binaural_audios" / f"{clip}.wav"), dtype="float32", always_2d=True)
        t, ild = short_time_ild_db(audio.T, sr)
        for col, j in enumerate((0, meta["n_frames"] - 1)):
            ax = axes[row, col]
            img = cv2.cvtColor(cv2.imread(str(root / "frames" / clip / f"{j + 1:06d}.png")), cv2.COLOR_BGR2RGB)
            ax.imshow(img)
            for s in meta["sources"]:
                x0, y0, x1, y1 = s["bbox"][j]
                colour = "red" if s.get("silent") else "lime"
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, lw=1))
            ax.set_title(f"{kind}: clip {clip}, frame {j + 1}, FOV {meta['hfov_deg']:.0f}°", fontsize=8)
            ax.axis("off")
        ax = axes[row, 2]
        ax.plot(t, ild, color="tab:red", lw=1)
        ax.axhline(0, color="grey", lw=0.5)
        lim = max(5.0, float(np.nanmax(np.abs(ild))) * 1.1) if np.any(np.isfinite(ild)) else 10.0
        ax.set_ylim(-lim, lim)
        ax.set_ylabel("R - L (dB)", color="tab:red", fontsize=8)
        ax.tick_params(labelsize=7)
        ax2 = ax.twinx()
        for s in meta["sources"]:
            if not s.get("silent"):
                ax2.plot(meta["frame_times_s"], s["azimuth_deg"], "--", lw=1)
        half = meta["hfov_deg"] / 2
        ax2.set_ylim(-half, half)
        ax2.set_ylabel("azimuth (deg)", fontsize=8)
        ax2.tick_params(labelsize=7)
        ax.set_title(f"head {meta.get('head', '?')}, "
                     f"{'room' if meta['room'] else 'anechoic'}; green: sounding, red: silent", fontsize=8)
    axes[-1, 2].set_xlabel("time (s)", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.sim.card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--clip", default=None)
    p.add_argument("--out", type=Path, default=Path("docs/figures/scene_example.png"))
    p.add_argument("--kinds", action="store_true", help="one clip of each scene kind (validation mix)")
    a = p.parse_args(argv)
    if a.kinds:
        print(make_kinds_figure(a.root, a.out))
        return 0
    clip = a.clip or pick_clip(a.root)
    print(make_figure(a.root, clip, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
