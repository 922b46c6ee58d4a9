"""Should the side renderer's blend weights depend on how sure the localiser is, or on the model?

The engine plays the side mask ``w_model(f) S + w_rendered(f) H_frame(f)`` (streambin.side_renderer),
with one pair of weights per bin fitted by least squares over all frames. Least squares shrinks
both sides where the rendered side is often wrong; but a frame whose localiser sees one clear
object is more often right than one where four peaks score alike, and the model's own side
implies an azimuth that errs differently from the localiser's. This fits blends of the forms

- ``fixed``: ``a(f) S + b(f) R`` (the shipped form; refitted on the fitting clips), and the same
  with one pair of weights per 1/3- or 1/6-octave band (``fixed, 1/3 octave``: the normal
  equations of the band's bins pooled, streambin.train.fit_side_blend.octave_bands),
- ``share, linear``: ``(a + a' c) S + (b + b' c) R`` with ``c`` the strongest peak's share of the
  weights (``score^4`` normalised, as the engine weighs the peaks; 1 where one peak dominates),
- ``score, linear``: the same with ``c`` the strongest peak's mirror-averaged heat score,
- ``share, 3 bins``: a pair of weights per tercile of the share (edges from the fitting clips),
- ``azimuth, 3 bins, 1/3 octave``: a pair of weights per 1/3-octave band and per tercile of the
  strongest peak's distance from the centre (near the centre a wrong peak more often puts the
  side on the wrong ear),
- ``room oracle, 2 bins, 1/3 octave``: a pair of weights per 1/3-octave band for clips in a room
  and another for free field, the condition read from the sidecar (an oracle the engine does not
  have: how much a reverberation estimate from the sound could gain at most),
- ``room estimate, linear, 1/3 octave`` (``--room-detector JSON``): ``(a + a' p) S + (b + b' p) R``
  per 1/3-octave band, ``p`` the probability of a room that ``room_detector.py``'s fit gives from the
  mono's last two seconds before each video frame (what the engine could compute),
- ``room and azimuth, 3 bins, 1/3 octave`` (with ``--room-detector``): the room estimate's form
  with its four weights per tercile of the strongest peak's distance from the centre (12 per band),
  and ``room and share, 3 bins, 1/3 octave`` the same per tercile of the strongest peak's share
  (where the picture holds several objects the localiser's choice is less often right), and
  ``room and objects, 2 bins, 1/3 octave`` for frames where the localiser sees one object (at most
  one peak scoring 0.5) and where it sees several, and ``room and agreement, 2 bins, 1/3 octave``
  for STFT frames where the model's side and the rendered side agree in sign and where they
  disagree (:func:`agreement`: what the engine could compute per block from its own masks),
- ``fixed, 1/3 octave, model prior S deg`` (``--model-prior-deg S ...``): each peak's weight
  ``score^4`` times a Gaussian (sigma S degrees) of its distance from the azimuth the model's
  output implies over the second before the frame (hrtf_prior.implied_azimuths),

where ``S`` is the model's side streamed through the Spatializer as the held-out evaluation
streams it (48 kHz, block 3, lookahead 1, mirror-averaged, side gain 1.179, renderer off) and
``R`` the mono through the average head's filter weighed over the four strongest peaks, as in
``hrtf_prior.py`` (offline: the per-frame filter interpolated between video frames). The form is
chosen on train-pool clips alone: two-fold on the fitting clips (fitted on one half, the squared
error left on the other), and on ``--validate`` sets (train-pool clips as long as the scored
ones, not fitted on). Every form is then scored on ``--data`` (single-source clips) beside the
bundle's own weights (``shipped``), paired against them. ``--apply-form`` writes a fixed form's
weights into a copy of the bundle (``fit_side_blend.apply``, which records the fit), or the room
estimate's, with the detector, when that was fitted as the engine runs it
(``room_detector.py --analysis stream``): the weights in free field (``p = 0``) and in a room.

Model outputs and localiser peaks are cached under ``--cache`` (per set and clip), so a rerun only
fits and scores.

    PYTHONPATH=. python scripts/experiments/confidence_blend.py --bundle streambin/models/default \\
        --localiser runs/objloc3/last.pt --fit /work/data/probefit:train --fit-clips 1500 \\
        --validate /work/data/blendfit:all /work/data/blendfit_leg:all \\
        --data /work/data/ood_val:all /work/data/simbin:test --cache /work/data/cache/confidence_blend \\
        --model-prior-deg 5 10 20 40 --out docs/results/confidence_blend.json \\
        --apply-form "fixed, 1/3 octave" --apply-to runs/bundle_blend13
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from scipy.signal import lfilter
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from hrtf_prior import (HFOV_DEG, HOP, N_FFT, SAMPLE_RATE, Clip, filters_at, implied_azimuths,  # noqa: E402
                        localiser_peaks, scene_group, single_source_clips, spectrum, summary, with_side)
from streambin.camera import azimuth_to_column, column_to_azimuth  # noqa: E402
from streambin.cli_options import PER_CLIP, camera_hfov_arg  # noqa: E402
from streambin.side_renderer import WEIGH_PEAKS_BY  # noqa: E402
from streambin.train import localisation_eval as L  # noqa: E402
from streambin.train import metrics as M  # noqa: E402
from streambin.train.average_head import side_filter_table  # noqa: E402
from streambin.train.cpu_numerics import flush_denormals  # noqa: E402
from streambin.train.fit_side_blend import BlendNormalEquations, octave_bands  # noqa: E402
from streambin.train.sim.heads import draw_head  # noqa: E402

BINS = N_FFT // 2 + 1
POWER = 4.0          # the engine's peak weighting, score ** 4
AGREEMENT_BAND_HZ = (500.0, 8000.0)   # where both sides carry the level difference
AGREEMENT_TAU_S = 0.25                # the agreement's causal smoothing
FORMS = ("fixed", "fixed, 1/3 octave", "fixed, 1/6 octave", "share, linear", "score, linear", "share, 3 bins",
         "azimuth, 3 bins, 1/3 octave", "room oracle, 2 bins, 1/3 octave")


def bands_of(form: str) -> Optional[np.ndarray]:
    if "octave" not in form:
        return None
    return octave_bands(BINS, 16000, int(form.split("1/")[1].split()[0]))


def agreement(model_side: np.ndarray, rendered: np.ndarray, hop_s: float = HOP / SAMPLE_RATE,
              band_hz=AGREEMENT_BAND_HZ, tau_s: float = AGREEMENT_TAU_S) -> np.ndarray:
    """``(T,)`` in [-1, 1]: whether the model's side and the rendered side point the same way.

    ``model_side``, ``rendered``: ``(bins, T)`` complex side spectra at 16 kHz (the model's side
    is its side mask times the mid, the rendered one the filter times the mid, so their product
    is ``S conj(H) |mid|^2``). Per frame the real inner product over ``band_hz`` and its
    normaliser ``sum |S| |H| |mid|^2`` are smoothed by a causal exponential average (time constant
    ``tau_s``), and their ratio returned (0 where both are silent or nothing is rendered)."""
    freqs = np.arange(model_side.shape[0]) * SAMPLE_RATE / N_FFT
    band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    s, r = model_side[band], rendered[band]
    inner = np.real(s * np.conj(r)).sum(axis=0)
    norm = (np.abs(s) * np.abs(r)).sum(axis=0)
    alpha = 1.0 - np.exp(-hop_s / tau_s)
    smooth = [lfilter([alpha], [1.0, alpha - 1.0], v) for v in (inner, norm)]
    return np.where(smooth[1] > 0, smooth[0] / np.maximum(smooth[1], 1e-300), 0.0)


class ClipInputs:
    """What every form needs of one clip: the model's streamed output, the localiser's peaks,
    and from them the per-STFT-frame terms."""

    def __init__(self, clip: Clip, pred: np.ndarray, azimuths: np.ndarray, scores: np.ndarray,
                 room_detector: Optional["RoomDetector"] = None, power: float = POWER):
        self.clip, self.pred, self.room_detector = clip, pred, room_detector
        weights = np.maximum(scores, 1e-12) ** power
        self.weights = weights / weights.sum(axis=1, keepdims=True)
        self.azimuths = azimuths
        self.share = self.weights[:, 0]
        self.score = scores[:, 0]
        self.scores = scores
        self._cache: Dict[tuple, np.ndarray] = {}
        self._spectra: Dict[tuple, tuple] = {}   # (sign, scale) -> STFTs, kept until forget_spectra()

    def weights_for(self, form: str, grid, table, sign: float = 1.0) -> np.ndarray:
        """``(n, 4)`` peak weights: the engine's ``score ** 4``, or for a ``model prior S deg``
        form, times a Gaussian (sigma S degrees) of each peak's distance from the azimuth the
        model's own output implies over the second before the frame (hrtf_prior.implied_azimuths;
        the mirrored frames' from the model's mirrored output)."""
        if "model prior" not in form:
            return self.weights
        sigma = float(form.split("model prior ")[1].split()[0])
        key = ("implied", sign)
        if key not in self._cache:
            pred = self.pred if sign > 0 else self.pred[::-1]
            self._cache[key] = implied_azimuths(self.clip.mid, pred, grid, table, self.clip.frame_times)
        implied = self._cache[key][:, None]
        w = self.weights * np.exp(-0.5 * ((sign * self.azimuths - implied) / sigma) ** 2)
        return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)

    def confidence(self, form: str) -> np.ndarray:
        if form.startswith("azimuth"):     # how far off the centre the strongest peak is, degrees
            return np.abs(self.azimuths[:, 0])
        if form.startswith("room oracle"):  # 1 in a room, 0 in free field: from the sidecar, not the engine
            return np.full(self.azimuths.shape[0], 1.0 if self.clip.meta.get("room") else 0.0)
        if form.startswith("room estimate"):
            if "room" not in self._cache:
                self._cache["room"] = self.room_detector(self.clip.mid, self.clip.frame_times)
            return self._cache["room"]
        if form.startswith("objects"):   # how many objects the localiser sees: peaks scoring 0.5 or more
            return (self.scores >= 0.5).sum(axis=1).astype(np.float64)
        return self.score if form.startswith("score") else self.share

    def per_stft_frame(self, values: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Per-video-frame ``values (n, ...)`` interpolated to the STFT frames' ``times`` (held at
        the ends), as hrtf_prior.filters_along interpolates the filters."""
        n = values.shape[0]
        pos = np.interp(times, self.clip.frame_times, np.arange(n, dtype=np.float64))
        lo = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
        hi = np.minimum(lo + 1, n - 1)
        w = (pos - lo).reshape((-1,) + (1,) * (values.ndim - 1))
        return (1 - w) * values[lo] + w * values[hi]

    def terms(self, form: str, grid, table, edges=None, sign: float = 1.0, scale: float = 1.0) -> np.ndarray:
        """``(k, bins, T)`` complex terms of ``form`` for the clip times ``scale``; ``sign`` -1:
        the mirrored frames' (the model's side and the azimuths negated, the confidence not)."""
        key = (sign, scale)
        if key not in self._spectra:    # every form of a clip starts from the same two STFTs
            pred = self.pred if sign > 0 else self.pred[::-1]
            self._spectra[key] = spectrum(self.clip.mid * scale) + (spectrum(0.5 * (pred[0] - pred[1]) * scale)[1],)
        t, mid, model_side = self._spectra[key]
        n, k = self.azimuths.shape
        per_frame = np.einsum("nkb,nk->nb", filters_at(grid, table, (sign * self.azimuths).ravel()).reshape(n, k, -1),
                              self.weights_for(form, grid, table, sign))
        rendered = self.per_stft_frame(per_frame, t).T * mid
        T = min(model_side.shape[1], rendered.shape[1])
        model_side, rendered, t = model_side[:, :T], rendered[:, :T], t[:T]
        if form.startswith("fixed"):
            return np.stack([model_side, rendered])
        if form.startswith("room and "):   # the room estimate's linear form per bin of another confidence
            other = form.split(",")[0][len("room and "):]          # "azimuth", "share", "objects", "agreement"
            p = self.per_stft_frame(self.confidence("room estimate"), t)
            c = (agreement(model_side, rendered) if other == "agreement"
                 else self.per_stft_frame(self.confidence(other), t))
            which = np.digitize(c, edges[other])
            masks = [(which == i).astype(np.float64) for i in range(len(edges[other]) + 1)]
            return np.stack([m * model_side for m in masks] + [p * m * model_side for m in masks]
                            + [m * rendered for m in masks] + [p * m * rendered for m in masks])
        c = self.per_stft_frame(self.confidence(form), t)
        if ", linear" in form:
            return np.stack([model_side, c * model_side, rendered, c * rendered])
        kind_edges = edges[form.split(",")[0]]
        which = np.digitize(c, kind_edges)     # 0 .. len(kind_edges)
        masks = [(which == i).astype(np.float64) for i in range(len(kind_edges) + 1)]
        return np.stack([m * model_side for m in masks] + [m * rendered for m in masks])

    def forget_spectra(self) -> None:
        """Drop the cached STFTs (kept only while one clip's forms are worked through)."""
        self._spectra.clear()

    def truth_side(self, scale: float) -> np.ndarray:
        return spectrum(0.5 * (self.clip.target[0] - self.clip.target[1]) * scale)[1]

    def output(self, form, w, grid, table, edges=None, sign: float = 1.0) -> np.ndarray:
        """``(2, n)``: the model's mid plus/minus the blended side."""
        pred = self.pred if sign > 0 else self.pred[::-1]
        terms = self.terms(form, grid, table, edges, sign)
        return with_side(0.5 * (pred[0] + pred[1]), np.einsum("fk,kft->ft", w, terms))


