"""Do OpenCV's bundled detectors or frame differencing say which side the source is on?

An experiment kept so that its figures can be reproduced (docs/results.md, "Cues a webcam could
add"), not a command of the library. For live use a model could be given cues that carry over to
real cameras: where OpenCV's bundled detectors find a face or a person (talkers are most sounds a
webcam hears), or where the picture changes from one frame to the next. Before building any of
them into the engine, this measures what each cue alone says on a split's clips, beside the
shipped default's own direction (from an evaluation JSON of the same clips).

Cues, each reduced to one azimuth per frame (the detection's centre column through the camera's
pin-hole model, DESIGN.md: ``atan((u - W/2) / f)``, ``f = (W/2) / tan(HFOV/2)``):

- ``face``: Haar cascades, frontal face and profile (the profile cascade also on the mirrored
  frame: it finds faces turned one way only); the largest detection.
- ``person``: the HOG people detector (64x128 window) on the frame upscaled 2x, so that people
  down to 64 px tall count; the detection with the highest score. ``person>=s``: the same,
  only where that score is at least ``s`` (fewer false people, fewer true ones).
- ``motion``: the centroid column of the pixels whose grey level changed by more than
  ``MOTION_THRESHOLD`` since the previous frame (both blurred), when at least ``MOTION_MIN_SHARE``
  of the frame changed. A static source in a static scene gives no motion at all, so this cue
  is scored on clips whose sounding source moves, frame by frame.

Scores per group (scene kind x the sounding source's sound kind): how often the cue fires,
how often its side (|az| >= 10 deg clips, as the direction-accuracy goal) is right where it
fires, how often its detection lies on the sounding source's box, and the shipped default's
direction accuracy on the same clips; ``override`` is the direction accuracy of a rule that
takes the cue's side where it fires and the model's elsewhere: the most the cue could add.

Needs OpenCV 4.x: OpenCV 5 moved the Haar and HOG detectors out of the main package.

    pip install --target /tmp/cv4 --no-deps 'opencv-python-headless<5'
    PYTHONPATH=/tmp/cv4 python scripts/experiments/webcam_cues.py --data /work/data/ood_val --split all \\
        --records docs/results/ood_ma_sg1179.json docs/results/ood_last100_ma_sg1179.json \\
        --out docs/results/webcam_cues_ood.json
"""
import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from streambin.train.data import load_frame
from streambin.train.localisation_eval import MIN_AZIMUTH_DEG, binomial_rate, qualify, sounding_sources
from streambin.train.sim.scene import column_to_azimuth

MOTION_THRESHOLD = 25           # grey levels (0-255) after a 5x5 blur: above the simulator's camera noise
MOTION_MIN_SHARE = 0.002        # at least this share of the pixels must change for the cue to fire
PERSON_UPSCALE = 2
PERSON_SCORE_FLOORS = (0.5, 1.0)   # the person cue also scored with only detections this sure (SVM score)
CUES = ("face", "person") + tuple(f"person>={f:g}" for f in PERSON_SCORE_FLOORS)


def opencv():
    import cv2
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "HOGDescriptor"):
        raise SystemExit(f"OpenCV {cv2.__version__} has no Haar/HOG detectors (OpenCV 5 moved them out): "
                         "install 'opencv-python-headless<5' (e.g. into a --target folder on PYTHONPATH)")
    return cv2


