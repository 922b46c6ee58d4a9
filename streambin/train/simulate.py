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

SPLIT_NAMES = ("train", "val", "test")
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
    """Write ``splits/{train,val,test}.txt`` for every clip whose sidecar exists.

    Returns ``{split: [clip, ...]}``.
    """
    out = Path(out)
    clips = sorted(p.stem for p in (out / "meta").glob("*.json"))
    splits = {s: [] for s in SPLIT_NAMES}
    for c in clips:
        if not c.isdigit():
            continue
        splits[split_of(int(c), seed)].append(c)
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for s, names in splits.items():
        tmp = out / "splits" / f".{s}.txt.tmp"
        tmp.write_text("".join(n + "\n" for n in names))
        os.replace(tmp, out / "splits" / f"{s}.txt")
    return splits


def _r(a, nd=4):
    return [round(float(v), nd) for v in np.asarray(a).reshape(-1)]


def generate_clip(out: Path, index: int, seed: int, lib, seconds: float, max_sources: int,
                  room_fraction: float, moving_fraction: float) -> str:
    """Generate and write clip ``index``; returns its name. See the module docstring."""
    from .sim.scene import compose_frames, render_audio, sample_scene

    out = Path(out)
    name = clip_name(index)
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng, lib, seconds=seconds, max_sources=max_sources,
                         room_prob=room_fraction, moving_prob=moving_fraction)
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

    L = max(b.shape[1] for b in brirs)
    brir_arr = np.stack([np.pad(b, ((0, 0), (0, L - b.shape[1]))) for b in brirs]).astype(np.float32)
    (out / "brirs").mkdir(parents=True, exist_ok=True)
    np.save(out / "brirs" / f"{name}.npy", brir_arr)

    room = None
    if scene.room is not None:
        from .sim.render import RoomModel
        room = scene.room.to_json()
        room["rt60_s"] = round(float(RoomModel(lib.hrirs, scene.room).rt60_s), 4)
    meta = {
        "clip": name, "index": index, "seed": seed,
        "sample_rate": scene.sample_rate, "fps": scene.fps, "seconds": scene.seconds,
        "n_frames": scene.n_frames, "frame_width": scene.width, "frame_height": scene.height,
        "frame_times_s": _r(scene.frame_times()),
        "hfov_deg": 90.0, "audio_format": "PCM_16", "output_scale": round(scale, 8),
        "background": Path(scene.background).name, "background_crop": list(scene.background_crop),
        "background_flip": scene.background_flip,
        "sources": [{
            "name": s.name, "kind": s.kind, "cutout": Path(s.cutout).name,
            "moving": s.moving, "gain": round(s.gain, 6), "height_m": round(s.height_m, 4),
            "azimuth_deg": _r(s.azimuth_deg), "elevation_deg": _r(s.elevation_deg),
            "distance_m": _r(s.distance_m), "bbox": bboxes[i].tolist(),
        } for i, s in enumerate(scene.sources)],
        "room": room,
        "brir_file": f"brirs/{name}.npy", "brir_sample_rate": scene.sample_rate,
        "split": split_of(index, seed),
    }
    (out / "meta").mkdir(parents=True, exist_ok=True)
    tmp = out / "meta" / f".{name}.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "meta" / f"{name}.json")  # the sidecar marks the clip as complete
    return name


def _init_worker(paths: A.AssetPaths):
    global _LIB
    from .sim.scene import Library
    cv2.setNumThreads(1)  # one clip per process; no oversubscription of the cores
    _LIB = Library(paths)


def _work(args):
    """Generate one clip; returns ``(index, None)`` or ``(index, error text)`` so that one bad
    clip is reported at the end instead of killing a long run (it gets no sidecar, so it is in
    no split)."""
    out, index, seed, seconds, max_sources, room_fraction, moving_fraction = args
    try:
        generate_clip(Path(out), index, seed, _LIB, seconds, max_sources, room_fraction,
                      moving_fraction)
        return index, None
    except Exception as e:  # noqa: BLE001 - reported with the clip index, run exits non-zero
        import traceback
        return index, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def generate(out: Path, clips: int, seconds: float, seed: int, rooms: bool, moving: bool,
             max_sources: int = 3, workers: int = 1, paths: A.AssetPaths | None = None,
             room_fraction: float = 0.5, moving_fraction: float = 0.3, start: int = 0,
             progress: bool = True) -> dict:
    """Generate clips ``start .. start+clips-1`` into ``out`` and write the split files."""
    from tqdm import tqdm

    if clips < 1 or seconds <= 0 or max_sources < 1 or workers < 1:
        raise ValueError(f"need clips >= 1, seconds > 0, max_sources >= 1, workers >= 1; got "
                         f"{clips}, {seconds}, {max_sources}, {workers}")
    paths = paths or A.AssetPaths()
    paths.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), i, seed, seconds, max_sources, room_fraction if rooms else 0.0,
             moving_fraction if moving else 0.0) for i in range(start, start + clips)]
    bar = tqdm(total=clips, unit="clip", disable=not progress, mininterval=5.0)
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
        _init_worker(paths)
        for k, j in enumerate(jobs):
            done(k, _work(j))
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(paths,)) as pool:
            # imap keeps index order, so a partial run is a prefix of the clip list (up to workers).
            for k, result in enumerate(pool.imap(_work, jobs, chunksize=1)):
                done(k, result)
    bar.close()
    splits = write_splits(out, seed)
    if failed:
        raise RuntimeError(f"{len(failed)} clip(s) failed: {[clip_name(i) for i in failed[:20]]} "
                           "(see the messages above); the others were written")
    return splits


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rooms", action="store_true", help="put a fraction of the clips in rooms")
    p.add_argument("--moving", action="store_true", help="give a fraction of the clips a moving source")
    p.add_argument("--room-fraction", type=float, default=0.5)
    p.add_argument("--moving-fraction", type=float, default=0.3)
    p.add_argument("--max-sources", type=int, default=3)
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    p.add_argument("--start", type=int, default=0, help="index of the first clip (to resume)")
    p.add_argument("--splits-only", action="store_true",
                   help="only (re)write the split files for the clips present")
    p.add_argument("--sofa", type=Path, default=A.DEFAULT_SOFA)
    p.add_argument("--stamps", type=Path, default=A.DEFAULT_STAMPS)
    p.add_argument("--sf2", type=Path, default=A.DEFAULT_SF2)
    p.add_argument("--no-instruments", action="store_true", help="do not use the SoundFont")
    a = p.parse_args(argv)
    if a.splits_only:
        s = write_splits(a.out, a.seed)
        print({k: len(v) for k, v in s.items()})
        return 0
    paths = A.AssetPaths(sofa=a.sofa, stamps=a.stamps, sf2=None if a.no_instruments else a.sf2)
    try:
        paths.check()
    except A.MissingAssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        s = generate(a.out, a.clips, a.seconds, a.seed, a.rooms, a.moving, a.max_sources,
                     a.workers, paths, a.room_fraction, a.moving_fraction, a.start)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dt = time.time() - t0
    print(f"wrote {a.clips} clips to {a.out} in {dt:.1f} s ({a.clips / dt * 60:.1f} clips/min); "
          f"splits {({k: len(v) for k, v in s.items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
