"""Would rendering through an average head at the picture's azimuth beat the learnt masks?

Every model streambin ships predicts the side ``(L - R) / 2`` as a learnt mask on the mid. The
other way to spatialise a mono source is to render it: take the source's azimuth from the
picture and apply a fixed filter from the mid to the side for that azimuth. No picture shows the
listener's head, so the filter is averaged over many heads. This measures how well such a
renderer would do on a set's clips with one sounding source, beside the shipped default's
streamed evaluation of the same clips.

The filter: for K heads of the train pool (drawn as the simulator draws them), at elevation 0,
with ``M_h`` and ``S_h`` the rfft (512 points, 16 kHz) of head h's HRIR mid and side at azimuth
``a``, the least-squares filter over heads is

    F(a, f) = sum_h S_h conj(M_h) / sum_h |M_h|^2

on a grid of azimuths (-90 to 90 degrees, every ``GRID_STEP_DEG``). The side's STFT (Hann, 512
points, hop 128) is ``g(f) F(a_t, f) M(t, f)``, overlap-added back, and the output is
``(mid + side, mid - side)``. ``g(f)`` is a shrink per bin fitted by least squares on the
fitting set: in a room much of the side is diffuse reverberation, which no filter on the mid
can predict, and an uncertain azimuth puts the side's phase off; without the shrink (``g = 1``)
the filter renders the free-field side at full size.

Azimuths ``a_t`` (interpolated from the video frames' times to the STFT frames'):

- ``truth``: the sidecar's azimuth of the sounding source per frame, what a perfect localiser
  would give: the renderer's own limit with an average head.
- ``box``: the sounding source's box centre turned into an azimuth at the simulator's default
  field of view (90 degrees; the engine cannot know the camera's): a perfect detector that knows
  which object sounds.
- ``truth+SIGMA`` (``--noise-deg``): the sidecar's azimuth off by one error per clip drawn from
  N(0, SIGMA^2): how precise a localiser has to be for the renderer to pay.
- ``probe``: what the shipped visual path says: a ridge read-out of its visual feature
  (``streambin.train.position_probe``), fitted on four fifths of the fitting set's clips, and
  mirror-averaged as the engine averages (``(p(x) - p(mirror x)) / 2``, so a grey frame gives 0).
- ``localiser`` (with ``--localiser CK``): the strongest peak of a dense object localiser
  (``scripts/experiments/object_localiser.py``), mirror-averaged, turned into an azimuth at
  90 degrees as the box centre is: a visual net trained for this one job.
- ``localiser, soft`` (with ``--localiser CK``): instead of the strongest peak alone, the filters
  at its four strongest peaks' azimuths averaged with weights proportional to their heat scores
  raised to a power (1, 2, 4 or 8: the one whose shrunk side fits the fitting clips best; the filters
  are averaged per video frame and interpolated between frames): where the localiser is unsure
  which object sounds, the side is drawn in rather than put on the wrong one.
- ``model``: the azimuth the shipped default's own output implies: its offline, mirror-averaged
  prediction (``--side-gain``), and per video frame the grid azimuth whose filter best explains
  its side from the mono over the second before (a free positive gain, since the model shrinks
  its side where unsure): re-rendering what the model says through the average head.

Beside the renderer alone, ``blend with the model, probe`` / ``box`` scores the side
``a(f) * model's side + b(f) * rendered side`` (the rendered side unshrunk; real weights per bin
fitted by least squares on the fitting clips the probe was not fitted on, with the model's
offline outputs): whether the renderer adds to the model where each is better.

Scored per clip with the evaluation's metrics: the STFT distance (x Mono-Mono, as
``python -m streambin.train.evaluate`` reports it), SPL, and the localisation measures of
``streambin.train.localisation_eval`` (a grey frame renders no side; the mirrored frame renders
the negated azimuth), beside the shipped default's records (``--records``, evaluations'
``--out``) on the same clips. The renderer runs offline here; with the azimuth of the newest
frame it is causal, and costs one complex multiply per bin.

    PYTHONPATH=. python scripts/experiments/hrtf_prior.py --checkpoint runs/ft_ma_step200_recovered.pt \\
        --fit /work/data/probefit:train --data /work/data/ood_val --split all \\
        --records docs/results/ood_ma_sg1179.json docs/results/ood_last100_ma_sg1179.json \\
        --noise-deg 2 4 6 8 --out docs/results/hrtf_prior_ood.json
    PYTHONPATH=. python scripts/experiments/hrtf_prior.py --own-head-check 5 --data /work/data/ood_val \\
        --out docs/results/hrtf_prior_own_head.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
from scipy.signal import istft, stft
from tqdm import tqdm

from streambin.train import localisation_eval as L
from streambin.side_renderer import interpolate_rows
from streambin.train.average_head import GRID_STEP_DEG, side_filter_table
from streambin.train import metrics as M
from streambin.train.checkpoint import load_generator
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.fit_side_blend import BlendNormalEquations
from streambin.train.data import load_frame
from streambin.train.position_probe import Ridge, fit_with_held_out, split_spec
from streambin.train.sim.heads import draw_head
from streambin.train.sim.scene import HFOV_DEG, column_to_azimuth

SAMPLE_RATE = 16000
N_FFT, HOP = 512, 128
AZIMUTH_SOURCES = ("truth", "box", "probe", "model")
MODEL_WINDOW_S = 1.0
BLEND_SOURCES = ("probe", "box")
BATCH = 64


# ---------------------------------------------------------------- the filter table

def filters_at(grid: np.ndarray, table: np.ndarray, azimuths: np.ndarray) -> np.ndarray:
    """``(T, bins)`` filters at ``azimuths (T,)`` degrees, linear between grid points (clamped
    to +-90): the engine's interpolation (streambin.side_renderer.interpolate_rows)."""
    return interpolate_rows(grid, table, azimuths)


