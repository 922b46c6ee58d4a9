"""Localisation measures: does the output put a source on the side the picture shows it?

The papers' metrics (STFT, envelope, ...) barely move when a model ignores the picture. These
measures ask directly whether the left/right balance of the output follows the picture. They
are computed from three predictions of each clip by the same engine: with the true frames,
with every frame mirrored left-right, and with every frame a uniform grey image (uint8 128).

Level difference of a binaural signal ``x`` (2, n) float (left, right), over the whole clip::

    LD(x) = 10 log10( sum_t x_R(t)^2 / sum_t x_L(t)^2 )   [dB; > 0: right louder]

(energies floored at 1e-30 so silence gives 0 dB). Its sign convention matches our azimuth's
(positive to the listener's right). Over a whole clip it is the level-weighted average of the
short-time level differences, so loud passages dominate, for the truth and the prediction alike.

Which clips count (:func:`qualify`, the one place this is decided), from the sidecar:

1. *single source*: exactly one **sounding** source. Sources with ``"silent": true`` (visible
   distractors that make no sound) are not sources here; old sidecars have no ``"silent"`` and
   all their sources sound.
2. *static*: that source has ``"moving": false`` and its per-frame ``azimuth_deg`` spans at
   most :data:`STATIC_SPAN_DEG` degrees.
3. *lateral*: ``|azimuth| >= MIN_AZIMUTH_DEG`` (10 deg), the azimuth being the mean of its
   per-frame values.

A clip meeting all three is a *lateral single-source clip*; the others (moving, several or no
sounding sources, centre sources, no sidecar) are skipped by measures 1-3 with the reason kept.
The scene kind is the sidecar's ``"scene_kind"`` ("composite": cut-outs pasted on a
background, "photograph": whole natural photograph); old sidecars have none and are cut-out
composites.

Measures (:func:`summarize`):

1. ``direction_acc``: over lateral single-source clips, the fraction with
   ``sign(LD(pred)) == sign(azimuth)`` (an LD of exactly 0 is never right); per scene kind and
   overall, with the binomial standard error ``sqrt(p (1 - p) / n)``.
2. ``mirror_flip_rate``: over lateral single-source clips, the fraction whose output with
   mirrored frames has the opposite, non-zero sign: ``sign(LD(mirrored)) == -sign(LD(pred)) != 0``.
3. ``ld_ratio_median``: over lateral single-source clips whose target is clearly lateral,
   ``|LD(target)| >= MIN_TARGET_LD_DB`` (1 dB, the threshold of
   :func:`streambin.train.metrics.direction_accuracy`; a ratio to a near-zero truth, e.g. a bass
   source in a reverberant room, says nothing), the median of the SIGNED ratio
   ``LD(pred) / LD(target)`` (a prediction on the wrong side gives a negative ratio). 1 is the
   true magnitude.
4. ``grey_bias``: over ALL scored clips (the audio content does not matter for it), the LD of
   the output with grey frames: ``mean |LD|`` (dB, the size of the bias) and the signed mean.

The truth's own direction accuracy (``sign(LD(target)) == sign(azimuth)``) is reported as a
check of the data and of these rules: it should be 1, or close to it in reverberant rooms.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

MIN_AZIMUTH_DEG = 10.0
# A source counts as static when its azimuth varies by at most this over the clip.
STATIC_SPAN_DEG = 0.5
# The level-difference ratio counts clips whose true level difference is at least this (dB).
MIN_TARGET_LD_DB = 1.0
SCENE_KINDS = ("composite", "photograph")  # always reported, even with no clip
DEFAULT_SCENE_KIND = "composite"  # old sidecars: cut-outs on a background photograph
_ENERGY_FLOOR = 1e-30


def level_difference_db(x) -> float:
    """Right-minus-left level of ``x`` (2, n) float (left, right) over the whole clip, in dB:
    ``10 log10(sum x_R^2 / sum x_L^2)``, each energy floored at 1e-30. Positive: right louder."""
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[0] != 2 or a.shape[1] < 1 or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"x must be a float array of shape (2, n) (left, right) with n >= 1, got shape "
                         f"{a.shape} dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError("x must be finite (2, n) float")
    energy = np.sum(a.astype(np.float64) ** 2, axis=1)
    return float(10.0 * np.log10(max(energy[1], _ENERGY_FLOOR) / max(energy[0], _ENERGY_FLOOR)))


def scene_kind(meta: Optional[Mapping]) -> str:
    """The clip's scene kind: the sidecar's ``"scene_kind"``, else "composite" (old sidecars)."""
    if not meta:
        return DEFAULT_SCENE_KIND
    kind = meta.get("scene_kind", DEFAULT_SCENE_KIND)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"sidecar scene_kind must be a non-empty string such as {SCENE_KINDS}, got {kind!r}")
    return kind


def sounding_sources(meta: Mapping) -> List[Mapping]:
    """The sidecar's sources that make sound (``"silent"`` absent or false)."""
    sources = meta.get("sources")
    if not isinstance(sources, list):
        raise ValueError(f"sidecar must have a 'sources' list, got {type(sources).__name__}")
    return [s for s in sources if not s.get("silent", False)]


