"""How much of a data set's side a mask on the mono could explain: the headroom of the STFT distance.

Usage::

    python -m streambin.train.side_headroom --data data/ood_val --split all --max-clips 100 \\
        [--segments 1.0 0.5] [--other-heads 6 --mix validation] [--out headroom.json]

Every model streambin ships predicts the binaural output as masks on the mono spectrogram; its
mid ``(L + R) / 2`` is the input and all of the STFT distance lies in the side ``(L - R) / 2``.
This measures, from the truth alone, how far such a model could go. For each clip (peak-normalised
as the metric does), with ``M`` the STFT of the mid and ``S`` that of the side (the metric's
512 / 160 / 400), the complex filter per frequency bin ``H(f)`` that minimises
``sum_t |S - H M|^2`` over a stretch of frames is ``sum conj(M) S / sum |M|^2``, and it leaves

    residual = sum |S|^2 - |sum conj(M) S|^2 / sum |M|^2.

"clip" fits one filter per clip: what a model that knew the clip's head, room and source
direction exactly, and held them fixed, would reach. ``--segments`` fits one filter per stretch
of that many seconds (it can follow a moving source or a change of which source sounds), a
looser bound. Both are fitted on the frames they are scored on, so they are optimistic by about
one part in the number of frames per stretch.

No model can know the listener's head from the picture. ``--other-heads K`` (sets made by
``python -m streambin.train.simulate``) renders each clip's scene again, the same sources,
positions and room, through K heads of the train pool instead of its own (drawn per clip; never
its own), fits the filter on each rendering and applies it to the clip: "one other head" uses the
first, "other heads (K)" their mean, the best a model could do that knew the scene exactly but
not the head. The re-rendering needs the options the set was generated with (``--mix``,
``--no-rooms``, ``--no-moving``, ...; simulate's defaults otherwise, ``--rooms --moving``
assumed); every clip's re-rendering is checked against its file, and a mismatch is an error
that says so.

Reported, like ``python -m streambin.train.evaluate``'s "x Mono-Mono": the mean over clips of the
residual divided by the mean over clips of the side energy (each in the metric's units,
``sum / (n_bins * frames)``; the metric peak-normalises the prediction on its own, left out
here), over all clips and per kind of scene (lateral single source, near the centre, moving, two
sources; ``--by-room`` splits each into its clips in a room and its anechoic ones). ``--beside
EVAL_JSON`` sets a model's STFT distance over Mono-Mono's on the same clips
(an evaluation's ``--out``) beside them.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from streambin.train import metrics as M

FRAMES_PER_SECOND = 100  # the metric's hop, 160 samples at 16 kHz


def _mid_side_stft(audio: np.ndarray):
    """Peak-normalised ``(mid, side)`` STFTs, each ``(n_bins, frames)`` complex."""
    x = M.peak_normalize(audio)
    return M.stft(0.5 * (x[0] + x[1])), M.stft(0.5 * (x[0] - x[1]))


def _filter(mid: np.ndarray, side: np.ndarray) -> np.ndarray:
    """The least-squares complex filter per bin from ``mid`` to ``side`` over all frames: ``(n_bins,)``."""
    power = np.sum(np.abs(mid) ** 2, axis=1)
    return np.divide(np.sum(np.conj(mid) * side, axis=1), power, out=np.zeros(len(power), complex),
                     where=power > 0)


def _residual(mid: np.ndarray, side: np.ndarray, h: np.ndarray) -> float:
    """``sum |side - h mid|^2`` for one filter ``h`` ``(n_bins,)`` over the frames given."""
    return float(np.sum(np.abs(side - h[:, None] * mid) ** 2))


def _check_audio(audio) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] != 2 or audio.shape[1] < 1 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float (2, n) left/right with n >= 1, got {audio.shape} {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio has non-finite samples")
    return audio


def other_head_residuals(audio: np.ndarray, renderings: Sequence[np.ndarray]) -> Dict[str, float]:
    """The clip's residual under filters fitted on its scene rendered through other heads.

    audio: ``(2, n)`` float (left, right) at 16 kHz; renderings: ``(2, n)`` each, the same scene
    through other heads. Returns ``{"one other head": r, "other heads (K)": r}`` in the metric's
    units (the first rendering's filter; the mean of all K filters).
    """
    audio = _check_audio(audio)
    if not renderings:
        raise ValueError("need at least one rendering through another head")
    mid, side = _mid_side_stft(audio)
    filters = []
    for r in renderings:
        r = _check_audio(r)
        if r.shape != audio.shape:
            raise ValueError(f"each rendering must have the clip's shape {audio.shape}, got {r.shape}")
        filters.append(_filter(*_mid_side_stft(r)))
    units = 1.0 / side.size
    return {"one other head": _residual(mid, side, filters[0]) * units,
            f"other heads ({len(filters)})": _residual(mid, side, np.mean(filters, axis=0)) * units}


class SceneRerenderer:
    """Renders a generated clip's scene again through other heads (``--other-heads``).

    Args mirror ``python -m streambin.train.simulate``'s: ``mix``, ``room_fraction`` and
    ``moving_fraction`` (0 for a set made without ``--rooms`` / ``--moving``), ``max_sources``,
    the scene ``options`` (default: everything varies) and asset ``paths`` (default: installed).
    """

    def __init__(self, mix: str = "random", room_fraction: float = 0.5, moving_fraction: float = 0.3,
                 max_sources: int = 3, options=None, paths=None):
        from streambin.train.simulate import MIXES

        if mix not in MIXES:
            raise ValueError(f"mix must be one of {MIXES}, got {mix!r}")
        self.mix, self.room_fraction, self.moving_fraction = mix, float(room_fraction), float(moving_fraction)
        self.max_sources, self.options, self.paths = int(max_sources), options, paths
        self._libs: Dict[tuple, Any] = {}

    def _library(self, pool: str, kind_pools: Optional[Dict[str, str]] = None):
        key = (pool, tuple(sorted((kind_pools or {}).items())))
        if key not in self._libs:
            from streambin.train.sim.assets import AssetPaths
            from streambin.train.sim.scene import Library
            self._libs[key] = Library(self.paths or AssetPaths(), pool=pool, options=self.options,
                                      kind_pools=kind_pools)
        return self._libs[key]

    def render(self, meta: dict, audio: np.ndarray, head_ids: Sequence[str]) -> List[np.ndarray]:
        """The scene of the clip whose sidecar is ``meta`` and whose file holds ``audio`` (``(2, n)``
        at 16 kHz), through each of ``head_ids``: ``(2, n)`` float32 each. ValueError when the
        clip's own head does not give back ``audio`` (the set was made with other options)."""
        from streambin.train.sim.scene import render_audio
        from streambin.train.simulate import sample_clip_scene

        for key in ("index", "seed", "seconds", "pool", "output_scale", "head"):
            if key not in meta:
                raise ValueError(f"clip {meta.get('clip')!r}: its sidecar has no {key!r}; only sets made by "
                                 "python -m streambin.train.simulate can be rendered again")
        lib = self._library(meta["pool"], meta.get("kind_pools"))
        scene, rng = sample_clip_scene(lib, meta["index"], meta["seed"], meta["seconds"], self.max_sources,
                                       self.room_fraction, self.moving_fraction, self.mix)
        own, _ = render_audio(scene, lib, copy.deepcopy(rng))
        own = own * np.float32(meta["output_scale"])
        # The file is PCM16: one quantisation step is 3e-5.
        if own.shape != audio.shape or scene.head != meta["head"] or np.max(np.abs(own - audio)) > 2e-4:
            raise ValueError(f"clip {meta.get('clip')!r} does not render again as written: give the options the "
                             "set was generated with (--mix, --no-rooms, --no-moving, --max-sources)")
        return [render_audio(dataclasses.replace(scene, head=h), lib, copy.deepcopy(rng))[0] for h in head_ids]


def side_residuals(audio: np.ndarray, segment_frames: Sequence[Optional[int]]) -> Dict[str, Any]:
    """One clip's side energy and the residual of the best filter per stretch.

    audio: ``(2, n)`` float (left, right) at 16 kHz, n >= 1; segment_frames: stretch lengths in
    STFT frames, ``None`` for the whole clip. Returns ``{"side": float, "residual": [float, ...]}``
    in the metric's units (one residual per entry of ``segment_frames``).
    """
    mid, side = _mid_side_stft(_check_audio(audio))
    n_bins, n_frames = side.shape
    units = 1.0 / (n_bins * n_frames)
    residuals = []
    for seg in segment_frames:
        if seg is not None and seg < 1:
            raise ValueError(f"segment lengths must be >= 1 frame (or None for the whole clip), got {seg}")
        step = n_frames if seg is None else int(seg)
        r = 0.0
        for a in range(0, n_frames, step):
            m, s = mid[:, a:a + step], side[:, a:a + step]
            r += _residual(m, s, _filter(m, s))
        residuals.append(r * units)
    return {"side": float(np.sum(np.abs(side) ** 2)) * units, "residual": residuals}


def headroom(dataset, segments_s: Sequence[float] = (), max_clips: Optional[int] = None,
             progress: bool = True, other_heads: int = 0, rerenderer: Optional[SceneRerenderer] = None,
             head_seed: int = 0) -> Dict[str, Any]:
    """The residual ratios over the first ``max_clips`` clips of ``dataset`` (a
    :class:`streambin.train.data.SimBinauralDataset`; its audio and sidecars are read).

    segments_s: stretch lengths in seconds (> 0) besides the whole clip. other_heads: K > 0 adds
    the other-head bounds (module docstring), the scenes rendered again by ``rerenderer``
    (default: a :class:`SceneRerenderer` with simulate's defaults), the heads of clip ``i`` drawn
    from ``default_rng([head_seed, i])``. Returns ``{"ratio": {"clip": r, "<s> s": r, ...},
    "n_clips", "per_clip": [...]}``.
    """
    from tqdm import tqdm

    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be >= 1 or None, got {max_clips}")
    for s in segments_s:
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"segment lengths must be seconds > 0, got {s!r}")
    n = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    if n == 0:
        raise ValueError("the data set has no clips")
    if other_heads < 0:
        raise ValueError(f"other_heads must be >= 0, got {other_heads}")
    names = ["clip"] + [f"{s:g} s" for s in segments_s]
    frames = [None] + [max(1, int(round(s * FRAMES_PER_SECOND))) for s in segments_s]
    if other_heads:
        from streambin.train.sim.heads import head_ids
        rerenderer = rerenderer or SceneRerenderer()
        train_heads = head_ids("train")
    per_clip = []
    for i in tqdm(range(n), desc="side headroom", unit="clip", disable=not progress):
        audio, meta = dataset.clip_audio(i), dataset.meta(i)
        r = side_residuals(audio, frames)
        row = {"clip": dataset.clips[i], "scene": scene_label(meta), "room": bool(meta and meta.get("room")),
               "side": r["side"],
               "residual": dict(zip(names, r["residual"]))}
        if other_heads:
            if meta is None:
                raise ValueError(f"clip {dataset.clips[i]!r} has no sidecar (meta/<clip>.json): it cannot be "
                                 "rendered again through other heads")
            pool = [h for h in train_heads if h != meta.get("head")]
            heads = [str(h) for h in np.random.default_rng([head_seed, i]).choice(pool, other_heads, replace=False)]
            row["residual"].update(other_head_residuals(audio, rerenderer.render(meta, audio, heads)))
            row["other_heads"] = heads
        per_clip.append(row)
    side = float(np.mean([c["side"] for c in per_clip]))
    if side <= 0:
        raise ValueError("no clip has a side (every clip is mono): there is nothing to explain")
    ratio = {k: float(np.mean([c["residual"][k] for c in per_clip])) / side for k in per_clip[0]["residual"]}
    return {"ratio": ratio, "n_clips": n, "mean_side": side, "per_clip": per_clip}


