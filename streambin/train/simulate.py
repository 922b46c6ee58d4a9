"""Generate a SimBinaural-lite data set (FAIR-Play-like layout) from real measured assets.

Usage::

    python -m streambin.train.simulate --out DIR --clips N --seconds S --seed K \
        [--rooms] [--moving] [--max-sources 3] [--workers N] [--splits-only]

Layout written under DIR (see docs/dataset.md)::

    binaural_audios/<clip>.wav   16 kHz stereo PCM16, left/right
    frames/<clip>/000001.png ... 10 fps RGB 448x224 (a static clip's frames are hard links of one file)
    meta/<clip>.json             sidecar (positions per frame, room, BRIR file, ...)
    brirs/<clip>.npy             (n_sources, 2, n_taps) float32 ground-truth BRIRs at 16 kHz
    splits/{train,val,test}.txt  80/10/10 by clip index, disjoint

Clip ``i`` is named ``f"{i:06d}"`` and drawn from ``numpy.random.default_rng([seed, i])``, so the
bytes of a clip do not depend on the number of workers or on which other clips are generated.
Clips are written in index order (roughly, with several workers) and each clip's sidecar is
written last (atomically), so a partly generated set is usable: ``--splits-only`` writes the
split files for the clips whose sidecar exists. ``--rooms`` puts half of the clips in a random
shoebox room, ``--moving`` makes 30 % of the clips contain a moving source (fractions settable
with ``--room-fraction`` / ``--moving-fraction``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from .sim import assets as A
from .sim.pools import parse_kind_pools

SPLIT_NAMES = ("train", "val", "test")
MIXES = ("random", "validation")
# Level 3 + RLE strategy: ~11 ms per 448x224 frame here and slightly smaller than default filtering.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
_LIB = None  # per-process asset library, loaded once by _init_worker


def clip_name(index: int) -> str:
    return f"{index:06d}"


def split_of(index: int, seed: int) -> str:
    """Split of clip ``index``: in every block of 10 consecutive clips a seeded permutation sends
    8 to train, 1 to val, 1 to test (exactly 80/10/10 per block, stable as the set grows)."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    perm = np.random.default_rng([seed, 10_007, index // 10]).permutation(10)
    rank = int(np.nonzero(perm == index % 10)[0][0])
    return "train" if rank < 8 else ("val" if rank == 8 else "test")


def write_splits(out: Path, seed: int) -> dict:
    """Write ``splits/{train,val,test}.txt`` for every clip whose sidecar exists, and
    ``splits/all.txt`` listing every clip (what an evaluation-only set, e.g. an OOD validation
    set, is scored on).

    Returns ``{split: [clip, ...]}`` for train/val/test.
    """
    out = Path(out)
    clips = sorted(p.stem for p in (out / "meta").glob("*.json"))
    splits = {s: [] for s in SPLIT_NAMES}
    for c in clips:
        if not c.isdigit():
            continue
        splits[split_of(int(c), seed)].append(c)
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for s, names in {**splits, "all": [c for c in clips if c.isdigit()]}.items():
        tmp = out / "splits" / f".{s}.txt.tmp"
        tmp.write_text("".join(n + "\n" for n in names))
        os.replace(tmp, out / "splits" / f"{s}.txt")
    return splits


def _r(a, nd=4):
    return [round(float(v), nd) for v in np.asarray(a).reshape(-1)]


def scenario_of(index: int, mix: str):
    """The scenario of clip ``index`` under ``mix``: None (everything random) for "random";
    for "validation" the scenarios of :data:`streambin.train.sim.scene.SCENARIOS` in turn."""
    from .sim.scene import SCENARIOS

    if mix == "random":
        return None
    if mix == "validation":
        return SCENARIOS[index % len(SCENARIOS)]
    raise ValueError(f"mix must be one of {MIXES}, got {mix!r}")


def sample_clip_scene(lib, index: int, seed: int, seconds: float, max_sources: int, room_fraction: float,
                      moving_fraction: float, mix: str = "random"):
    """The scene of clip ``index``: ``(scene, rng)``, the generator positioned where the clip's
    rendering starts drawing (sources' signals, room tails), so ``render_audio(scene, lib, rng)``
    gives the clip's audio before its output scale. Arguments as :func:`generate`'s."""
    from .sim.scene import sample_scene

    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng, lib, seconds=seconds, max_sources=max_sources,
                         room_prob=room_fraction, moving_prob=moving_fraction,
                         scenario=scenario_of(index, mix))
    return scene, rng