class Detectors:
    """The bundled face cascades and the HOG people detector, each ``(H, W, 3) uint8 RGB`` ->
    the chosen detection's box ``(x0, y0, x1, y1)`` in pixels, or None."""

    def __init__(self, cv2):
        self.cv2 = cv2
        root = Path(cv2.data.haarcascades)
        self.frontal = cv2.CascadeClassifier(str(root / "haarcascade_frontalface_default.xml"))
        self.profile = cv2.CascadeClassifier(str(root / "haarcascade_profileface.xml"))
        if self.frontal.empty() or self.profile.empty():
            raise SystemExit(f"the Haar cascades did not load from {root}")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def face(self, rgb: np.ndarray):
        grey = self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2GRAY)
        w = grey.shape[1]
        boxes = [tuple(b) for b in self.frontal.detectMultiScale(grey, 1.1, 5, minSize=(20, 20))]
        boxes += [tuple(b) for b in self.profile.detectMultiScale(grey, 1.1, 5, minSize=(20, 20))]
        boxes += [(w - x - bw, y, bw, bh) for x, y, bw, bh in
                  self.profile.detectMultiScale(np.ascontiguousarray(grey[:, ::-1]), 1.1, 5, minSize=(20, 20))]
        if not boxes:
            return None
        x, y, bw, bh = max(boxes, key=lambda b: b[2] * b[3])
        return (x, y, x + bw, y + bh)

    def person(self, rgb: np.ndarray):
        """The highest-scoring person's box and its SVM score (``(box, score)``), or None."""
        big = self.cv2.resize(rgb, None, fx=PERSON_UPSCALE, fy=PERSON_UPSCALE, interpolation=self.cv2.INTER_LINEAR)
        boxes, weights = self.hog.detectMultiScale(self.cv2.cvtColor(big, self.cv2.COLOR_RGB2GRAY),
                                                   winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(boxes) == 0:
            return None
        best = int(np.argmax(np.ravel(weights)))
        x, y, bw, bh = boxes[best] / PERSON_UPSCALE
        return (x, y, x + bw, y + bh), float(np.ravel(weights)[best])


def motion_column(cv2, previous: np.ndarray, current: np.ndarray):
    """Centroid column (pixels) of what changed between two ``(H, W, 3) uint8`` frames, or None."""
    a, b = (cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (5, 5), 0) for f in (previous, current))
    changed = np.abs(a.astype(np.int16) - b.astype(np.int16)) > MOTION_THRESHOLD
    if changed.mean() < MOTION_MIN_SHARE:
        return None
    return float(np.nonzero(changed)[1].mean())