class RoomDetector:
    """A ``room_detector.py`` fit: the probability, per video frame, that the scene is in a room,
    from the mono's last ``WINDOW_S`` seconds before the frame (0.5 while less than a quarter
    second has been heard)."""

    def __init__(self, path: Path):
        from room_detector import RATE, WINDOW_S, features
        d = json.loads(Path(path).read_text())
        self.w, self.mean, self.std = (np.asarray(d[k]) for k in ("weights", "feature_mean", "feature_std"))
        kind, analysis = d.get("features", "basic"), d.get("analysis", "experiment")
        self.features = lambda piece: features(piece, kind, analysis)
        self.rate, self.window = RATE, WINDOW_S
        self.fit = d
        # "stream": the engine's own detector (streambin.room_detector) on the engine's frames
        self.engine = None
        if analysis == "stream":
            from streambin.room_detector import RoomDetector as EngineDetector
            self.engine = EngineDetector(self.w, self.mean, self.std, n_bins=257, sample_rate=RATE, hop=160)

    def __call__(self, mono: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
        if self.engine is not None:   # as a RoomTracker gives it after the frames complete by each time
            from streambin import dsp
            from streambin.room_detector import probability_track
            frames = dsp.StreamingSTFT(512, 400, 160).push(np.asarray(mono, np.float32))
            ends = np.floor(np.asarray(frame_times) * self.rate / 160).astype(int)
            return probability_track(self.engine, frames, np.minimum(ends, len(frames)))
        out = np.full(frame_times.size, 0.5)
        for i, t in enumerate(frame_times):
            end = int(round(t * self.rate))
            piece = mono[max(0, end - int(self.window * self.rate)):end]
            if piece.size >= self.rate // 4 and np.max(np.abs(piece)) > 0:
                z = (self.features(piece) - self.mean) / self.std
                out[i] = 1 / (1 + np.exp(-(z @ self.w[:-1] + self.w[-1])))
        return out


def at_field_of_view(azimuths_at_hfov: np.ndarray, hfov_deg: float) -> np.ndarray:
    """Azimuths (degrees) read at :data:`HFOV_DEG` of view, read again at ``hfov_deg``: the same
    image columns through a pinhole camera of another focal length."""
    if hfov_deg == HFOV_DEG:
        return azimuths_at_hfov
    width = 2.0     # any width: the columns' share of it is what carries over
    return column_to_azimuth(azimuth_to_column(azimuths_at_hfov, width, HFOV_DEG), width, hfov_deg)


def load_inputs(clips: Sequence[Clip], cache: Path, bundle: str, localiser_path: str,
                room_detector: Optional[RoomDetector] = None, weigh_by: str = "heat",
                model_cache: Optional[Path] = None, power: float = POWER,
                hfov_deg: Union[float, str] = HFOV_DEG) -> List[ClipInputs]:
    """The clips' model outputs and localiser peaks, from ``cache`` or computed (and cached);
    ``model_cache``: another cache of the same bundle's outputs to take them from (only the
    localiser's peaks are then computed); ``power``: the peaks weigh ``score ** power``;
    ``hfov_deg``: the field of view the peaks' columns are turned into azimuths with (the cache
    holds them at :data:`HFOV_DEG`), or ``"clip"``: each clip's own camera's, from its sidecar
    (a user who knows the lens)."""
    from streambin.train.data import SimBinauralDataset, stored_frame_size
    from streambin.train.evaluate_streaming import StreamedPredictor
    sys.path.insert(0, str(Path(__file__).parent))
    from object_localiser import load_localiser

    predictor = localiser = None
    datasets: Dict[str, tuple] = {}
    out = []
    for clip in tqdm(clips, desc="model + localiser", unit="clip"):
        path = cache / clip.root.name / f"{clip.name}.npz"
        if not path.exists():
            if localiser is None:
                localiser = load_localiser(localiser_path)
            reuse = model_cache / clip.root.name / f"{clip.name}.npz" if model_cache else None
            if reuse is not None and reuse.exists():
                with np.load(reuse) as z:
                    pred = z["pred"]
            else:
                if predictor is None:
                    predictor = StreamedPredictor(bundle, sample_rate=48000, block_frames=3, lookahead_frames=1,
                                                  mirror_average=True, side_gain=1.179, side_renderer=False)
                key = str(clip.root)
                if key not in datasets:
                    ds = SimBinauralDataset(clip.root, "all", mode="eval", visual_size=stored_frame_size(clip.root))
                    datasets[key] = (ds, {c: i for i, c in enumerate(ds.clips)})
                ds, index = datasets[key]
                item = ds[index[clip.name]]
                pred = np.asarray(predictor(clip.mid.astype(np.float32), item["frames"], float(item["fps"]), "true"),
                                  np.float32)
            az, scores = localiser_peaks(localiser, clip.frame_paths(), weigh_by)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, pred=pred, azimuths=az, scores=scores)
        with np.load(path) as z:
            view = float(clip.meta["hfov_deg"]) if hfov_deg == PER_CLIP else hfov_deg
            out.append(ClipInputs(clip, z["pred"].astype(np.float64), at_field_of_view(z["azimuths"], view),
                                  z["scores"], room_detector, power))
    return out