def qualify(meta: Optional[Mapping]) -> Dict[str, Any]:
    """Decide whether a clip is a lateral single-source clip (module docstring, rules 1-3).

    meta: the clip's sidecar dict (old or new layout) or None.
    Returns ``{"qualifies": bool, "reason": str ("ok" or why not), "scene_kind": str,
    "azimuth_deg": float | None (the sounding source's mean azimuth, single-source clips only)}``.
    """
    out = {"qualifies": False, "reason": "no sidecar", "scene_kind": scene_kind(meta), "azimuth_deg": None}
    if not meta:
        return out
    sounding = sounding_sources(meta)
    if len(sounding) != 1:
        out["reason"] = f"{len(sounding)} sounding sources"
        return out
    src = sounding[0]
    az = np.atleast_1d(np.asarray(src.get("azimuth_deg", []), dtype=np.float64))
    if az.size == 0 or not np.all(np.isfinite(az)):
        raise ValueError(f"sounding source {src.get('name')!r} needs finite azimuth_deg values, got {az.tolist()}")
    out["azimuth_deg"] = float(az.mean())
    if src.get("moving", False) or float(az.max() - az.min()) > STATIC_SPAN_DEG:
        out["reason"] = "moving source"
    elif abs(out["azimuth_deg"]) < MIN_AZIMUTH_DEG:
        out["reason"] = f"|azimuth| < {MIN_AZIMUTH_DEG:g} deg"
    else:
        out.update(qualifies=True, reason="ok")
    return out


def clip_record(clip: str, meta: Optional[Mapping], target, pred, grey, mirrored=None) -> Dict[str, Any]:
    """One clip's localisation record.

    target, pred, grey: (2, n) float left/right: the ground truth, the output with the true
    frames and the output with grey frames. mirrored: the output with mirrored frames, needed
    for lateral single-source clips (``qualify(meta)["qualifies"]``), ignored otherwise.
    Returns ``qualify(meta)`` plus ``clip`` and the level differences (dB) ``ld_target_db``,
    ``ld_pred_db``, ``ld_grey_db`` and ``ld_mirrored_db`` (None for a clip that does not qualify).
    """
    q = qualify(meta)
    rec = {"clip": str(clip), **q, "ld_target_db": level_difference_db(target),
           "ld_pred_db": level_difference_db(pred), "ld_grey_db": level_difference_db(grey),
           "ld_mirrored_db": None}
    if q["qualifies"]:
        if mirrored is None:
            raise ValueError(f"clip {clip}: a lateral single-source clip needs the mirrored-frame output (2, n)")
        rec["ld_mirrored_db"] = level_difference_db(mirrored)
    return rec


def binomial_rate(hits: Sequence[bool]) -> Dict[str, Any]:
    """``{"rate", "sem", "n"}`` of a list of hits: the share, its binomial standard error
    ``sqrt(p (1 - p) / n)``, and n (rate and sem NaN when n is 0)."""
    n = len(hits)
    p = float(np.mean(hits)) if n else float("nan")
    return {"rate": p, "sem": math.sqrt(p * (1 - p) / n) if n else float("nan"), "n": n}


def on_right_side(record: Mapping, key: str = "ld_pred_db") -> bool:
    """Whether a clip record's level difference (``key``: the output's, or ``"ld_target_db"`` the
    truth's) has the sign of its source's azimuth: the direction rows' rule, however small it is."""
    return bool(np.sign(record[key]) == np.sign(record["azimuth_deg"]))


