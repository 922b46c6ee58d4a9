"""Where the side renderer gains and loses: per-clip figures of two streamed evaluations, by scene.

    PYTHONPATH=. python scripts/experiments/side_renderer_breakdown.py \\
        --candidate docs/results/ood_renderer.json docs/results/ood_last100_renderer.json \\
        --reference docs/results/ood_ma_sg1179.json docs/results/ood_last100_ma_sg1179.json \\
        --data /work/data/ood_val \\
        --offline docs/results/hrtf_prior_localiser3_soft_streamed_ood.json

Several held-out draws pool with ``--set CANDIDATE REFERENCE DATA`` (repeatable) instead of
``--candidate/--reference/--data``; a clip is then its data root and name.

Prints, for the clips both evaluations scored: STFT distance x Mono-Mono and the paired
difference (mean ± s.e., relative to the reference) for every clip, single- and multi-source
clips, and the scene groups (lateral, near the centre (< 10 degrees), moving, several sources),
each also split into clips in a room and in free field;
how many clips got better or worse and the largest changes; the share of Mono-Mono's error in
rooms; the median level ratio by room and scene kind (the clips the level-ratio row counts); per
scene kind, how many lateral clips each model puts on the right side, how many of its outputs lie
within 0.2 dB of the centre (where the direction rows read a sign alone) and how often the
truth's own level difference points the wrong way, then the clips the two put on different
sides; and with ``--offline`` (an
``hrtf_prior.py`` JSON, or a ``confidence_blend.py`` one and ``--offline-form``), the candidate's
STFT distances against that experiment's offline-rendered blend on the clips it scored. Figures quoted in docs/results.md, "The side renderer in the
engine", and the README's quality section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from streambin.train.localisation_eval import MIN_AZIMUTH_DEG, MIN_TARGET_LD_DB, on_right_side, sounding_sources

OFFLINE_VARIANT = "blend with the model, localiser, soft"
NEAR_CENTRE_DB = 0.2    # an output level difference this close to 0 dB: its sign is all the direction rows read


def per_clip(sets, side: int):
    """``{(data root, clip): metrics}`` of the candidate's (``side`` 0) or the reference's (1)
    evaluations over ``sets`` of ``(candidate paths, reference paths, data root)``."""
    out = {}
    for *paths, data in sets:
        for path in paths[side]:
            out.update({(data, c["clip"]): c["metrics"] for c in json.loads(Path(path).read_text())["per_clip"]})
    return out


def read_meta(key):
    data, clip = key
    return json.loads((data / "meta" / f"{clip}.json").read_text())


def lateral_records(sets, side: int):
    """``{(data root, clip): localisation record}`` of the lateral clips (those the direction rows count)."""
    out = {}
    for *paths, data in sets:
        for path in paths[side]:
            for r in json.loads(Path(path).read_text()).get("localisation", {}).get("per_clip", []):
                if r["qualifies"]:
                    out[(data, r["clip"])] = r
    return out


def level_ratios(sets, side: int):
    """``{(room or not, scene kind): [signed ratios]}`` over the clips the level-ratio row counts
    (lateral, single static source, ``|LD(target)| >= 1 dB``: streambin.train.localisation_eval)."""
    out = {}
    for *paths, data in sets:
        for path in paths[side]:
            for r in json.loads(Path(path).read_text()).get("localisation", {}).get("per_clip", []):
                if r["qualifies"] and abs(r["ld_target_db"]) >= MIN_TARGET_LD_DB:
                    key = ("room" if read_meta((data, r["clip"])).get("room") else "no room", r["scene_kind"])
                    out.setdefault(key, []).append(r["ld_pred_db"] / r["ld_target_db"])
    return out


def group(meta) -> str:
    sources = sounding_sources(meta)
    if len(sources) > 1:
        return "several sources"
    if sources[0].get("moving"):
        return "moving"
    az = np.abs(np.asarray(sources[0]["azimuth_deg"], np.float64)).mean()
    return "lateral" if az >= MIN_AZIMUTH_DEG else "near the centre"


def paired(cand, ref, mono, clips) -> str:
    d = np.array([cand[c] - ref[c] for c in clips])
    r = np.mean([ref[c] for c in clips])
    m = np.mean([mono[c] for c in clips])
    sem = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return (f"{len(clips):3d} clips: {np.mean([cand[c] for c in clips]) / m:.3f}x against {r / m:.3f}x of "
            f"Mono-Mono, paired {100 * d.mean() / r:+.1f} % ± {100 * sem / r:.1f} %")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidate", nargs="+", help="the candidate's evaluation JSONs")
    p.add_argument("--reference", nargs="+", help="the reference's evaluation JSONs")
    p.add_argument("--data", type=Path, help="the scored set (for its sidecars)")
    p.add_argument("--set", nargs=3, action="append", default=[], metavar=("CANDIDATE", "REFERENCE", "DATA"),
                   help="one set's two evaluations and its data root (repeatable, instead of the three above)")
    p.add_argument("--offline", help="an hrtf_prior.py JSON with the offline-rendered blend, or a "
                                     "confidence_blend.py JSON with --offline-form")
    p.add_argument("--offline-form", help="the confidence_blend.py form (scored on --data's split 'all')")
    a = p.parse_args(argv)
    one_set = (a.candidate, a.reference, a.data)
    if a.set and any(one_set) or not a.set and not all(one_set):
        p.error("give --candidate, --reference and --data, or --set CANDIDATE REFERENCE DATA (repeatable)")
    if a.offline and len(a.set) > 1:
        p.error("--offline compares one set: give it with --candidate/--reference/--data")
    sets = [(a.candidate, a.reference, a.data)] if not a.set else [([c], [r], Path(d)) for c, r, d in a.set]
    cand, ref = per_clip(sets, 0), per_clip(sets, 1)
    clips = [c for c in cand if c in ref]
    if not clips:
        p.error("the candidate and reference JSONs share no clip")
    stft = {k: {c: m[c]["model"]["stft"] for c in clips} for k, m in (("cand", cand), ("ref", ref))}
    mono = {c: cand[c]["mono_mono"]["stft"] for c in clips}
    metas = {c: read_meta(c) for c in clips}
    groups = {c: group(metas[c]) for c in clips}
    in_room = {c: bool(metas[c].get("room")) for c in clips}
    label = (lambda c: c[1]) if len(sets) == 1 else (lambda c: f"{c[0].name}/{c[1]}")
    print("all", paired(stft["cand"], stft["ref"], mono, clips))
    single = [c for c in clips if groups[c] != "several sources"]
    print("single source", paired(stft["cand"], stft["ref"], mono, single))
    for g in ("all", "lateral", "near the centre", "moving", "several sources"):
        members = [c for c in clips if g == "all" or groups[c] == g]
        if members and g != "all":
            print(g, paired(stft["cand"], stft["ref"], mono, members))
        for room in (True, False):
            part = [c for c in members if in_room[c] == room]
            if part:
                print(f"{g}, {'room' if room else 'free field'}", paired(stft["cand"], stft["ref"], mono, part))
    change = sorted(clips, key=lambda c: stft["cand"][c] - stft["ref"][c])
    better = sum(stft["cand"][c] < stft["ref"][c] for c in clips)
    worse = sum(stft["cand"][c] > stft["ref"][c] for c in clips)
    print(f"clip by clip: {better} better, {worse} worse")
    for name, chosen in (("largest gains", change[:6]), ("largest losses", change[::-1][:6])):
        rows = []
        for c in chosen:
            rows.append(f"{label(c)} ({groups[c]}, {'room' if in_room[c] else 'no room'}, "
                        f"{stft['cand'][c] - stft['ref'][c]:+.3f})")
        print(f"{name}: " + "; ".join(rows))
    room_mono = sum(mono[c] for c in clips if in_room[c])
    print(f"share of Mono-Mono's error in rooms: {room_mono / sum(mono.values()):.3f}")
    cand_ratios, ref_ratios = level_ratios(sets, 0), level_ratios(sets, 1)
    for key in sorted(set(cand_ratios) | set(ref_ratios)):
        c, r = cand_ratios.get(key, []), ref_ratios.get(key, [])
        print(f"level ratio, {key[0]}, {key[1]}: median {np.median(c) if c else float('nan'):.3f} ({len(c)} clips) "
              f"against {np.median(r) if r else float('nan'):.3f} ({len(r)})")
    lat = {k: lateral_records(sets, side) for side, k in enumerate(("cand", "ref"))}
    both = [c for c in lat["cand"] if c in lat["ref"]]
    for kind in sorted({lat["ref"][c]["scene_kind"] for c in both}):
        members = [c for c in both if lat["ref"][c]["scene_kind"] == kind]
        truth_wrong = sum(not on_right_side(lat["ref"][c], "ld_target_db") for c in members)
        parts = []
        for k, who in (("cand", "candidate"), ("ref", "reference")):
            right = [on_right_side(lat[k][c]) for c in members]
            near = [abs(lat[k][c]["ld_pred_db"]) < NEAR_CENTRE_DB for c in members]
            parts.append(f"{who} {sum(right)} on the right side, {sum(near)} within {NEAR_CENTRE_DB} dB of the "
                         f"centre ({sum(n and not r for n, r in zip(near, right))} of them wrong)")
        print(f"direction, {kind}, {len(members)} lateral clips (the truth wrong in {truth_wrong}): " + "; ".join(parts))
    for c in both:
        x, y = lat["cand"][c], lat["ref"][c]
        if on_right_side(x) != on_right_side(y):
            print(f"on different sides: {label(c)} ({x['scene_kind']}, azimuth {x['azimuth_deg']:+.1f}, true level "
                  f"difference {x['ld_target_db']:+.2f} dB): candidate {x['ld_pred_db']:+.2f} dB, reference "
                  f"{y['ld_pred_db']:+.2f} dB")
    if a.offline:
        d = json.loads(Path(a.offline).read_text())
        rows = (d["scored"][f"{a.data}:all"][a.offline_form]["per_clip"] if a.offline_form
                else d["per_clip"][OFFLINE_VARIANT])
        offline = {(a.data, r["clip"]): r["stft"] for r in rows}
        both = [c for c in clips if c in offline]
        e, o = np.array([stft["cand"][c] for c in both]), np.array([offline[c] for c in both])
        print(f"against the offline-rendered blend, {len(both)} clips: {e.mean() / o.mean():.4f}x, paired "
              f"{100 * (e - o).mean() / o.mean():+.2f} % ± {100 * (e - o).std(ddof=1) / np.sqrt(len(e)) / o.mean():.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