def generate_clip(out: Path, index: int, seed: int, lib, seconds: float, max_sources: int,
                  room_fraction: float, moving_fraction: float, mix: str = "random") -> str:
    """Generate and write clip ``index``; returns its name. See the module docstring."""
    from .sim.scene import compose_frames, render_audio

    out = Path(out)
    name = clip_name(index)
    scene, rng = sample_clip_scene(lib, index, seed, seconds, max_sources, room_fraction, moving_fraction, mix)
    audio, brirs = render_audio(scene, lib, rng)
    peak = float(np.abs(audio).max())
    target_peak = float(rng.uniform(0.3, 0.9))
    scale = target_peak / peak if peak > 0 else 1.0
    audio = audio * scale
    # PCM16 quantisation: the peak stays <= 0.9 so nothing clips.
    (out / "binaural_audios").mkdir(parents=True, exist_ok=True)
    sf.write(str(out / "binaural_audios" / f"{name}.wav"), audio.T, scene.sample_rate,
             subtype="PCM_16")

    frames, bboxes = compose_frames(scene, lib)
    fdir = out / "frames" / name
    fdir.mkdir(parents=True, exist_ok=True)
    prev_obj, prev_path = None, None
    for j, fr in enumerate(frames):
        path = fdir / f"{j + 1:06d}.png"
        if path.exists():
            path.unlink()
        if fr is prev_obj:
            try:
                os.link(prev_path, path)  # identical frame: hard link saves disk and time
                continue
            except OSError:
                pass
        ok, buf = cv2.imencode(".png", cv2.cvtColor(fr, cv2.COLOR_RGB2BGR), PNG_PARAMS)
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        path.write_bytes(buf.tobytes())
        prev_obj, prev_path = fr, path

    meta = scene_sidecar(scene, lib, bboxes, name, index, seed, scale)
    L = max(b.shape[1] for b in brirs)
    brir_arr = np.stack([np.pad(b, ((0, 0), (0, L - b.shape[1]))) for b in brirs]).astype(np.float32)
    (out / "brirs").mkdir(parents=True, exist_ok=True)
    np.save(out / "brirs" / f"{name}.npy", brir_arr)

    (out / "meta").mkdir(parents=True, exist_ok=True)
    tmp = out / "meta" / f".{name}.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "meta" / f"{name}.json")  # the sidecar marks the clip as complete
    return name


def scene_sidecar(scene, lib, bboxes, name: str, index: int, seed: int, scale: float) -> dict:
    """The sidecar dict of a rendered scene (see docs/dataset.md for every key)."""
    room = None
    if scene.room is not None:
        from .sim.render import RoomModel
        room = scene.room.to_json()
        room["rt60_s"] = round(float(RoomModel(lib.head(scene.head), scene.room).rt60_s), 4)
    head = {"id": scene.head}
    if scene.head != "base":
        from .sim.heads import describe_head
        head.update(describe_head(scene.head))
    # Options that are off by default are written only when on, so older sidecars stay the same.
    extra = {k: getattr(lib.options, k) for k in ("sound_colour_db", "extra_sound_share", "synth_sound_share",
                                              "clipart_share", "mosaic_share")
             if getattr(lib.options, k) > 0}
    if scene.kind_pools:
        extra["kind_pools"] = dict(scene.kind_pools)
    if scene.mosaic is not None:
        extra["background_mosaic"] = [{"background": t["background"], "file": Path(t["path"]).name,
                                       "crop": list(t["crop"]), "box": [round(v, 6) for v in t["box"]]}
                                      for t in scene.mosaic]
    return {
        **extra,
        "clip": name, "index": index, "seed": seed, "pool": scene.pool,
        "scene_kind": scene.kind,
        "sample_rate": scene.sample_rate, "fps": scene.fps, "seconds": scene.seconds,
        "n_frames": scene.n_frames, "frame_width": scene.width, "frame_height": scene.height,
        "frame_times_s": _r(scene.frame_times()),
        "hfov_deg": round(float(scene.hfov_deg), 4), "audio_format": "PCM_16",
        "output_scale": round(scale, 8),
        "background": scene.background_id, "background_file": Path(scene.background).name,
        "background_crop": list(scene.background_crop), "background_flip": scene.background_flip,
        "photo_pan": scene.photo, "camera": scene.camera, "head": scene.head, "head_info": head,
        "sources": [{
            "name": s.name,
            "kind": "photograph" if (scene.kind == "photograph" and i == 0) else "cutout",
            "sound_kind": s.kind, "sound": Path(s.sound).name if s.kind == "stamp" else s.sound,
            "silent": s.silent, "cutout": Path(s.cutout).name,
            "moving": s.moving, "gain": round(s.gain, 6), "height_m": round(s.height_m, 4),
            "look": s.look,
            "azimuth_deg": _r(s.azimuth_deg), "elevation_deg": _r(s.elevation_deg),
            "distance_m": _r(s.distance_m), "bbox": bboxes[i].tolist(),
        } for i, s in enumerate(scene.sources)],
        "room": room,
        "brir_file": f"brirs/{name}.npy", "brir_sample_rate": scene.sample_rate,
        "split": split_of(index, seed),
    }