def scene_label(meta: Optional[dict]) -> str:
    """What kind of scene a clip is, as the localisation measures sort them: "lateral single
    source" or why not ("moving source", "2 sounding sources", "|azimuth| < 10 deg", "no sidecar")."""
    from streambin.train.localisation_eval import qualify

    reason = qualify(meta)["reason"]
    return "lateral single source" if reason == "ok" else reason


def by_scene(result: Dict[str, Any], evaluation: Optional[dict] = None,
             by_room: bool = False) -> List[Dict[str, Any]]:
    """The ratios per scene kind (and "all"), each ``{"scene", "clips", <bound>: ratio, ...}``;
    ``by_room`` splits each kind into its clips in a room and its anechoic ones;
    with ``evaluation`` (a ``python -m streambin.train.evaluate --out`` result on the same data)
    also ``"model"``: its STFT distance over Mono-Mono's on the clips both hold (mean over mean,
    as the evaluation reports it), and only those clips count."""
    rows = result["per_clip"]
    scored = None
    if evaluation is not None:
        try:
            scored = {c["clip"]: (c["metrics"]["model"]["stft"], c["metrics"]["mono_mono"]["stft"])
                      for c in evaluation["per_clip"]}
        except (KeyError, TypeError) as exc:
            raise ValueError("the evaluation has no per-clip model and mono_mono STFT distances (write one with "
                             "python -m streambin.train.evaluate --out)") from exc
        rows = [r for r in rows if r["clip"] in scored]
        if not rows:
            raise ValueError("the evaluation scored none of these clips")
    groups: Dict[str, list] = {"all": rows}
    for r in rows:
        kind = r["scene"] + ((", in a room" if r.get("room") else ", anechoic") if by_room else "")
        groups.setdefault(kind, []).append(r)
    out = []
    for scene, members in groups.items():
        side = sum(r["side"] for r in members)
        row = {"scene": scene, "clips": len(members)}
        for k in members[0]["residual"]:
            row[k] = sum(r["residual"][k] for r in members) / side if side > 0 else float("nan")
        if scored is not None:
            row["model"] = sum(scored[r["clip"]][0] for r in members) / sum(scored[r["clip"]][1] for r in members)
        out.append(row)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streambin.train.side_headroom", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set root directory (python -m streambin.train.simulate --out)")
    p.add_argument("--split", default="all", help="split to measure (default all)")
    p.add_argument("--max-clips", type=int, default=None, help="use only the first N clips")
    p.add_argument("--segments", type=float, nargs="*", default=[1.0],
                   help="also fit one filter per stretch of these many seconds (default 1.0)")
    g = p.add_argument_group("the filter fitted through other heads (sets made by streambin.train.simulate)")
    g.add_argument("--other-heads", type=int, default=0, metavar="K",
                   help="render each scene again through K train-pool heads (module docstring)")
    g.add_argument("--mix", default="random", help="the set's --mix (random or validation)")
    g.add_argument("--no-rooms", action="store_true", help="the set was made without --rooms")
    g.add_argument("--no-moving", action="store_true", help="the set was made without --moving")
    g.add_argument("--room-fraction", type=float, default=0.5, help="the set's --room-fraction")
    g.add_argument("--moving-fraction", type=float, default=0.3, help="the set's --moving-fraction")
    g.add_argument("--max-sources", type=int, default=3, help="the set's --max-sources")
    p.add_argument("--by-room", action="store_true", help="split each scene kind into room and anechoic clips")
    p.add_argument("--beside", default=None, metavar="EVAL_JSON",
                   help="a model's evaluation of the same clips (streambin.train.evaluate --out): its STFT "
                        "distance over Mono-Mono's beside the bounds, per scene kind")
    p.add_argument("--out", default=None, help="JSON file for the ratios and the per-clip residuals")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from streambin.train.data import SimBinauralDataset

    try:
        evaluation = None
        if args.beside:  # read first: a bad file should not wait for the measurement
            with open(args.beside) as f:
                evaluation = json.load(f)
        dataset = SimBinauralDataset(args.data, args.split, mode="eval")
        rerenderer = SceneRerenderer(args.mix, 0.0 if args.no_rooms else args.room_fraction,
                                     0.0 if args.no_moving else args.moving_fraction, args.max_sources)
        result = headroom(dataset, args.segments, args.max_clips, progress=not args.no_progress,
                          other_heads=args.other_heads, rerenderer=rerenderer)
        result["by_scene"] = by_scene(result, evaluation, by_room=args.by_room)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        print(f"side_headroom: error: {exc}", file=sys.stderr)
        return 1
    result.update(data=str(args.data), split=args.split, beside=args.beside)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    table = result["by_scene"]
    cols = [k for k in table[0] if k not in ("scene", "clips")]
    print(f"residual over the side (x Mono-Mono), {result['n_clips']} clips of {args.data} ({args.split}), "
          "one column per fitted filter (python -m streambin.train.side_headroom --help)"
          + ("; 'model': the evaluation's STFT distance over Mono-Mono's" if evaluation is not None else ""))
    print("| scene | clips | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for row in table:
        scene = row["scene"].replace("|", "\\|")  # "|azimuth| < 10 deg" inside a Markdown table
        print(f"| {scene} | {row['clips']} | " + " | ".join(f"{row[k]:.3f}" for k in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