def summarize(records: Sequence[Mapping]) -> Dict[str, Any]:
    """The four measures (module docstring) from :func:`clip_record` records.

    Returns ``{"direction_acc": {"overall" | <scene kind>: {rate, sem, n}},
    "target_direction_acc": same for the truth, "mirror_flip_rate": {rate, sem, n},
    "ld_ratio_median": float, "ld_ratio_n": int, "grey_bias_abs_db": float,
    "grey_bias_signed_db": float, "grey_n": int, "n_clips": int, "n_lateral_single": int,
    "skipped": {reason: count}}``. Rates over no clip are ``nan``.
    """
    lateral = [r for r in records if r["qualifies"]]
    kinds = list(SCENE_KINDS) + sorted({r["scene_kind"] for r in records} - set(SCENE_KINDS))

    def direction(key):
        by_kind = {k: binomial_rate([on_right_side(r, key) for r in lateral if r["scene_kind"] == k]) for k in kinds}
        return {"overall": binomial_rate([on_right_side(r, key) for r in lateral]), **by_kind}

    flips = [np.sign(r["ld_mirrored_db"]) == -np.sign(r["ld_pred_db"]) != 0 for r in lateral]
    ratios = [r["ld_pred_db"] / r["ld_target_db"] for r in lateral if abs(r["ld_target_db"]) >= MIN_TARGET_LD_DB]
    grey = np.array([r["ld_grey_db"] for r in records], dtype=np.float64)
    skipped: Dict[str, int] = {}
    for r in records:
        if not r["qualifies"]:
            skipped[r["reason"]] = skipped.get(r["reason"], 0) + 1
    return {
        "direction_acc": direction("ld_pred_db"),
        "target_direction_acc": direction("ld_target_db"),
        "mirror_flip_rate": binomial_rate(flips),
        "ld_ratio_median": float(np.median(ratios)) if ratios else float("nan"),
        "ld_ratio_n": len(ratios),
        "grey_bias_abs_db": float(np.mean(np.abs(grey))) if grey.size else float("nan"),
        "grey_bias_signed_db": float(np.mean(grey)) if grey.size else float("nan"),
        "grey_n": int(grey.size),
        "n_clips": len(records),
        "n_lateral_single": len(lateral),
        "skipped": skipped,
    }


def _cell(rate: Mapping) -> str:
    if not rate["n"]:
        return "n/a (0 clips)"
    return f"{rate['rate']:.3f} ± {rate['sem']:.3f} ({rate['n']} clips)"


def markdown_table(summary: Mapping, title: str = "Localisation") -> str:
    """Markdown table of :func:`summarize`'s result: one row per measure."""
    d, t = summary["direction_acc"], summary["target_direction_acc"]
    # no "|" inside cells: it would end the cell
    rows = [(f"direction accuracy, single static source, azimuth beyond ±{MIN_AZIMUTH_DEG:g} deg, {k}", _cell(d[k]))
            for k in d if k != "overall"]
    rows.append(("direction accuracy, all scene kinds", _cell(d["overall"])))
    rows.append(("mirrored frames flip the output's side", _cell(summary["mirror_flip_rate"])))
    ratio = summary["ld_ratio_median"]
    rows.append((f"median predicted / true level difference (true beyond ±{MIN_TARGET_LD_DB:g} dB)",
                 f"{ratio:.3f} ({summary['ld_ratio_n']} clips)" if np.isfinite(ratio) else "n/a (0 clips)"))
    if summary["grey_n"]:
        rows.append(("level difference with uniform grey frames, mean absolute",
                     f"{summary['grey_bias_abs_db']:.2f} dB ({summary['grey_n']} clips)"))
        rows.append(("same, signed mean (> 0: right)", f"{summary['grey_bias_signed_db']:+.2f} dB"))
    rows.append(("check: the truth's direction accuracy", _cell(t["overall"])))
    lines = [f"| {title} | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary["skipped"].items()))
    lines += ["", f"{summary['n_clips']} clips, {summary['n_lateral_single']} lateral single-source"
              + (f"; not counted for direction/mirror/ratio: {skipped}" if skipped else "") + "."]
    return "\n".join(lines) + "\n"