def terms_kind(form: str) -> str:
    """The form without its banding: forms that differ only in banding share their terms."""
    return "fixed" if form == "shipped" else form.replace(", 1/3 octave", "").replace(", 1/6 octave", "")


def fit(inputs: Sequence[ClipInputs], kinds: Sequence[str], grid, table, edges) -> Dict[str, BlendNormalEquations]:
    """The normal equations of each of ``kinds`` (see :func:`terms_kind`) over ``inputs``, each
    clip at its truth's peak (as the metrics scale it), in one pass over the clips."""
    normal = {}
    for x in inputs:
        scale = 1.0 / max(float(np.max(np.abs(x.clip.target))), 1e-12)
        truth = x.truth_side(scale)
        for kind in kinds:
            terms = x.terms(kind, grid, table, edges, scale=scale)
            normal.setdefault(kind, BlendNormalEquations(BINS, len(terms))).add(truth, terms)
        x.forget_spectra()
    return normal


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="the shipped bundle (its model streamed, renderer off; its weights)")
    p.add_argument("--localiser", required=True, help="object_localiser.py checkpoint the bundle's renderer came from")
    p.add_argument("--fit", required=True, help="DATA_ROOT:SPLIT of train-pool clips")
    p.add_argument("--fit-clips", type=int, default=800, help="first N single-source clips of --fit")
    p.add_argument("--data", nargs="+", required=True, help="DATA_ROOT:SPLIT sets to score")
    p.add_argument("--validate", nargs="*", default=[],
                   help="DATA_ROOT:SPLIT sets of train-pool clips (not fitted on) whose side error each form's "
                        "weights leave is reported: as long as the scored clips, where the fitting clips are short")
    p.add_argument("--max-clips", type=int, default=0, help="score only each set's first N clips (default: all)")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--model-cache", type=Path,
                   help="another --cache of the same --bundle: its model outputs are reused (another localiser)")
    p.add_argument("--weigh-peaks-by", choices=WEIGH_PEAKS_BY, default="heat",
                   help="weigh the peaks by their heat or by the localiser's sounding map (default heat)")
    p.add_argument("--power", type=float, default=POWER,
                   help=f"the peaks weigh score ** POWER, as the bundle's side_renderer 'power' (default {POWER:g})")
    p.add_argument("--hfov-deg", type=lambda v: camera_hfov_arg(v, per_clip=True), default=HFOV_DEG,
                   help=f"the field of view the peaks' columns become azimuths at, as the bundle's side_renderer "
                        f"'hfov_deg' (default {HFOV_DEG:g}), or 'clip': each clip's own camera's (a known lens; "
                        "not for --apply-form)")
    p.add_argument("--forms", nargs="+",
                   help="fit and score only these forms (default: all; 'shipped' is always scored)")
    p.add_argument("--heads", type=int, default=48)
    p.add_argument("--seed", type=int, default=0, help="the heads' draw (hrtf_prior.py's default)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model-prior-deg", type=float, nargs="*", default=[],
                   help="also forms whose peaks are weighed by their distance from the model's implied azimuth "
                        "(Gaussian of these sigmas, degrees), with 1/3-octave fixed weights")
    p.add_argument("--room-detector", type=Path,
                   help="a room_detector.py --out JSON: adds the form 'room estimate, linear, 1/3 octave'")
    p.add_argument("--reference", type=Path,
                   help="an earlier run's --out JSON: its weights of the forms fitted here are scored beside "
                        "them as 'FORM (reference)', fitted on nothing here (e.g. weights fitted on other "
                        "clips or another localiser's peaks)")
    p.add_argument("--apply-form", help="write this form's weights into a copy of --bundle (a fixed form)")
    p.add_argument("--apply-to", type=Path, help="the copy's directory (must not exist)")
    args = p.parse_args(argv)
    forms = FORMS + tuple(f"fixed, 1/3 octave, model prior {s:g} deg" for s in args.model_prior_deg)
    room_detector = RoomDetector(args.room_detector) if args.room_detector else None
    if room_detector:
        forms += ("room estimate, linear, 1/3 octave", "room and azimuth, 3 bins, 1/3 octave",
                  "room and share, 3 bins, 1/3 octave", "room and objects, 2 bins, 1/3 octave",
                  "room and agreement, 2 bins, 1/3 octave")
    if args.forms:
        unknown = [f for f in args.forms if f not in forms]
        if unknown:
            p.error(f"--forms: unknown {unknown}; these are {forms}")
        forms = tuple(args.forms)
    if args.apply_form and args.apply_form not in forms:
        p.error(f"--apply-form must be one of {forms}")
    engine_forms = [f for f in forms if f.startswith("fixed") and "model prior" not in f]
    if room_detector is not None and room_detector.engine is not None:
        engine_forms.append("room estimate, linear, 1/3 octave")
    if bool(args.apply_form) != bool(args.apply_to) or (args.apply_form and args.apply_form not in engine_forms):
        p.error(f"--apply-form (one the engine runs: {engine_forms}; the room estimate needs a detector fitted with "
                "room_detector.py --analysis stream) and --apply-to go together")
    if args.apply_to and args.apply_to.exists():
        p.error(f"{args.apply_to} exists")
    flush_denormals()
    start = time.time()
    rng = np.random.default_rng(args.seed)
    grid, table = side_filter_table([draw_head(rng, "train") for _ in range(args.heads)])

    if not args.power > 0:
        p.error("--power must be > 0")
    if args.hfov_deg == PER_CLIP and args.apply_form:
        p.error("--hfov-deg clip reads each clip's own view: a bundle has one, so it cannot be applied")
    peak_source = (args.weigh_peaks_by, args.model_cache, args.power, args.hfov_deg)
    root, split = args.fit.rsplit(":", 1)
    fit_clips = single_source_clips(Path(root), split)[: args.fit_clips]
    fit_inputs = load_inputs(fit_clips, args.cache, args.bundle, args.localiser, room_detector, *peak_source)
    shares = np.concatenate([x.share for x in fit_inputs])
    off_centre = np.concatenate([np.abs(x.azimuths[:, 0]) for x in fit_inputs])
    edges = {"share": np.quantile(shares, [1 / 3, 2 / 3]), "azimuth": np.quantile(off_centre, [1 / 3, 2 / 3]),
             "room oracle": np.array([0.5]), "objects": np.array([1.5]),   # one object seen, or several
             "agreement": np.array([0.0])}    # the sides disagree (< 0) or agree
    print(f"|azimuth| of the strongest peak on the fitting frames: terciles at {edges['azimuth'].round(1).tolist()}")
    print(f"share of the strongest peak on the fitting frames: terciles at {edges['share'].round(3).tolist()}, "
          f"median {np.median(shares):.3f}", flush=True)

    # Two-fold choice on the fitting clips: fit on one half, squared error left on the other.
    halves = [fit_inputs[0::2], fit_inputs[1::2]]
    weights, cv = {}, {}
    # forms that differ in banding share their equations; "fixed" also scores the shipped weights
    kinds = sorted({terms_kind(f) for f in forms} | {"fixed"})
    parts = [fit(h, kinds, grid, table, edges) for h in tqdm(halves, desc="fitting halves", unit="half")]
    whole = {}
    for kind in kinds:
        whole[kind] = copy.deepcopy(parts[0][kind])
        whole[kind] += parts[1][kind]
    for form in forms:
        kind, bands = terms_kind(form), bands_of(form)
        cv[form] = float(np.mean([parts[1 - i][kind].residual(*parts[i][kind].solve(bands)) for i in range(2)]))
        weights[form] = np.stack(whole[kind].solve(bands), axis=1)     # (bins, k)
    with np.load(Path(args.bundle) / "side_renderer.npz") as z:
        if z["blend_model"].ndim != 1:   # its forms weigh whole masks, not their parts
            raise SystemExit(f"{args.bundle}: blend weights per part of the mask {z['blend_model'].shape} are not "
                             "comparable with these forms; use a bundle with one weight per bin")
        shipped = np.stack([z["blend_model"], z["blend_rendered"]], axis=1).astype(np.float64)
    cv["shipped (no fit)"] = whole["fixed"].residual(*shipped.T)
    # weights fitted elsewhere, scored as they are: {name: (form, (bins, k) weights)}
    unfitted = {"shipped": ("fixed", shipped)}
    if args.reference:
        earlier = json.loads(args.reference.read_text())["weights"]
        for form in forms:
            if form in earlier:
                unfitted[f"{form} (reference)"] = (form, np.asarray(earlier[form], np.float64))
                cv[f"{form} (reference, no fit)"] = whole[terms_kind(form)].residual(*unfitted[f"{form} (reference)"][1].T)
        if len(unfitted) == 1:
            p.error(f"--reference {args.reference} has weights of none of the forms {forms}")
    print("fitting clips, side's squared error left (two-fold): "
          + ", ".join(f"{f} {r:.4f}" for f, r in cv.items()), flush=True)
    validation, validation_per_set = {}, {}
    if args.validate:   # train-pool clips as long as the scored ones, none used in the fit
        per_set = {}
        for spec in args.validate:
            root, split = spec.rsplit(":", 1)
            val_inputs = load_inputs(single_source_clips(Path(root), split), args.cache, args.bundle, args.localiser,
                                     room_detector, *peak_source)
            per_set[spec] = (len(val_inputs), fit(val_inputs, kinds, grid, table, edges))
        for form in tuple(unfitted) + forms:
            kind = terms_kind(unfitted[form][0] if form in unfitted else form)
            w = (unfitted[form][1] if form in unfitted else weights[form]).T
            pooled = None
            for spec, (_, equations_of_set) in per_set.items():
                validation_per_set.setdefault(spec, {})[form] = equations_of_set[kind].residual(*w)
                if pooled is None:
                    pooled = copy.deepcopy(equations_of_set[kind])
                else:
                    pooled += equations_of_set[kind]
            validation[form] = pooled.residual(*w)
        print(f"validation clips ({sum(n for n, _ in per_set.values())}), side's squared error left: "
              + ", ".join(f"{f} {r:.4f}" for f, r in validation.items()), flush=True)
        for spec, res in validation_per_set.items():
            print(f"  {spec} ({per_set[spec][0]} clips): " + ", ".join(f"{f} {r:.4f}" for f, r in res.items()),
                  flush=True)

    variants = {**unfitted, **{f: (f, weights[f]) for f in forms}}
    result = {"command": "python " + " ".join(sys.argv), "fit": args.fit, "fit_clips": len(fit_clips),
              "power": args.power, "hfov_deg": args.hfov_deg, "weigh_peaks_by": args.weigh_peaks_by,
              "share_terciles": edges["share"].tolist(), "azimuth_terciles_deg": edges["azimuth"].tolist(), "two_fold_residual": cv,
              "validate": args.validate, "validation_residual": validation,
              "validation_residual_per_set": validation_per_set,
              "weights": {f: w.round(4).tolist() for f, w in weights.items()}, "scored": {}}
    for spec in args.data:
        root, split = spec.rsplit(":", 1)
        inputs = load_inputs(single_source_clips(Path(root), split, args.max_clips), args.cache, args.bundle,
                             args.localiser, room_detector, *peak_source)
        rows: Dict[str, List[dict]] = {v: [] for v in variants}
        for x in tqdm(inputs, desc=f"scoring {spec}", unit="clip"):
            clip = x.clip
            grey = np.stack([clip.mid, clip.mid])
            ref = None
            for name, (form, w) in variants.items():
                own = x.output(form, w, grid, table, edges)
                mirrored = x.output(form, w, grid, table, edges, sign=-1.0)
                row = {"clip": clip.name, "group": scene_group(clip.meta),
                       "stft": M.stft_distance(own, clip.target), "spl": M.spl_distance(own, clip.target),
                       "mono_mono_stft": M.stft_distance(grey, clip.target),
                       "localisation": L.clip_record(clip.name, clip.meta, clip.target, own, grey, mirrored)}
                ref = ref or row
                row["default"] = ref
                rows[name].append(row)
            x.forget_spectra()
        groups = sorted({r["group"] for r in rows["shipped"]})
        result["scored"][spec] = {
            name: {"all single-source": summary(r), **{g: summary([x for x in r if x["group"] == g]) for g in groups},
                   "per_clip": [{"clip": x["clip"], "stft": x["stft"]} for x in r]}
            for name, r in rows.items()}
        for name in variants:
            s = result["scored"][spec][name]["all single-source"]
            print(f"{spec} {name:14s} {s['clips']} clips STFT {s['stft_x_mono_mono']:.3f}x  paired vs shipped "
                  f"{s['paired_rel']:+.1%} ± {s['paired_sem'] / np.mean([r['default']['stft'] for r in rows[name]]):.1%}  "
                  f"direction {s['direction_acc']['rate'] if s['direction_acc'] else float('nan'):.3f}  "
                  f"level ratio {s['ld_ratio_median'] if s['ld_ratio_median'] is not None else float('nan'):.3f}",
                  flush=True)
    result["wall_s"] = round(time.time() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    if args.apply_form:
        import shutil

        from streambin.train.fit_side_blend import apply
        shutil.copytree(args.bundle, args.apply_to)
        w = weights[args.apply_form]
        fitted = {"data": args.fit, "split": f"first {len(fit_clips)} single-source clips, form {args.apply_form!r}",
                  "clips": len(fit_clips), "side_residual": {"two-fold": cv[args.apply_form]}, "power": args.power,
                  "hfov_deg": args.hfov_deg}
        if w.shape[1] == 2:
            fitted.update(blend_model=w[:, 0].tolist(), blend_rendered=w[:, 1].tolist())
        else:   # (a + a' p) S + (b + b' p) R: the weights in free field (p = 0) and in a room (p = 1)
            fitted.update(blend_model=w[:, 0].tolist(), blend_rendered=w[:, 2].tolist(),
                          blend_model_room=(w[:, 0] + w[:, 1]).tolist(), blend_rendered_room=(w[:, 2] + w[:, 3]).tolist(),
                          room_detector={k: room_detector.fit[k] for k in ("weights", "feature_mean", "feature_std")},
                          room_detector_fit=str(args.room_detector))
        apply(args.apply_to, fitted, args.out)
        print(f"wrote {args.apply_form!r} weights into {args.apply_to}")
    print(f"wrote {args.out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
