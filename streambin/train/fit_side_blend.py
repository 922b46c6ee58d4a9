"""Fit a bundle's side-renderer blend weights on the engine's own streamed output.

    python -m streambin.train.fit_side_blend --bundle runs/bundle_renderer \\
        --data /work/data/blendfit --split all --out docs/results/side_blend_fit.json \\
        [--form by-part] [--validate /work/data/blendval] [--apply]

The engine plays the side mask ``w_model(f) S + w_rendered(f) H_frame(f)`` (streambin.side_renderer).
This streams every clip of each ``--data`` root's ``--split`` through the Spatializer twice, as the held-out
evaluation streams it (48 kHz, block 3, lookahead 1, the bundle's mirror averaging and side
gain): once with the model alone (``side_renderer=False``) and once with the rendered side
alone (weights 0 and 1), both resampled back to the model rate. Per bin of a 512-point STFT
(Hann, hop 128, 16 kHz) of each clip scaled by its peak (as the evaluation's metrics scale it),
the weights are the real least-squares fit of the true side ``(L - R) / 2`` by those two sides,
over every clip's frames:

    [w_model, w_rendered](f) = argmin sum_clips,t |D(f, t) - a S_model(f, t) - b S_rendered(f, t)|^2

by default pooled over 1/3-octave bands (one pair of weights per band, ``--bands-per-octave``;
0 fits every bin alone, whose weights follow noise where the two sides agree).

Two forms are fitted on the same clips (``--form`` says which one is written): ``shared``, one
weight per mask as above, and ``by-part``, one weight for each part of each side relative to the
mono ``M``, the part in phase with it, ``Re(S / M) M`` (the level difference), and the part in
quadrature (the time difference): four weights per band, written as ``(2, F)`` arrays
(streambin.side_renderer). ``--validate`` streams other train-pool sets the same way and reports
what each form's weights, the bundle's own and the model alone leave of their side's error.

Fit on train-pool scenes drawn as the scenes the engine meets are, never on an evaluation
split. ``--apply`` writes the weights into the
bundle's ``side_renderer.npz`` and records the fit in its config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy.signal import stft
from tqdm import tqdm

from streambin.train.localisation_eval import sounding_sources

N_FFT, HOP = 512, 128
FORMS = ("shared", "by-part")
#: the shared form's two weights (model, rendered) as the by-part form's four
#: (model in phase, model in quadrature, rendered in phase, rendered in quadrature)
SHARED_TO_PARTS = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
BAND_ORIGIN_HZ = 62.5
#: bands per octave the weights are fitted over by default (train-pool validation: 1/3-octave
#: weights left less of the side's error on unseen train-pool clips than per-bin ones, see
#: docs/results.md, "The blend's weights")
DEFAULT_BANDS_PER_OCTAVE = 3


def _spectrum(x: np.ndarray, rate: int) -> np.ndarray:
    """``(bins, T)`` complex STFT of ``x (n,)`` (Hann 512, hop 128)."""
    return stft(x, fs=rate, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)[2]


def split_parts(side: np.ndarray, mono: np.ndarray):
    """``(in_phase, quadrature)`` of a side spectrum relative to the mono's, both shaped as
    ``side``: ``in_phase = Re(side / mono) mono`` per cell (what makes one ear louder:
    ``|M + S|^2 - |M - S|^2 = 4 Re(S conj(M))``), ``quadrature = side - in_phase``. Where the mono
    is zero the whole side counts as quadrature."""
    power = np.abs(mono) ** 2
    ratio = np.divide(np.real(side * np.conj(mono)), power, out=np.zeros(power.shape), where=power > 0)
    in_phase = ratio * mono
    return in_phase, side - in_phase


def octave_bands(n_bins: int, sample_rate: int, per_octave: int, origin_hz: float = BAND_ORIGIN_HZ) -> np.ndarray:
    """``(n_bins,)`` int: the band of each bin of an rfft grid at ``sample_rate`` (bin k at
    ``k * sample_rate / (2 * (n_bins - 1))`` Hz): bands ``1 / per_octave`` octave wide counted from
    ``origin_hz``, the bins below it in band 0. Band indices are consecutive from 0."""
    if n_bins < 2 or per_octave < 1 or not origin_hz > 0:
        raise ValueError(f"need n_bins >= 2, per_octave >= 1 and origin_hz > 0, got {n_bins}, {per_octave}, {origin_hz}")
    freqs = np.arange(n_bins) * sample_rate / (2 * (n_bins - 1))
    band = np.floor(per_octave * np.log2(np.maximum(freqs, origin_hz) / origin_hz)).astype(int)
    return np.unique(band, return_inverse=True)[1].reshape(-1)


class BlendNormalEquations:
    """The normal equations of the per-bin least-squares fit of a true side by ``n_terms``
    sides: ``add`` the truth ``(bins, T)`` and the terms (``n_terms`` of ``(bins, T)``, all
    complex, cut to their common frames) clip by clip; ``solve`` for real weights per bin."""

    def __init__(self, bins: int, n_terms: int = 2):
        self.gram = np.zeros((bins, n_terms, n_terms))
        self.rhs = np.zeros((bins, n_terms))
        self.energy = 0.0

    def add(self, truth: np.ndarray, terms) -> None:
        k = self.rhs.shape[1]
        if len(terms) != k:
            raise ValueError(f"expected {k} terms, got {len(terms)}")
        n = min(truth.shape[1], *(t.shape[1] for t in terms))
        truth, terms = truth[:, :n], [t[:, :n] for t in terms]
        for i in range(k):
            self.rhs[:, i] += np.sum(np.real(terms[i] * np.conj(truth)), axis=1)
            for j in range(i, k):
                g = np.sum(np.real(terms[i] * np.conj(terms[j])), axis=1)
                self.gram[:, i, j] += g
                if j != i:
                    self.gram[:, j, i] += g
        self.energy += float(np.sum(np.abs(truth) ** 2))

    def __iadd__(self, other: "BlendNormalEquations") -> "BlendNormalEquations":
        self.gram += other.gram
        self.rhs += other.rhs
        self.energy += other.energy
        return self

    def solve(self, bands: Optional[np.ndarray] = None):
        """The weights, one ``(bins,)`` array per term. ``bands``: ``(bins,)`` band index per bin
        (e.g. :func:`octave_bands`): one weight per band and term, fitted over the band's bins
        together, which keeps the weights from following noise where neighbouring bins' fits
        cannot tell the terms apart."""
        gram, rhs = self.gram, self.rhs
        if bands is not None:
            bands = np.asarray(bands)
            if bands.shape != (rhs.shape[0],):
                raise ValueError(f"bands must be ({rhs.shape[0]},) band indices, got {bands.shape}")
            n = int(bands.max()) + 1
            pooled_gram = np.zeros((n,) + gram.shape[1:])
            pooled_rhs = np.zeros((n, rhs.shape[1]))
            np.add.at(pooled_gram, bands, gram)
            np.add.at(pooled_rhs, bands, rhs)
            gram, rhs = pooled_gram[bands], pooled_rhs[bands]
        k = rhs.shape[1]
        w = np.linalg.solve(gram + 1e-9 * np.eye(k), rhs[..., None])[..., 0]
        return tuple(w[:, i] for i in range(k))

    def tied(self, tie: np.ndarray) -> "BlendNormalEquations":
        """The equations of ``k`` weights that stand for these ``n_terms`` through ``tie``
        (``(n_terms, k)``: term ``i``'s weight is ``tie[i] @ w``), e.g. :data:`SHARED_TO_PARTS`."""
        tie = np.asarray(tie, float)
        if tie.ndim != 2 or tie.shape[0] != self.rhs.shape[1]:
            raise ValueError(f"tie must be ({self.rhs.shape[1]}, k), got {tie.shape}")
        out = BlendNormalEquations(self.rhs.shape[0], tie.shape[1])
        out.gram = np.einsum("ia,fij,jb->fab", tie, self.gram, tie)
        out.rhs = self.rhs @ tie
        out.energy = self.energy
        return out

    def residual(self, *weights: np.ndarray) -> float:
        """Squared error left by ``weights`` (one ``(bins,)`` per term) as a fraction of the true
        side's energy."""
        w = np.stack(weights, axis=1)
        err = self.energy - np.sum(2 * np.sum(w * self.rhs, axis=1) - np.einsum("fi,fij,fj->f", w, self.gram, w))
        return float(err / max(self.energy, 1e-20))


def _items(data, split: str, max_clips: int):
    """``[(dataset, index)]`` of every clip of one generated set's root or several (``max_clips`` per root)."""
    from streambin.train.data import SimBinauralDataset, stored_frame_size

    roots = [Path(data)] if isinstance(data, (str, Path)) else [Path(d) for d in data]
    items = []
    for root in roots:
        dataset = SimBinauralDataset(root, split, mode="eval", visual_size=stored_frame_size(root))
        n_root = len(dataset) if not max_clips else min(max_clips, len(dataset))
        if n_root < 1:
            raise ValueError(f"no clips in {root}:{split}")
        items += [(dataset, i) for i in range(n_root)]
    return roots, items


def _normal_equations(items, model_alone, rendered_alone, progress: bool, desc: str):
    """The by-part form's normal equations over ``items`` (see the module docstring), and the
    number of sounding sources of each clip."""
    rate = model_alone.model_rate
    normal = BlendNormalEquations(N_FFT // 2 + 1, 4)
    sources = []
    for dataset, i in tqdm(items, desc=desc, unit="clip", disable=not progress):
        item = dataset[i]
        truth = item["audio"].numpy().astype(np.float64)
        mono = (0.5 * (truth[0] + truth[1])).astype(np.float32)
        scale = 1.0 / max(float(np.max(np.abs(truth))), 1e-20)   # the metrics' peak normalisation
        frames, fps = item["frames"], float(item["fps"])
        mono_spectrum = _spectrum(mono.astype(np.float64) * scale, rate)
        terms = []
        for predictor in (model_alone, rendered_alone):
            out = np.asarray(predictor(mono, frames, fps, "true"), np.float64)
            side = _spectrum(0.5 * (out[0] - out[1]) * scale, rate)
            n = min(side.shape[1], mono_spectrum.shape[1])
            terms += split_parts(side[:, :n], mono_spectrum[:, :n])
        normal.add(_spectrum(0.5 * (truth[0] - truth[1]) * scale, rate), terms)
        sources.append(len(sounding_sources(item["meta"])) if item.get("meta") else 0)
    return normal, sources


def fit(bundle: str, data, split: str, max_clips: int = 0, sample_rate: int = 48000,
        block_frames: int = 3, lookahead_frames: int = 1, side_gain: Optional[float] = None,
        progress: bool = True, bands_per_octave: int = DEFAULT_BANDS_PER_OCTAVE, form: str = "shared",
        validate=None, validate_split: str = "all") -> dict:
    """The weights and what they leave of the side (see the module docstring). ``data``: one
    generated set's root or several (their clips pooled; ``max_clips`` per root);
    ``bands_per_octave``: fit one pair of weights per band this wide (0: per bin); ``form``: the
    form whose weights are returned as ``blend_model`` and ``blend_rendered`` (``(F,)`` shared,
    ``(2, F)`` by part; both forms are fitted and reported under ``forms``); ``validate``: other
    sets' roots (their ``validate_split``) to report the residuals on. A bundle whose blend
    follows a room detector is fitted the same way (one set of weights everywhere: :func:`apply`
    then removes the room weights), its own residual reported as None."""
    if bands_per_octave < 0:
        raise ValueError(f"bands_per_octave must be >= 0 (0: per bin), got {bands_per_octave}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    from streambin.train.evaluate_streaming import StreamedPredictor

    kw = dict(sample_rate=sample_rate, block_frames=block_frames, lookahead_frames=lookahead_frames,
              side_gain=side_gain)
    model_alone = StreamedPredictor(bundle, side_renderer=False, **kw)
    rendered_alone = StreamedPredictor(bundle, side_renderer=True, **kw)
    renderer = rendered_alone.spatializer.visual.side_renderer
    # the bundle's weights as the four parts' (held (2, F, 1) whatever the table's form)
    current = tuple(x.astype(np.float64) for x in (*renderer.w_model[:, :, 0], *renderer.w_rendered[:, :, 0]))
    n_bins = current[0].size
    if n_bins != N_FFT // 2 + 1:
        raise ValueError(f"{bundle}: the blend has {n_bins} bins; this fit's analysis has {N_FFT // 2 + 1}")
    renderer.set_blend(np.zeros(n_bins), np.ones(n_bins))
    roots, items = _items(data, split, max_clips)
    normal, sources = _normal_equations(items, model_alone, rendered_alone, progress, "fit clips")
    bands = octave_bands(n_bins, model_alone.model_rate, bands_per_octave) if bands_per_octave else None
    shared = SHARED_TO_PARTS @ np.stack(normal.tied(SHARED_TO_PARTS).solve(bands))   # (4, F)
    by_part = np.stack(normal.solve(bands))
    checks = {"fit clips": normal}
    if validate:
        val_roots, val_items = _items(validate, validate_split, 0)
        checks["validation clips"] = _normal_equations(val_items, model_alone, rendered_alone, progress,
                                                       "validation clips")[0]
    own = None if renderer.room_detector is not None else current   # one set cannot stand for a room blend
    alone = (np.ones(n_bins), np.ones(n_bins), np.zeros(n_bins), np.zeros(n_bins))
    forms = {}
    for name, w in (("shared", shared), ("by-part", by_part)):
        forms[name] = {"blend_model": (w[0] if name == "shared" else w[:2]).tolist(),
                       "blend_rendered": (w[2] if name == "shared" else w[2:]).tolist(),
                       "side_residual": {k: eq.residual(*w) for k, eq in checks.items()}}
    chosen = forms[form]
    return {"bundle": str(bundle), "data": " ".join(str(r) for r in roots), "split": split, "clips": len(items),
            "sounding_sources_per_clip": {str(k): sources.count(k) for k in sorted(set(sources))},
            "bands_per_octave": bands_per_octave, "form": form,
            "settings": {"sample_rate": sample_rate, "block_frames": block_frames, "lookahead_frames": lookahead_frames,
                         "side_gain": model_alone.spatializer.side_gain},
            "blend_model": chosen["blend_model"], "blend_rendered": chosen["blend_rendered"],
            "side_residual": {"model alone": normal.residual(*alone),
                              "bundle's weights before": None if own is None else normal.residual(*own),
                              "fitted weights": chosen["side_residual"]["fit clips"]},
            "forms": forms,
            **({"validation": {"data": " ".join(str(r) for r in val_roots), "split": validate_split,
                               "clips": len(val_items),
                               "side_residual": {"model alone": checks["validation clips"].residual(*alone),
                                                 "bundle's weights before": (None if own is None else
                                                                             checks["validation clips"].residual(*own)),
                                                 **{f"{k} form": v["side_residual"]["validation clips"]
                                                    for k, v in forms.items()}}}}
               if validate else {})}


def apply(bundle: Path, result: dict, json_path: Optional[Path]) -> None:
    """Write the fitted weights into ``bundle``'s table and record the fit in its config.

    ``result``: ``blend_model``, ``blend_rendered`` (F,) or (2, F) and what the fit was (``data``, ``split``,
    ``clips``, ``side_residual``); for weights that follow a room detector also
    ``blend_model_room``, ``blend_rendered_room`` (F,) (the weights in a room; the first two are then
    free field's) and ``room_detector``: ``{"weights", "feature_mean", "feature_std"}``
    (streambin.room_detector). Without them, any room weights the table had are removed. An
    optional ``power`` sets the section's peak weighting (``score ** power``) and an optional
    ``hfov_deg`` the field of view its peaks' columns become azimuths at, as the weights were
    fitted with. The table is checked as the engine loads it before anything is written."""
    from streambin.bundle import load_bundle, read_config, write_config
    from streambin.camera import check_hfov_deg
    from streambin.side_renderer import ROOM_TABLE_KEYS, load_table

    b = load_bundle(bundle)
    if b.side_renderer is None:
        raise ValueError(f"{bundle} has no side renderer")
    power, hfov_deg = result.get("power"), result.get("hfov_deg")
    if power is not None and not (np.isfinite(power) and power > 0):
        raise ValueError(f"power must be a finite number > 0, got {power!r}")
    if hfov_deg is not None:
        hfov_deg = check_hfov_deg(hfov_deg)
    table = b.side_renderer["table"]
    with np.load(table) as z:
        arrays = {k: z[k] for k in z.files if k not in ROOM_TABLE_KEYS}
    arrays["blend_model"] = np.asarray(result["blend_model"], np.float32)
    arrays["blend_rendered"] = np.asarray(result["blend_rendered"], np.float32)
    if "room_detector" in result:
        det = result["room_detector"]
        arrays.update(blend_model_room=np.asarray(result["blend_model_room"], np.float32),
                      blend_rendered_room=np.asarray(result["blend_rendered_room"], np.float32),
                      room_weights=np.asarray(det["weights"], np.float64),
                      room_feature_mean=np.asarray(det["feature_mean"], np.float64),
                      room_feature_std=np.asarray(det["feature_std"], np.float64))
    staged = Path(table).with_name(Path(table).stem + ".staged.npz")
    np.savez(staged, **arrays)
    try:
        load_table(staged, b.n_bins, b.sample_rate, b.hop)   # raises on a bad fit: the bundle stays as it was
        staged.replace(table)
    finally:
        staged.unlink(missing_ok=True)
    cfg = read_config(bundle)
    if power is not None:
        cfg["side_renderer"]["power"] = float(power)
    if hfov_deg is not None:
        cfg["side_renderer"]["hfov_deg"] = float(hfov_deg)
    cfg["side_renderer"].setdefault("source", {})["blend_fit"] = {
        "data": result["data"], "split": result["split"], "clips": result["clips"],
        "result": None if json_path is None else str(json_path), "side_residual": result["side_residual"],
        **({"room_detector": result.get("room_detector_fit", "")} if "room_detector" in result else {})}
    write_config(bundle, cfg)



def main(argv: Optional[Sequence[str]] = None) -> int:
    from streambin.train.cpu_numerics import flush_denormals

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="a bundle with a side renderer")
    p.add_argument("--data", required=True, type=Path, nargs="+",
                   help="generated sets of train-pool scenes (their clips pooled)")
    p.add_argument("--split", default="all")
    p.add_argument("--max-clips", type=int, default=0, help="fit on the split's first N clips (default: all)")
    p.add_argument("--bands-per-octave", type=int, default=DEFAULT_BANDS_PER_OCTAVE,
                   help=f"one pair of weights per band this many to the octave (default {DEFAULT_BANDS_PER_OCTAVE}; "
                        "0: per bin)")
    p.add_argument("--form", choices=FORMS, default="shared",
                   help="the weights written and returned: one per mask (shared, as shipped) or one per part "
                        "of each mask, in phase with the mono and in quadrature (by-part); both are fitted")
    p.add_argument("--validate", type=Path, nargs="+", default=None,
                   help="other train-pool sets (split 'all') to report each form's residual on")
    p.add_argument("--side-gain", type=float, default=None, help="the Spatializer's (default: the bundle's)")
    p.add_argument("--out", type=Path, help="write the fit (weights, residuals) as JSON")
    p.add_argument("--apply", action="store_true", help="write the weights into the bundle")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    flush_denormals()
    t0 = time.time()
    if args.bands_per_octave < 0:
        p.error(f"--bands-per-octave must be >= 0 (0: per bin), got {args.bands_per_octave}")
    result = fit(args.bundle, args.data, args.split, args.max_clips, side_gain=args.side_gain,
                 progress=not args.no_progress, bands_per_octave=args.bands_per_octave, form=args.form,
                 validate=args.validate)
    result["command"] = "python -m streambin.train.fit_side_blend " + " ".join(sys.argv[1:] if argv is None else argv)
    result["wall_s"] = round(time.time() - t0, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    if args.apply:
        apply(Path(args.bundle), result, args.out)
    shown = ("clips", "sounding_sources_per_clip", "side_residual", "validation", "wall_s")
    print(json.dumps({k: result[k] for k in shown if k in result} | {
        "forms": {k: v["side_residual"] for k, v in result["forms"].items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