# ---------------------------------------------------------------- rendering

def spectrum(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(frame times in s (T,), STFT (bins, T) complex)`` of ``x (n,)`` at 16 kHz, the
    renderer's analysis (Hann 512, hop 128)."""
    _, t, z = stft(x, fs=SAMPLE_RATE, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)
    return t, z


def with_side(mid: np.ndarray, side_spectrum: np.ndarray) -> np.ndarray:
    """``(2, n) float64`` left/right: ``mid (n,)`` plus/minus the overlap-added ``side_spectrum``."""
    _, side = istft(side_spectrum, fs=SAMPLE_RATE, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)
    side = np.pad(side, (0, max(0, mid.size - side.size)))[: mid.size]
    return np.stack([mid + side, mid - side])


def render(mid: np.ndarray, side_filters: np.ndarray, shrink: np.ndarray) -> np.ndarray:
    """``(2, n) float64``: ``mid (n,)`` with the side ``shrink (bins,) * side_filters (T, bins) * STFT(mid)``."""
    return with_side(mid, spectrum(mid)[1] * (shrink[:, None] * side_filters.T))


class SoftAzimuths(NamedTuple):
    """Several candidate azimuths per video frame with weights: ``azimuths (n_frames, K)``
    degrees, ``weights (n_frames, K)`` summing to 1 per frame."""

    azimuths: np.ndarray
    weights: np.ndarray

    def __neg__(self) -> "SoftAzimuths":    # the mirrored frames' candidates
        return SoftAzimuths(-self.azimuths, self.weights)

    def point(self) -> np.ndarray:
        """``(n_frames,)`` the weighted mean azimuth (for reporting an error)."""
        return np.sum(self.azimuths * self.weights, axis=1)


def point_azimuths(azimuths) -> np.ndarray:
    return azimuths.point() if isinstance(azimuths, SoftAzimuths) else np.asarray(azimuths)


def filters_along(clip: "Clip", grid: np.ndarray, table: np.ndarray, azimuths,
                  stft_times: np.ndarray) -> np.ndarray:
    """``(T, bins)`` filters at the STFT frames' times, the clip's per-video-frame ``azimuths``
    interpolated linearly between the video frames' times (held at the ends); for
    :class:`SoftAzimuths`, each video frame's weighted filter, interpolated the same way."""
    if not isinstance(azimuths, SoftAzimuths):
        return filters_at(grid, table, np.interp(stft_times, clip.frame_times, azimuths))
    n, k = azimuths.azimuths.shape
    per_frame = np.einsum("nkb,nk->nb", filters_at(grid, table, azimuths.azimuths.ravel()).reshape(n, k, -1),
                          azimuths.weights)
    pos = np.interp(stft_times, clip.frame_times, np.arange(n, dtype=np.float64))
    lo = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return (1 - w) * per_frame[lo] + w * per_frame[hi]


# ---------------------------------------------------------------- clips

class Clip:
    """One single-sounding-source clip of a generated set."""

    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        self.meta = json.loads((root / "meta" / f"{name}.json").read_text())
        audio, sr = sf.read(root / "binaural_audios" / f"{name}.wav", dtype="float64", always_2d=True)
        if sr != SAMPLE_RATE or audio.shape[1] != 2:
            raise ValueError(f"{name}: expected 2-channel audio at {SAMPLE_RATE} Hz, got {audio.shape[1]} at {sr}")
        self.target = audio.T
        self.mid = 0.5 * (self.target[0] + self.target[1])
        self.frame_times = np.asarray(self.meta["frame_times_s"], np.float64)
        self.source = L.sounding_sources(self.meta)[0]

    def azimuths(self, how: str) -> np.ndarray:
        """``(n_frames,)`` degrees per video frame from the sidecar (``truth``), the box (``box``),
        or the sidecar's plus one error per clip drawn from N(0, sigma^2) (``truth+SIGMA``,
        seeded by the clip's name, so every run and variant draws the same errors)."""
        n = self.frame_times.size
        if how.startswith("truth+"):
            sigma = float(how[len("truth+"):])
            seed = int.from_bytes(f"{self.root.name}/{self.name}/{sigma}".encode()[-8:], "little")
            return self.azimuths("truth") + np.random.default_rng(seed).normal(0.0, sigma)
        if how == "truth":
            az = np.asarray(self.source["azimuth_deg"], np.float64)
        elif how == "box":
            boxes = np.asarray(self.source["bbox"], np.float64)
            az = column_to_azimuth((boxes[:, 0] + boxes[:, 2]) / 2, float(self.meta["frame_width"]), HFOV_DEG)
        else:
            raise ValueError(f"sidecar azimuths are 'truth', 'truth+SIGMA' or 'box', got {how!r}")
        return np.resize(az, n) if az.size != n else az

    def frame_paths(self) -> List[Path]:
        return [self.root / "frames" / self.name / f"{k:06d}.png" for k in range(1, self.frame_times.size + 1)]


def single_source_clips(root: Path, split: str, max_clips: int = 0) -> List[Clip]:
    names = [c.strip() for c in (root / "splits" / f"{split}.txt").read_text().splitlines() if c.strip()]
    out = []
    for name in names[: max_clips or None]:
        meta = json.loads((root / "meta" / f"{name}.json").read_text())
        if len(L.sounding_sources(meta)) == 1:
            out.append(Clip(root, name))
    return out


# ---------------------------------------------------------------- the probe

@torch.no_grad()
def probe_azimuths(generator, probe: Ridge, paths: Sequence[Path], visual_size) -> np.ndarray:
    """``(n,)`` mirror-averaged probe azimuths of the frames at ``paths``."""
    out = []
    for i in range(0, len(paths), BATCH):
        x = torch.from_numpy(np.stack([load_frame(p, visual_size) for p in paths[i:i + BATCH]]))
        own = probe(generator.visual(x).flatten(1).double().numpy())
        mirrored = probe(generator.visual(x.flip(2)).flatten(1).double().numpy())
        out.append(0.5 * (own - mirrored))
    return np.concatenate(out)


# ---------------------------------------------------------------- a dense object localiser

SOFT_POWERS = (1.0, 2.0, 4.0, 8.0)


def localiser_peaks(net, paths: Sequence[Path], weigh_by: str = "heat") -> Tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` degrees at 90 degrees of view and ``(n, 4)`` scores of each frame's four
    strongest mirror-averaged peaks, strongest first: their heat, or with ``weigh_by="sounding"``
    (a localiser with a sounding map) that map's probability at each of them."""
    from object_localiser import INPUT_W, load_frames, peaks  # beside this script
    from streambin.side_renderer import WEIGH_PEAKS_BY
    if weigh_by not in WEIGH_PEAKS_BY:
        raise ValueError(f"weigh_by must be one of {WEIGH_PEAKS_BY}, got {weigh_by!r}")
    got = peaks(net, load_frames(paths), k=4, mirror_average=True, sounding=weigh_by == "sounding")
    return column_to_azimuth(got[0] * INPUT_W, INPUT_W, HFOV_DEG), got[-1]


def soft_azimuths(azimuths: np.ndarray, scores: np.ndarray, power: float) -> SoftAzimuths:
    weights = np.maximum(scores, 1e-12) ** power
    return SoftAzimuths(azimuths, weights / weights.sum(axis=1, keepdims=True))


# ---------------------------------------------------------------- the model's own output

def implied_azimuths(mid: np.ndarray, pred: np.ndarray, grid: np.ndarray, table: np.ndarray,
                     frame_times: np.ndarray, window_s: float = MODEL_WINDOW_S) -> np.ndarray:
    """``(n_frames,)`` degrees: per video frame, the grid azimuth whose average-head filter
    best explains the side of ``pred (2, n)`` from ``mid (n,)`` (the model's input) over the
    ``window_s`` seconds up to that frame, with a free positive gain (the model's side is shrunk
    where it is unsure, so only its shape counts); 0 where no azimuth explains any of it."""
    t, m = spectrum(mid)
    s = spectrum(0.5 * (pred[0] - pred[1]))[1]
    n = min(m.shape[1], s.shape[1])
    zeros = np.zeros((m.shape[0], 1))
    cross = np.concatenate([zeros, np.cumsum(s[:, :n] * np.conj(m[:, :n]), axis=1)], axis=1)
    power = np.concatenate([zeros, np.cumsum(np.abs(m[:, :n]) ** 2, axis=1)], axis=1)
    out = np.zeros(frame_times.size)
    for k, tau in enumerate(frame_times):
        hi = int(np.searchsorted(t[:n], tau, side="right"))
        lo = int(np.searchsorted(t[:n], tau - window_s, side="left"))
        num = np.real(np.conj(table) @ (cross[:, hi] - cross[:, lo]))
        den = (np.abs(table) ** 2) @ (power[:, hi] - power[:, lo])
        fit = np.where(num > 0, num ** 2 / np.maximum(den, 1e-12), 0.0)
        out[k] = grid[int(np.argmax(fit))] if fit.max() > 0 else 0.0
    return out


class ModelOutputs:
    """The shipped default's offline, mirror-averaged prediction of a clip (``(2, n)`` at 16 kHz,
    side gain as given), from sets read with the evaluation's loader; with ``streamed`` (a
    bundle), its output streamed through the Spatializer as the held-out evaluation streams it
    (48 kHz, block 3, lookahead 1, mirror-averaged) instead."""

    def __init__(self, checkpoint: str, side_gain: float, streamed: Optional[str] = None):
        from streambin.train.data import SimBinauralDataset
        from streambin.train.evaluate import offline_predictor

        self.model, cfg = load_generator(checkpoint, mirror_average=True)
        self.model.eval()
        if streamed:
            from streambin.train.evaluate_streaming import StreamedPredictor

            self.predict = StreamedPredictor(streamed, sample_rate=48000, block_frames=3, lookahead_frames=1,
                                             mirror_average=True, side_gain=side_gain)
        else:
            self.predict = offline_predictor(self.model, cfg.audio, side_gain=side_gain)
        self.size = tuple(cfg.model.visual_size)
        self._make = lambda root: SimBinauralDataset(root, "all", mode="eval", visual_size=self.size)
        self._sets: Dict[str, Tuple[object, Dict[str, int]]] = {}

    @torch.no_grad()
    def __call__(self, clip: Clip) -> np.ndarray:
        key = str(clip.root)
        if key not in self._sets:
            ds = self._make(clip.root)
            self._sets[key] = (ds, {c: i for i, c in enumerate(ds.clips)})
        ds, index = self._sets[key]
        item = ds[index[clip.name]]
        return np.asarray(self.predict(clip.mid.astype(np.float32), item["frames"], float(item["fps"]), "true"),
                          np.float64)


# ---------------------------------------------------------------- blending with the model

def blend_terms(clip: Clip, pred: np.ndarray, grid, table, azimuths: np.ndarray, scale: float = 1.0):
    """``(model side, rendered side)`` STFTs ``(bins, T)`` of the clip times ``scale``: the
    model's side, and the mono through the average head's filter at ``azimuths`` (no shrink)."""
    t, mid = spectrum(clip.mid * scale)
    model_side = spectrum(0.5 * (pred[0] - pred[1]) * scale)[1]
    rendered = filters_along(clip, grid, table, azimuths, t).T * mid
    n = min(model_side.shape[1], rendered.shape[1])
    return model_side[:, :n], rendered[:, :n]


def fit_blend(clips: Sequence[Clip], model_pred, grid, table, azimuths_of) -> Tuple[np.ndarray, np.ndarray]:
    """``(a, b)``, each ``(bins,)``: the real weights per bin of the side ``a * model side + b *
    rendered side`` with the least squared error over ``clips`` (each at its truth's peak)."""
    normal = BlendNormalEquations(N_FFT // 2 + 1)
    for clip in tqdm(clips, desc="blend", unit="clip", leave=False):
        scale = 1.0 / max(float(np.max(np.abs(clip.target))), 1e-12)
        terms = blend_terms(clip, model_pred(clip), grid, table, azimuths_of(clip), scale)
        normal.add(spectrum(0.5 * (clip.target[0] - clip.target[1]) * scale)[1], terms)
    return normal.solve()


def blend_output(clip: Clip, pred: np.ndarray, grid, table, azimuths: np.ndarray, a, b) -> np.ndarray:
    """``(2, n)``: the model's mid plus/minus the blended side."""
    model_side, rendered = blend_terms(clip, pred, grid, table, azimuths)
    return with_side(0.5 * (pred[0] + pred[1]), a[:, None] * model_side + b[:, None] * rendered)


# ---------------------------------------------------------------- the shrink

def fit_shrink(clips: Sequence[Clip], grid, table, azimuths_of, residual: bool = False):
    """``(bins,)`` least-squares gain on the rendered side over ``clips`` (each at its peak, as
    the metric scores), clipped to [0, 1.5]; ``residual``: also the squared error left with that
    gain, as a fraction of the side's energy, ``(gain, fraction)``."""
    num = np.zeros(N_FFT // 2 + 1)
    den = np.zeros(N_FFT // 2 + 1)
    energy = 0.0
    for clip in tqdm(clips, desc="shrink", unit="clip", leave=False):
        x = M.peak_normalize(clip.target)
        t, mid = spectrum(0.5 * (x[0] + x[1]))
        side = spectrum(0.5 * (x[0] - x[1]))[1]
        pred = filters_along(clip, grid, table, azimuths_of(clip), t).T * mid
        num += np.sum(np.real(side * np.conj(pred)), axis=1)
        den += np.sum(np.abs(pred) ** 2, axis=1)
        energy += float(np.sum(np.abs(side) ** 2))
    gain = np.clip(num / np.maximum(den, 1e-12), 0.0, 1.5)
    if not residual:
        return gain
    return gain, float((energy - np.sum(2 * gain * num - gain ** 2 * den)) / max(energy, 1e-12))


# ---------------------------------------------------------------- scoring

def score_output(clip: Clip, out: np.ndarray, mirrored: np.ndarray, default: dict,
                 azimuths: Optional[np.ndarray] = None) -> Dict[str, object]:
    """One scored row: ``out`` and the output with mirrored frames, both ``(2, n)``, against the
    clip's truth (every output here is centred with grey frames: the mono on both ears), with the
    default's record beside and the mean error of the ``azimuths`` used (None: none used)."""
    grey = np.stack([clip.mid, clip.mid])
    error = None if azimuths is None else float(np.mean(np.abs(point_azimuths(azimuths) - clip.azimuths("truth"))))
    return {"clip": clip.name, "group": scene_group(clip.meta), "default": default,
            "stft": M.stft_distance(out, clip.target), "spl": M.spl_distance(out, clip.target),
            "mono_mono_stft": M.stft_distance(grey, clip.target), "mean_abs_azimuth_error_deg": error,
            "localisation": L.clip_record(clip.name, clip.meta, clip.target, out, grey, mirrored)}


def score_rendered(clip: Clip, grid, table, shrink, azimuths: np.ndarray, default: dict) -> Dict[str, object]:
    """The renderer at ``azimuths``; with mirrored frames, at the negated azimuths."""
    t, _ = spectrum(clip.mid)
    own = render(clip.mid, filters_along(clip, grid, table, azimuths, t), shrink)
    mirrored = render(clip.mid, filters_along(clip, grid, table, -azimuths, t), shrink)
    return score_output(clip, own, mirrored, default, azimuths)


def score_blend(clip: Clip, pred: np.ndarray, grid, table, a, b, azimuths: np.ndarray, default: dict) -> Dict[str, object]:
    """The blend; with mirrored frames the mirror-averaged model's side and the azimuth both
    change sign."""
    own = blend_output(clip, pred, grid, table, azimuths, a, b)
    mirrored = blend_output(clip, pred[::-1], grid, table, -azimuths, a, b)
    return score_output(clip, own, mirrored, default, azimuths)


def default_records(paths: Sequence[str]) -> Dict[str, dict]:
    """Clip name -> ``{"stft", "mono_mono_stft", "spl", "localisation"}`` from evaluations' JSONs."""
    out: Dict[str, dict] = {}
    for path in paths:
        d = json.loads(Path(path).read_text())
        loc = {r["clip"]: r for r in d.get("localisation", {}).get("per_clip", [])}
        for c in d["per_clip"]:
            m = c["metrics"]
            out[c["clip"]] = {"stft": m["model"]["stft"], "mono_mono_stft": m["mono_mono"]["stft"],
                              "spl": m["model"]["spl"], "localisation": loc.get(c["clip"])}
    return out


def scene_group(meta: Mapping) -> str:
    src = L.sounding_sources(meta)[0]
    az = np.abs(np.asarray(src["azimuth_deg"], np.float64))
    room = "room" if meta.get("room") else "anechoic"
    if src.get("moving"):
        return f"moving, {room}"
    return f"{'lateral' if az.mean() >= L.MIN_AZIMUTH_DEG else 'near the centre'}, {room}"


def summary(rows: Sequence[dict]) -> dict:
    """Mean STFT over mean Mono-Mono (x Mono-Mono), the paired difference's mean and s.e. against
    the default, and the localisation measures, over ``rows``."""
    mm = np.mean([r["mono_mono_stft"] for r in rows])
    ours = np.array([r["stft"] for r in rows])
    ref = np.array([r["default"]["stft"] for r in rows])
    diff = ours - ref
    loc = L.summarize([r["localisation"] for r in rows])
    # Evaluations run with --no-localisation (or older ones) kept no localisation records.
    have_ref = all(r["default"]["localisation"] is not None for r in rows)
    ref_loc = L.summarize([r["default"]["localisation"] for r in rows]) if have_ref else None
    return {"clips": len(rows), "stft_x_mono_mono": float(ours.mean() / mm), "default_x_mono_mono": float(ref.mean() / mm),
            "paired_diff": float(diff.mean()), "paired_sem": float(diff.std(ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else None,
            "paired_rel": float(diff.mean() / ref.mean()),
            "spl": float(np.mean([r["spl"] for r in rows])), "default_spl": float(np.mean([r["default"]["spl"] for r in rows])),
            "direction_acc": loc["direction_acc"]["overall"], "ld_ratio_median": loc["ld_ratio_median"],
            "ld_ratio_n": loc["ld_ratio_n"],
            "default_direction_acc": ref_loc["direction_acc"]["overall"] if ref_loc else None,
            "default_ld_ratio_median": ref_loc["ld_ratio_median"] if ref_loc else None}


def own_head_check(root: Path, split: str, n: int) -> Dict[str, float]:
    """Clip -> STFT distance over Mono-Mono of the renderer with the clip's own head (g = 1) at
    its sidecar azimuth, for the split's first ``n`` static single-source clips without a room:
    near 0 when the rendering itself is right (what is left is elevation and interpolation)."""
    out: Dict[str, float] = {}
    for clip in single_source_clips(root, split):
        if clip.meta.get("room") or clip.source.get("moving"):
            continue
        grid, table = side_filter_table([clip.meta["head"]])
        t, _ = spectrum(clip.mid)
        own = render(clip.mid, filters_along(clip, grid, table, clip.azimuths("truth"), t), np.ones(N_FFT // 2 + 1))
        out[clip.name] = M.stft_distance(own, clip.target) / M.stft_distance(np.stack([clip.mid, clip.mid]), clip.target)
        if len(out) == n:
            break
    return out


def plot_precision(result: Mapping, path: Path) -> None:
    """The renderer's STFT distance (x Mono-Mono, shrunk) against its azimuth's mean error: the
    ``truth+SIGMA`` variants as a line, ``box``, ``probe`` and ``model`` as points, the shipped
    default as a horizontal line."""
    from streambin.result_plot import require_matplotlib

    plt = require_matplotlib()

    def point(name):
        a = result["summary"][name]["all single-source"]
        err = float(np.mean([r["mean_abs_azimuth_error_deg"] for r in result["per_clip"][name]]))
        return err, a["stft_x_mono_mono"], a["default_x_mono_mono"], a["clips"]

    noisy = sorted((n for n in result["summary"] if n.startswith("truth") and n.endswith("shrunk")),
                   key=lambda n: point(n)[0])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs, ys = zip(*[point(n)[:2] for n in noisy])
    ax.plot(xs, ys, "o-", color="tab:blue", label="sidecar azimuth + one N(0, s^2) error per clip")
    for name, label, colour in (("box, shrunk", "box centre, 90-degree view assumed", "tab:green"),
                                ("probe, shrunk", "read-out of the shipped visual feature", "tab:orange"),
                                ("model, shrunk", "azimuth the default's output implies", "tab:red")):
        if name in result["summary"]:
            x, y, _, _ = point(name)
            ax.plot([x], [y], "s", color=colour, label=label)
    _, _, default, clips = point(noisy[0])
    ax.axhline(default, color="black", linestyle="--", label="shipped default, streamed")
    ax.set_xlabel("azimuth error given to the renderer, mean over clips (degrees)")
    ax.set_ylabel("STFT distance, x Mono-Mono")
    ax.set_title(f"Average-head renderer (shrunk), {clips} single-source held-out clips", fontsize=10)
    ax.set_xlim(left=0)
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replot", type=Path, help="only draw --plot from this earlier --out JSON")
    p.add_argument("--own-head-check", type=int, metavar="N",
                   help="only check the rendering: N clips of --data without a room, each through its own head (--out)")
    p.add_argument("--plot", type=Path, help="draw the STFT distance against the azimuth's error (PNG)")
    p.add_argument("--checkpoint", help="the shipped default's weights (for the probe)")
    p.add_argument("--fit", type=split_spec, help="DATA_ROOT:SPLIT of train-pool clips (probe, shrink)")
    p.add_argument("--data", type=Path, help="the scored set")
    p.add_argument("--split", default="all")
    p.add_argument("--records", nargs="+", help="the default's evaluation JSONs on the scored clips")
    p.add_argument("--max-clips", type=int, default=0, help="score only the split's first N clips (default: all)")
    p.add_argument("--heads", type=int, default=48, help="train-pool heads averaged into the filter (default 48)")
    p.add_argument("--noise-deg", type=float, nargs="*", default=[],
                   help="also render at the sidecar's azimuth plus one N(0, sigma^2) error per clip, each sigma "
                        "its own variant (shrink fitted with the same errors): how precise a localiser must be")
    p.add_argument("--localiser", help="an object_localiser.py checkpoint: adds the 'localiser' azimuths")
    p.add_argument("--side-gain", type=float, default=1.179, help="the default's side gain (its offline outputs)")
    p.add_argument("--streamed", metavar="BUNDLE",
                   help="the model's outputs (blends, 'model', 'the model alone') streamed through the Spatializer "
                        "with this bundle, as the held-out evaluation streams them, instead of offline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.replot:
        if not args.plot:
            p.error("--replot needs --plot PNG")
        plot_precision(json.loads(args.replot.read_text()), args.plot)
        print(f"wrote {args.plot}")
        return 0
    if args.own_head_check is not None:
        if args.own_head_check < 1 or not args.data or not args.out:
            p.error("--own-head-check needs N >= 1, --data and --out")
        ratios = own_head_check(args.data, args.split, args.own_head_check)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "x_mono_mono": ratios}, indent=1))
        print("\n".join(f"{c}: {r:.4f} x Mono-Mono" for c, r in ratios.items()))
        return 0
    missing = [f"--{k}" for k in ("checkpoint", "fit", "data", "records", "out") if not getattr(args, k)]
    if missing:
        p.error(f"needs {', '.join(missing)} (or --replot JSON --plot PNG)")
    if any(not sigma > 0 for sigma in args.noise_deg):
        p.error(f"--noise-deg values must be > 0 degrees, got {args.noise_deg}")
    flush_denormals()
    torch.set_num_threads(2)
    start = time.time()

    rng = np.random.default_rng(args.seed)
    heads = [draw_head(rng, "train") for _ in range(args.heads)]
    grid, table = side_filter_table(heads)

    generator, cfg = load_generator(args.checkpoint, mirror_average=False)
    generator.eval()
    size = tuple(cfg.model.visual_size)
    probe, held, probe_info = fit_with_held_out(generator, args.fit, size, args.seed)

    fit_clips = single_source_clips(*args.fit)
    held_clips = [c for c in fit_clips if c.name in held]
    probe_cache: Dict[Tuple[str, str], np.ndarray] = {}

    model_outputs = ModelOutputs(args.checkpoint, args.side_gain, args.streamed)
    model_cache: Dict[Tuple[str, str], np.ndarray] = {}
    pred_cache: Dict[Tuple[str, str], np.ndarray] = {}

    def model_pred(clip: Clip) -> np.ndarray:
        key = (str(clip.root), clip.name)
        if key not in pred_cache:
            pred_cache[key] = model_outputs(clip)
        return pred_cache[key]

    localiser, localiser_cache = None, {}
    if args.localiser:
        from object_localiser import load_localiser  # beside this script
        localiser = load_localiser(args.localiser)
    sources = AZIMUTH_SOURCES + (("localiser", "localiser, soft") if localiser else ())
    blend_sources = BLEND_SOURCES + (("localiser", "localiser, soft") if localiser else ())

    # "localiser, soft^P" weighs the peaks by score^P; "localiser, soft" by the power chosen below.
    soft_power = {f"localiser, soft^{power:g}": power for power in SOFT_POWERS}

    def azimuths_of(how):
        def get(clip: Clip) -> np.ndarray:
            key = (str(clip.root), clip.name)
            if how == "probe":
                if key not in probe_cache:
                    probe_cache[key] = probe_azimuths(generator, probe, clip.frame_paths(), size)
                return probe_cache[key]
            if how.startswith("localiser"):
                if key not in localiser_cache:
                    localiser_cache[key] = localiser_peaks(localiser, clip.frame_paths())
                az, scores = localiser_cache[key]
                if how == "localiser":
                    return az[:, 0]
                return soft_azimuths(az, scores, soft_power[how])
            if how == "model":
                if key not in model_cache:
                    model_cache[key] = implied_azimuths(clip.mid, model_pred(clip), grid, table, clip.frame_times)
                return model_cache[key]
            return clip.azimuths(how)
        return get

    # The shrink for the sidecar's azimuths is fitted on every fitting clip; for the probe's, on
    # the clips the probe was not fitted on (its own fitting frames would make it look surer).
    shrinks = {"truth": fit_shrink(fit_clips, grid, table, azimuths_of("truth")),
               "box": fit_shrink(fit_clips, grid, table, azimuths_of("box")),
               "probe": fit_shrink(held_clips, grid, table, azimuths_of("probe")),
               "model": fit_shrink(held_clips, grid, table, azimuths_of("model")),
               **{f"truth+{sigma:g}": fit_shrink(fit_clips, grid, table, azimuths_of(f"truth+{sigma:g}"))
                  for sigma in args.noise_deg}}

    soft_residuals = {}
    if localiser:  # the soft weights' power: the one whose shrunk side fits the fitting clips best
        hard, hard_residual = fit_shrink(fit_clips, grid, table, azimuths_of("localiser"), residual=True)
        shrinks["localiser"] = hard
        fitted = {name: fit_shrink(fit_clips, grid, table, azimuths_of(name), residual=True) for name in soft_power}
        soft_residuals = {name: residual for name, (_, residual) in fitted.items()}
        best = min(soft_residuals, key=soft_residuals.get)
        soft_residuals["localiser (the strongest peak alone)"] = hard_residual
        soft_power["localiser, soft"] = soft_power[best]
        shrinks["localiser, soft"] = fitted[best][0]
        print("soft weights, fitting residual per power: "
              + ", ".join(f"{n} {r:.4f}" for n, r in soft_residuals.items()) + f"; chosen {best}", flush=True)

    # Blends of the model's side with the rendered one, fitted on the clips the probe was not fitted on.
    blends = {how: fit_blend(held_clips, model_pred, grid, table, azimuths_of(how)) for how in blend_sources}
    pred_cache.clear()
    refs = default_records(args.records)
    clips = [c for c in single_source_clips(args.data, args.split, args.max_clips) if c.name in refs]
    if not clips:
        raise SystemExit(f"no single-source clip of {args.data}:{args.split} is in the --records")
    variants = {f"{how}, {'shrunk' if shrunk else 'g = 1'}": (how, shrinks[how] if shrunk else np.ones(N_FFT // 2 + 1))
                for how in sources for shrunk in (False, True)}
    variants.update({f"truth+{sigma:g}, shrunk": (f"truth+{sigma:g}", shrinks[f"truth+{sigma:g}"])
                     for sigma in args.noise_deg})
    per_clip: Dict[str, List[dict]] = {v: [] for v in variants}
    alone = f"the model alone, {'streamed' if args.streamed else 'offline'}"
    per_clip[alone] = []
    per_clip.update({f"blend with the model, {how}": [] for how in blends})
    for clip in tqdm(clips, desc="scored clips", unit="clip"):
        default = refs[clip.name]
        for name, (how, shrink) in variants.items():
            per_clip[name].append(score_rendered(clip, grid, table, shrink, azimuths_of(how)(clip), default))
        pred = model_pred(clip)
        # mirror-averaged: the mirrored frames' output is this one, ears swapped
        per_clip[alone].append(score_output(clip, pred, pred[::-1], default))
        for how, (a, b) in blends.items():
            per_clip[f"blend with the model, {how}"].append(
                score_blend(clip, pred, grid, table, a, b, azimuths_of(how)(clip), default))
        pred_cache.clear()

    def mean_error(name: str) -> float:
        return float(np.mean([r["mean_abs_azimuth_error_deg"] for r in per_clip[name]]))

    result = {"command": "python " + " ".join(sys.argv), "heads": heads, "probe": probe_info,
              **({"soft_power": soft_power["localiser, soft"], "soft_fit_residual": soft_residuals} if localiser else {}),
              "fit_clips": len(fit_clips), "shrink_fit_clips": {"truth": len(fit_clips), "box": len(fit_clips),
                                                                "probe": len(held_clips)},
              "shrink": {k: v.round(3).tolist() for k, v in shrinks.items()},
              "blend_weights": {how: {"model": a.round(3).tolist(), "rendered": b.round(3).tolist()}
                                for how, (a, b) in blends.items()},
              "scored_clips": len(clips), "probe_mae_deg_on_scored": mean_error("probe, g = 1"),
              "model_mae_deg_on_scored": mean_error("model, g = 1"),
              f"model_{'streamed' if args.streamed else 'offline'}_stft_x_mono_mono": summary(per_clip[alone])["stft_x_mono_mono"],
              "summary": {}, "per_clip": {}}
    groups = sorted({r["group"] for r in per_clip["truth, g = 1"]})
    for name, rows in per_clip.items():
        result["summary"][name] = {"all single-source": summary(rows),
                                   **{g: summary([r for r in rows if r["group"] == g]) for g in groups}}
        result["per_clip"][name] = [{k: r[k] for k in ("clip", "group", "stft", "spl", "mean_abs_azimuth_error_deg")}
                                    for r in rows]
    result["wall_s"] = round(time.time() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    for name, s in result["summary"].items():
        a = s["all single-source"]
        ref_dir = a["default_direction_acc"]["rate"] if a["default_direction_acc"] else float("nan")
        ref_ld = a["default_ld_ratio_median"] if a["default_ld_ratio_median"] is not None else float("nan")
        print(f"{name:18s} {a['clips']:3d} clips  STFT {a['stft_x_mono_mono']:.3f}x (default {a['default_x_mono_mono']:.3f}x, "
              f"paired {a['paired_rel']:+.1%})  direction {a['direction_acc']['rate']:.3f} (default {ref_dir:.3f})  "
              f"level ratio {a['ld_ratio_median']:.3f} (default {ref_ld:.3f})")
    print(f"wrote {args.out} ({result['wall_s']} s)")
    if args.plot:
        plot_precision(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