def _init_worker(paths: A.AssetPaths, pool: str = "train", options=None, kind_pools=None):
    global _LIB
    from .sim.scene import Library
    cv2.setNumThreads(1)  # one clip per process; no oversubscription of the cores
    _LIB = Library(paths, pool=pool, options=options, kind_pools=kind_pools)


def _work(args):
    """Generate one clip; returns ``(index, None)`` or ``(index, error text)`` so that one bad
    clip is reported at the end instead of killing a long run (it gets no sidecar, so it is in
    no split)."""
    out, index, seed, seconds, max_sources, room_fraction, moving_fraction, mix = args
    try:
        generate_clip(Path(out), index, seed, _LIB, seconds, max_sources, room_fraction,
                      moving_fraction, mix)
        return index, None
    except Exception as e:  # noqa: BLE001 - reported with the clip index, run exits non-zero
        import traceback
        return index, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def generate(out: Path, clips: int, seconds: float, seed: int, rooms: bool, moving: bool,
             max_sources: int = 3, workers: int = 1, paths: A.AssetPaths | None = None,
             room_fraction: float = 0.5, moving_fraction: float = 0.3, start: int = 0,
             progress: bool = True, pool: str = "train", options=None, mix: str = "random",
             only_split: str | None = None, kind_pools: dict | None = None) -> dict:
    """Generate clips ``start .. start+clips-1`` into ``out`` and write the split files.

    ``pool`` and ``options`` (:class:`streambin.train.sim.scene.SceneOptions`, default: all
    variation on) choose the assets and what varies; ``mix`` "validation" gives the clips a fixed
    rotation of scenarios; ``only_split`` generates only the clips of that split (e.g. to rebuild
    a set's test clips); ``kind_pools`` (e.g. ``{"head": "ood"}``) draws those kinds from the other
    pool (:func:`streambin.train.sim.pools.check_kind_pools`: evaluation sets only).
    """
    from tqdm import tqdm

    if clips < 1 or seconds <= 0 or max_sources < 1 or workers < 1:
        raise ValueError(f"need clips >= 1, seconds > 0, max_sources >= 1, workers >= 1; got "
                         f"{clips}, {seconds}, {max_sources}, {workers}")
    from .sim.scene import SceneOptions, check_pools
    # Checked here, not only in each worker's Library: a worker whose initializer raises is
    # respawned by the pool again and again instead of failing the run.
    kind_pools = check_pools(options if options is not None else SceneOptions(), pool, kind_pools)
    paths = paths or A.AssetPaths()
    paths.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}, got {mix!r}")
    if only_split is not None and only_split not in SPLIT_NAMES:
        raise ValueError(f"only_split must be None or one of {SPLIT_NAMES}, got {only_split!r}")
    indices = [i for i in range(start, start + clips) if only_split is None or split_of(i, seed) == only_split]
    jobs = [(str(out), i, seed, seconds, max_sources, room_fraction if rooms else 0.0,
             moving_fraction if moving else 0.0, mix) for i in indices]
    bar = tqdm(total=len(jobs), unit="clip", disable=not progress, mininterval=5.0)
    failed = []

    def done(k, result):
        index, err = result
        if err is not None:
            failed.append(index)
            tqdm.write(f"clip {clip_name(index)} FAILED: {err}", file=sys.stderr)
        bar.update(1)
        if (k + 1) % 100 == 0:
            write_splits(out, seed)

    if workers == 1:
        _init_worker(paths, pool, options, kind_pools)
        for k, j in enumerate(jobs):
            done(k, _work(j))
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                         initargs=(paths, pool, options, kind_pools)) as pool:
            # imap keeps index order, so a partial run is a prefix of the clip list (up to workers).
            for k, result in enumerate(pool.imap(_work, jobs, chunksize=1)):
                done(k, result)
    bar.close()
    splits = write_splits(out, seed)
    if failed:
        raise RuntimeError(f"{len(failed)} clip(s) failed: {[clip_name(i) for i in failed[:20]]} "
                           "(see the messages above); the others were written")
    return splits