def on_box(box, target) -> bool:
    """Whether ``box``'s centre lies inside ``target`` (both ``(x0, y0, x1, y1)``)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return target[0] <= cx <= target[2] and target[1] <= cy <= target[3]


def model_sides(paths) -> dict:
    """Clip -> the evaluated model's level difference (dB) from evaluation JSONs' localisation records."""
    out = {}
    for p in paths:
        doc = json.loads(Path(p).read_text())
        loc = doc.get("localisation")
        if not loc or "per_clip" not in loc:
            raise SystemExit(f"{p}: no localisation per_clip records (run streambin.train.evaluate with them)")
        out.update({r["clip"]: r["ld_pred_db"] for r in loc["per_clip"]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="a simulated data root (meta/, frames/, splits/)")
    p.add_argument("--split", default="all")
    p.add_argument("--records", nargs="*", default=[], type=Path,
                   help="evaluation JSONs of the same clips (streambin.train.evaluate) for the model's side")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    split_file = args.data / "splits" / f"{args.split}.txt"
    if not split_file.is_file():
        p.error(f"no split file {split_file}")
    clips = [c.strip() for c in split_file.read_text().split() if c.strip()]
    cv2 = opencv()
    detectors = Detectors(cv2)
    ld_model = model_sides(args.records)
    t0 = time.time()
    static, moving = [], []
    for clip in tqdm(clips, desc="clips"):
        meta = json.loads((args.data / "meta" / f"{clip}.json").read_text())
        q = qualify(meta)
        sounding = sounding_sources(meta)
        width, hfov = int(meta["frame_width"]), float(meta["hfov_deg"])
        size = (int(meta["frame_height"]), width)
        frames_dir = args.data / "frames" / clip
        if q["qualifies"]:
            frame = load_frame(frames_dir / "000001.png", size)
            src = sounding[0]
            rec = {"clip": clip, "scene_kind": q["scene_kind"], "sound_kind": src.get("sound_kind", "unknown"),
                   "azimuth_deg": q["azimuth_deg"], "n_silent": len(meta["sources"]) - 1,
                   "model_ld_db": ld_model.get(clip)}
            found = {"face": detectors.face(frame), "person": detectors.person(frame)}
            for cue, box in found.items():
                score = None
                if cue == "person" and box is not None:
                    box, score = box
                rec[cue] = None if box is None else {
                    "azimuth_deg": float(column_to_azimuth((box[0] + box[2]) / 2, width, hfov)),
                    "on_source": on_box(box, src["bbox"][0]), "score": score}
            # The person cue kept only where the detector is surer: fewer false people.
            for floor in PERSON_SCORE_FLOORS:
                sure = rec["person"] is not None and rec["person"]["score"] >= floor
                rec[f"person>={floor:g}"] = rec["person"] if sure else None
            static.append(rec)
        elif len(sounding) == 1 and sounding[0].get("moving", False):
            src, n = sounding[0], int(meta["n_frames"])
            previous = load_frame(frames_dir / "000001.png", size)
            for k in range(1, n):
                current = load_frame(frames_dir / f"{k + 1:06d}.png", size)
                u = motion_column(cv2, previous, current)
                previous = current
                az = float(src["azimuth_deg"][min(k, len(src["azimuth_deg"]) - 1)])
                if abs(az) >= MIN_AZIMUTH_DEG:
                    moving.append({"clip": clip, "azimuth_deg": az, "n_silent": len(meta["sources"]) - 1,
                                   "cue_deg": None if u is None else float(column_to_azimuth(u, width, hfov))})
    groups = defaultdict(list)
    for r in static:
        groups[f"{r['scene_kind']}, {r['sound_kind']}"].append(r)
        groups["all"].append(r)
    summary = {}
    for name, recs in sorted(groups.items()):
        row = {"n": len(recs)}
        with_model = [r for r in recs if r["model_ld_db"] is not None]
        row["model_direction_acc"] = binomial_rate([np.sign(r["model_ld_db"]) == np.sign(r["azimuth_deg"]) for r in with_model])
        for cue in CUES:
            fired = [r for r in recs if r[cue] is not None]
            right = lambda r: np.sign(r[cue]["azimuth_deg"]) == np.sign(r["azimuth_deg"])
            row[cue] = {"fires": binomial_rate([r[cue] is not None for r in recs]),
                        "side_where_fired": binomial_rate([right(r) for r in fired]),
                        "on_source_where_fired": binomial_rate([r[cue]["on_source"] for r in fired]),
                        "model_where_fired": binomial_rate([np.sign(r["model_ld_db"]) == np.sign(r["azimuth_deg"])
                                                   for r in fired if r["model_ld_db"] is not None]),
                        "override": binomial_rate([right(r) if r[cue] is not None else
                                          np.sign(r["model_ld_db"]) == np.sign(r["azimuth_deg"]) for r in with_model])}
        summary[name] = row
    fired = [r for r in moving if r["cue_deg"] is not None]
    motion = {"frames": len(moving), "clips": len({r["clip"] for r in moving}),
              "fires": binomial_rate([r["cue_deg"] is not None for r in moving]),
              "side_where_fired": binomial_rate([np.sign(r["cue_deg"]) == np.sign(r["azimuth_deg"]) for r in fired]),
              "side_where_fired_alone": binomial_rate([np.sign(r["cue_deg"]) == np.sign(r["azimuth_deg"])
                                              for r in fired if r["n_silent"] == 0])}
    result = {"data": str(args.data), "split": args.split, "opencv": cv2.__version__, "records": [str(r) for r in args.records],
              "wall_s": round(time.time() - t0, 1), "static_lateral_single_source": summary,
              "motion_moving_source_frames": motion, "per_clip": static}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    for name, row in summary.items():
        print(f"{name:28s} n {row['n']:3d}  model {row['model_direction_acc']['rate']:.3f}  " + "  ".join(
            f"{cue}: fires {row[cue]['fires']['rate']:.2f} side {row[cue]['side_where_fired']['rate']:.2f} "
            f"on-source {row[cue]['on_source_where_fired']['rate']:.2f} model-there {row[cue]['model_where_fired']['rate']:.2f} "
            f"override {row[cue]['override']['rate']:.3f}" for cue in CUES))
    print(f"motion: {motion['frames']} frames of {motion['clips']} clips, fires {motion['fires']['rate']:.2f}, "
          f"side where fired {motion['side_where_fired']['rate']:.3f} (alone {motion['side_where_fired_alone']['rate']:.3f})")
    print(f"wrote {args.out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
