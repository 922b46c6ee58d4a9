"""A picture of what spatializing did: frames strip, input and output spectrograms, level difference.

Used by ``python -m streambin spatialize ... --plot out.png`` and for the README's opening figure.
Needs matplotlib (``pip install matplotlib``; it comes with the ``train`` and ``plot`` extras).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

STRIP_FRAMES = 6
LEVEL_WINDOW_S = 0.1
SILENCE_DB = -50.0  # windows this far below the input's loudest are not given a level difference


def require_matplotlib():
    """Import matplotlib's pyplot (Agg) or fail in one line naming the package."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install matplotlib (or pip install 'streambin[plot]')") \
            from exc
    return plt


class StripCollector:
    """Keeps up to ``count`` frames of a ``(time_s, frame)`` stream, the first at or after each of
    ``count`` evenly spaced times over ``duration_s``; passes the stream through unchanged."""

    def __init__(self, duration_s: float, count: int = STRIP_FRAMES):
        self.targets = [duration_s * (i + 0.5) / count for i in range(count)]
        self.frames: List[Tuple[float, np.ndarray]] = []

    def wrap(self, timed_frames):
        from streambin.frames import as_array

        for t, frame in timed_frames:
            if len(self.frames) < len(self.targets) and t >= self.targets[len(self.frames)] - 1e-9:
                self.frames.append((t, np.asarray(as_array(frame))))
            yield t, frame


def level_difference_db(binaural: np.ndarray, mono: np.ndarray, rate: int, window_s: float = LEVEL_WINDOW_S):
    """Per-window ``10 log10(E_R / E_L)`` of ``(2, n)`` audio: ``(times_s, ild_db)``; NaN where
    the input ``mono`` is silent (more than 50 dB below its loudest window)."""
    w = max(1, int(round(window_s * rate)))
    k = binaural.shape[1] // w
    if k == 0:
        return np.zeros(0), np.zeros(0)
    e = (binaural[:, :k * w].astype(np.float64) ** 2).reshape(2, k, w).sum(axis=2)
    e_in = (mono[:k * w].astype(np.float64) ** 2).reshape(k, w).sum(axis=1)
    loud = 10 * np.log10(e_in + 1e-20) > 10 * np.log10(e_in.max() + 1e-20) + SILENCE_DB
    ild = 10 * np.log10((e[1] + 1e-20) / (e[0] + 1e-20))
    ild[~loud] = np.nan
    return (np.arange(k) + 0.5) * w / rate, ild


def _spectrogram(ax, x: np.ndarray, rate: int, title: str, vmax_db: float):
    from scipy.signal import stft

    nper = int(2 ** np.ceil(np.log2(0.032 * rate)))
    f, t, z = stft(x, fs=rate, nperseg=nper, noverlap=nper // 2)
    db = 20 * np.log10(np.abs(z) + 1e-10)
    im = ax.pcolormesh(t, f / 1000, db, shading="auto", cmap="magma", vmin=vmax_db - 80, vmax=vmax_db,
                       rasterized=True)
    ax.set_ylabel("kHz")
    ax.set_title(title, loc="left", fontsize=10)
    return im


def plot_spatialized(path, mono: np.ndarray, binaural: np.ndarray, rate: int,
                     strip: Sequence[Tuple[float, np.ndarray]] = (), title: str = "",
                     spectrograms: bool = True) -> None:
    """Write the figure to ``path`` (png, pdf or svg by its suffix).

    Args:
        mono: ``(n,)`` float input at ``rate``; binaural: ``(2, n)`` float output aligned with it.
        strip: ``(time_s, (H, W, 3) uint8)`` frames to show above, in time order (may be empty).
        spectrograms: False: only the frames and the level difference (a compact figure).
    """
    plt = require_matplotlib()
    mono = np.asarray(mono, np.float32)
    binaural = np.asarray(binaural, np.float32)
    if binaural.ndim != 2 or binaural.shape[0] != 2 or binaural.shape[1] != mono.shape[0]:
        raise ValueError(f"binaural must be (2, n) aligned with mono (n,) = {mono.shape}, got {binaural.shape}")
    duration = len(mono) / rate
    n_strip = len(strip)
    n_spec = 3 if spectrograms else 0
    fig = plt.figure(figsize=(11, (1.6 if n_strip else 0) + 2.4 * n_spec + 2.4), constrained_layout=True)
    rows = ([0.75] if n_strip else []) + [1] * n_spec + [1.1]
    grid = fig.add_gridspec(len(rows), 1, height_ratios=rows)
    row = 0
    if n_strip:
        sub = grid[0].subgridspec(1, n_strip, wspace=0.03)
        for i, (t, frame) in enumerate(strip):
            ax = fig.add_subplot(sub[i])
            ax.imshow(frame)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{t:.1f} s", fontsize=9)
        row = 1
    peak_db = 20 * np.log10(float(np.abs(binaural).max()) + 1e-10) + 10
    axes = []
    for i, (x, name) in enumerate([(mono, "input (mono)"), (binaural[0], "output, left ear"),
                                   (binaural[1], "output, right ear")][:n_spec]):
        ax = fig.add_subplot(grid[row + i], sharex=axes[0] if axes else None)
        im = _spectrogram(ax, x, rate, name, peak_db)
        axes.append(ax)
    if axes:
        fig.colorbar(im, ax=axes, label="dB", shrink=0.8)
    ax = fig.add_subplot(grid[row + n_spec], sharex=axes[0] if axes else None)
    t, ild = level_difference_db(binaural, mono, rate)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.plot(t, ild, color="tab:blue", lw=1.5)
    lim = max(3.0, float(np.nanmax(np.abs(ild))) * 1.15) if np.isfinite(ild).any() else 3.0
    ax.set_ylim(-lim, lim)
    ax.set_ylabel("R - L (dB)")
    ax.set_title(f"level difference, right minus left, per {1e3 * LEVEL_WINDOW_S:.0f} ms "
                 "(above 0: louder on the right; gaps: input silent)", loc="left", fontsize=10)
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, duration)
    for a in axes:
        a.tick_params(labelbottom=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(str(path), dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    """``python -m streambin.result_plot INPUT BINAURAL FIG [--video V]``: the figure for an
    existing result (INPUT the mono input, BINAURAL the output aligned with it)."""
    import argparse

    from streambin import media

    p = argparse.ArgumentParser(prog="python -m streambin.result_plot", description=main.__doc__)
    p.add_argument("input", help="the mono input (audio file or video)")
    p.add_argument("binaural", help="the binaural output, aligned with the input (.wav/.flac/.ogg)")
    p.add_argument("figure", help="figure to write (png/pdf/svg)")
    p.add_argument("--video", help="video whose frames make the strip above (default: INPUT if a video)")
    p.add_argument("--compact", action="store_true", help="frames and level difference only (no spectrograms)")
    args = p.parse_args(argv)
    import soundfile as sf

    mono, rate = media.read_mono(args.input)
    binaural, out_rate = sf.read(args.binaural, dtype="float32", always_2d=True)
    if out_rate != rate or binaural.shape != (len(mono), 2):
        raise SystemExit(f"{args.binaural}: expected 2 channels of {len(mono)} samples at {rate} Hz "
                         f"(aligned with {args.input}), got {binaural.shape} at {out_rate} Hz")
    source = args.video or (args.input if media.is_video(args.input) else None)
    strip = StripCollector(len(mono) / rate)
    if source is not None:
        for _ in strip.wrap(media.iter_video_frames(source)):
            pass
    plot_spatialized(args.figure, mono, binaural.T, rate, strip.frames, spectrograms=not args.compact)
    print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