def options_from_args(a):
    """SceneOptions from the parsed command line (``--legacy`` = the first sets' generator)."""
    from .sim.scene import LEGACY_OPTIONS, SceneOptions

    if a.legacy:
        return LEGACY_OPTIONS
    return SceneOptions(
        hfov_range_deg=None if a.fixed_hfov else tuple(a.hfov_range),
        photograph_share=0.0 if a.no_photographs else a.photograph_share,
        distractor_share=0.0 if a.no_distractors else a.distractor_share,
        speech_share=0.0 if a.no_speech else a.speech_share,
        head_variation=not a.no_head_variation, camera_effects=not a.no_camera_effects,
        realistic_cutouts=not a.no_realistic_cutouts,
        procedural_share=0.0 if a.no_procedural else a.procedural_share,
        many_backgrounds=not a.skimage_backgrounds_only, sound_colour_db=a.sound_colour,
        extra_sound_share=a.extra_sounds, synth_sound_share=a.synth_sounds,
        clipart_share=a.clipart, mosaic_share=a.mosaic)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streambin.train.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output directory (FAIR-Play-like layout)")
    p.add_argument("--clips", type=int, default=100, help="number of clip indices to generate")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds")
    p.add_argument("--seed", type=int, default=0, help="clip i is drawn from default_rng([seed, i])")
    p.add_argument("--pool", choices=("train", "ood", "all"), default="train",
                   help="asset pool: train (default), ood (held-out backgrounds, objects, voices, "
                        "heads: evaluation sets), all (no split; only with --legacy)")
    p.add_argument("--kind-pool", action="append", default=[], metavar="KIND=POOL",
                   help="draw one asset kind (background, cutout, voice, head) from the other pool, "
                        "e.g. --pool train --kind-pool head=ood: which held-out kind a model's "
                        "shortfall comes from (evaluation sets only), or a picture kind (background, "
                        "cutout, clipart) from a half of the train pool, e.g. --kind-pool cutout=train-b: "
                        "pictures a net trained on the other half never saw (repeatable)")
    p.add_argument("--mix", choices=MIXES, default="random",
                   help="random scenes, or 'validation': clips cycle through single static source, "
                        "photograph, moving source, two sources, centre source")
    p.add_argument("--only-split", choices=SPLIT_NAMES, default=None,
                   help="generate only the clips of this split among the indices")
    p.add_argument("--rooms", action="store_true", help="put a fraction of the clips in rooms")
    p.add_argument("--moving", action="store_true", help="give a fraction of the clips a moving source")
    p.add_argument("--room-fraction", type=float, default=0.5, help="share of clips in rooms (with --rooms)")
    p.add_argument("--moving-fraction", type=float, default=0.3,
                   help="share of clips with a moving source (with --moving)")
    p.add_argument("--max-sources", type=int, default=3, help="sounding sources per clip: 1..N")
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="processes")
    p.add_argument("--start", type=int, default=0, help="index of the first clip (to resume)")
    p.add_argument("--splits-only", action="store_true",
                   help="only (re)write the split files for the clips present")
    p.add_argument("--sofa", type=Path, default=A.DEFAULT_SOFA, help="base HRIR set (SOFA)")
    p.add_argument("--stamps", type=Path, default=A.DEFAULT_STAMPS, help="tuxpaint stamps directory")
    p.add_argument("--sf2", type=Path, default=A.DEFAULT_SF2, help="General-MIDI SoundFont")
    p.add_argument("--no-instruments", action="store_true", help="do not use the SoundFont")
    g = p.add_argument_group("what varies (all on by default)")
    g.add_argument("--legacy", action="store_true",
                   help="the first SimBinaural-lite generator: one head, 90 deg, scikit-image "
                        "backgrounds, no distractors/speech/photographs/camera effects (use --pool all "
                        "to reproduce those sets byte for byte)")
    g.add_argument("--hfov-range", type=float, nargs=2, default=(60.0, 100.0), metavar=("LO", "HI"),
                   help="horizontal field of view drawn per clip, degrees")
    g.add_argument("--fixed-hfov", action="store_true", help="always 90 degrees")
    g.add_argument("--photograph-share", type=float, default=0.3, help="share of photograph scenes")
    g.add_argument("--no-photographs", action="store_true", help="composite scenes only")
    g.add_argument("--distractor-share", type=float, default=0.5,
                   help="share of composite scenes with 1-2 silent objects")
    g.add_argument("--no-distractors", action="store_true", help="no silent objects")
    g.add_argument("--speech-share", type=float, default=0.2, help="share of sources that talk")
    g.add_argument("--no-speech", action="store_true", help="no talkers")
    g.add_argument("--no-head-variation", action="store_true", help="the --sofa head for every clip")
    g.add_argument("--sound-colour", type=float, default=0.0, metavar="DB",
                   help="random smooth equaliser of every source's sound, up to +-DB dB (default 0: off)")
    g.add_argument("--extra-sounds", type=float, default=0.0, metavar="SHARE",
                   help="share of clips whose stamps play recorded effects or spoken words from "
                        "other Debian packages (streambin.train.sim.recordings) instead of their own "
                        "sounds, without distractors (default 0: off)")
    g.add_argument("--synth-sounds", type=float, default=0.0, metavar="SHARE",
                   help="share of the other clips whose stamps play sounds synthesised from a seed of "
                        "their own (streambin.train.sim.synth_sounds: noise bands, harmonic tones, "
                        "sweeps, click trains), without distractors; not with --pool ood (default 0: off)")
    g.add_argument("--clipart", type=float, default=0.0, metavar="SHARE",
                   help="share of clips whose sources (talkers excepted) are drawn as clip-art objects "
                        "from openclipart-png (streambin.train.sim.clipart), their sounds unchanged "
                        "(default 0: off)")
    g.add_argument("--mosaic", type=float, default=0.0, metavar="SHARE",
                   help="share of composite clips whose background is a mosaic of 2-4 crops of the "
                        "pool's photographs, each at its own zoom; a training device, refused with "
                        "held-out backgrounds (default 0: off)")
    g.add_argument("--no-camera-effects", action="store_true", help="perfect camera pictures")
    g.add_argument("--no-realistic-cutouts", action="store_true",
                   help="hard-edged cut-outs without shadows, heights 0.5-1 m")
    g.add_argument("--procedural-share", type=float, default=0.1,
                   help="share of procedural texture backgrounds (train pool only)")
    g.add_argument("--no-procedural", action="store_true", help="photographs only")
    g.add_argument("--skimage-backgrounds-only", action="store_true",
                   help="only scikit-image's photographs as backgrounds")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.splits_only:
        s = write_splits(a.out, a.seed)
        print({k: len(v) for k, v in s.items()})
        return 0
    if a.pool == "all" and not a.legacy:
        print("error: --pool all (no train/OOD split) is only for --legacy sets", file=sys.stderr)
        return 2
    paths = A.AssetPaths(sofa=a.sofa, stamps=a.stamps, sf2=None if a.no_instruments else a.sf2)
    try:
        options = options_from_args(a)
        from .sim.scene import check_pools
        kind_pools = check_pools(options, a.pool, parse_kind_pools(a.kind_pool))
        paths.check()
    except (A.MissingAssetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        s = generate(a.out, a.clips, a.seconds, a.seed, a.rooms, a.moving, a.max_sources,
                     a.workers, paths, a.room_fraction, a.moving_fraction, a.start,
                     pool=a.pool, options=options, mix=a.mix, only_split=a.only_split,
                     kind_pools=kind_pools)
    except (RuntimeError, A.MissingAssetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dt = time.time() - t0
    print(f"wrote clips to {a.out} in {dt:.1f} s ({a.clips / dt * 60:.1f} clip indices/min); "
          f"splits {({k: len(v) for k, v in s.items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
