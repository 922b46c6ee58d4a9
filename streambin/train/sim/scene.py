"""Random binaural scenes: sampling, source signals, frame compositing and audio rendering.

Camera (DESIGN.md): pinhole at the listener's head, HFOV 90 degrees, so a direction with our
azimuth ``az`` (positive right) and elevation ``el`` projects to column
``u = W/2 + f tan(az)`` and row ``v = H/2 - f tan(el) / cos(az)``, ``f = (W/2) / tan(45 deg)``.
A cut-out of real height ``h`` metres at distance ``r`` is drawn ``f h / r`` pixels tall,
centred (its bounding box centre) on ``(u, v)``.

Frame ``j`` (file ``j+1``, 1-based as in FAIR-Play) shows the scene at ``t_j = (j + 0.5) / fps``,
the centre of the interval ``[j / fps, (j+1) / fps)``; the audio BRIR key times are the same
instants, so the per-frame sidecar values describe both the picture and the sound.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import assets as A
from .hrtf import HrirSet, load_sofa
from .render import (RoomModel, RoomSpec, anechoic_brir, binaural_tail, direction_to_offset,
                     render_keyframed)
from .sf2 import SoundFont

HFOV_DEG = 90.0
MAX_ABS_AZIMUTH_DEG = 40.0  # keep sources (and most of their cut-out) inside the 45-degree half-FOV


def focal_px(width: int, hfov_deg: float = HFOV_DEG) -> float:
    """Focal length in pixels of a ``width``-wide pinhole camera with horizontal FOV ``hfov_deg``."""
    return (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)


def azimuth_to_column(azimuth_deg, width: int, hfov_deg: float = HFOV_DEG):
    """Image column ``u`` of our azimuth (positive right): ``W/2 + f tan(az)``."""
    return width / 2.0 + focal_px(width, hfov_deg) * np.tan(np.deg2rad(azimuth_deg))


def column_to_azimuth(u, width: int, hfov_deg: float = HFOV_DEG):
    """Our azimuth in degrees of image column ``u``: ``atan((u - W/2) / f)``."""
    return np.rad2deg(np.arctan((np.asarray(u, dtype=np.float64) - width / 2.0) / focal_px(width, hfov_deg)))


@dataclass
class SourceSpec:
    """One sound source of a scene; per-frame arrays have shape ``(n_frames,)``."""

    name: str
    kind: str                 # "stamp" or "instrument"
    cutout: str               # path of the RGBA cut-out
    sound: str                # stamp: path of the sound file; instrument: "sf2:<program>"
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    distance_m: np.ndarray
    height_m: float           # real-world height of the cut-out
    gain: float               # linear gain of the unit-RMS source signal (before 1/r)
    moving: bool


@dataclass
class SceneSpec:
    """A whole clip: timing, frame size, background crop, sources and optional room."""

    seconds: float
    sample_rate: int
    fps: float
    width: int
    height: int
    background: str
    background_crop: tuple    # (x0, y0, x1, y1) in the background image, before resizing
    background_flip: bool
    sources: list = field(default_factory=list)
    room: RoomSpec | None = None

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    def frame_times(self) -> np.ndarray:
        """``(n_frames,)`` times in seconds that the frames (and BRIR key times) show."""
        return (np.arange(self.n_frames) + 0.5) / self.fps


class Library:
    """The loaded assets of one process: HRIRs, stamps, SoundFont, instruments, backgrounds."""

    def __init__(self, paths: A.AssetPaths, sample_rate: int = 16000):
        paths.check()
        self.paths = paths
        self.sample_rate = sample_rate
        self.hrirs: HrirSet = load_sofa(paths.sofa, sample_rate)
        self.stamps = A.audible_stamps(A.find_stamps(paths.stamps))
        self.backgrounds = A.background_paths(paths.backgrounds)
        self.soundfont = SoundFont(paths.sf2) if paths.sf2 is not None else None
        self.instruments = []  # (name, program, cut-out path) with both preset and cut-out present
        if self.soundfont is not None:
            have = {(b, p) for b, p, _ in self.soundfont.presets()}
            for name, (program, stem) in sorted(paths.instruments.items()):
                png = paths.stamps / (stem + ".png")
                if (0, program) in have and png.is_file():
                    self.instruments.append((name, program, str(png)))
        self._cache: dict = {}

    def cutout(self, path: str) -> np.ndarray:
        if ("cut", path) not in self._cache:
            self._cache[("cut", path)] = A.load_cutout(path)
        return self._cache[("cut", path)]

    def background(self, path: str) -> np.ndarray:
        if ("bg", path) not in self._cache:
            self._cache[("bg", path)] = A.load_rgb(path)
        return self._cache[("bg", path)]


def _ease(n_frames: int, a0: float, a1: float) -> np.ndarray:
    """Smooth sweep from a0 to a1 over the frames (raised-cosine ease-in/ease-out)."""
    s = np.arange(n_frames) / max(n_frames - 1, 1)
    return a0 + (a1 - a0) * (1.0 - np.cos(np.pi * s)) / 2.0


def sample_scene(rng: np.random.Generator, lib: Library, seconds: float = 10.0, fps: float = 10.0,
                 width: int = 448, height: int = 224, max_sources: int = 3,
                 room_prob: float = 0.0, moving_prob: float = 0.0,
                 instrument_prob: float = 0.3) -> SceneSpec:
    """Draw a random scene.

    Each source: a tuxpaint stamp (its own sound) or, with ``instrument_prob`` when the
    SoundFont has instruments, a GM instrument with its matching cut-out; azimuth uniform in
    +-40 degrees (static) or a smooth sweep between two such azimuths at least 15 degrees apart
    (moving, with ``moving_prob``); elevation uniform in +-5 degrees; distance uniform 1-4 m
    (constant over the clip); real height 0.5-1.0 m; gain -6..0 dB. With ``room_prob`` a
    shoebox room (absorption 0.15-0.6) big enough to hold the sources.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds}, {fps}")
    if max_sources < 1:
        raise ValueError(f"max_sources must be >= 1, got {max_sources}")
    if not lib.stamps:
        raise ValueError("the library has no stamps")
    n_frames = int(round(seconds * fps))
    bg = lib.backgrounds[int(rng.integers(len(lib.backgrounds)))]
    img = lib.background(str(bg))
    ih, iw = img.shape[:2]
    # Random crop of aspect width:height covering 60-100 % of the largest such crop.
    ch_max = min(ih, iw * height / width)
    ch = ch_max * rng.uniform(0.6, 1.0)
    cw = ch * width / height
    x0 = rng.uniform(0, iw - cw)
    y0 = rng.uniform(0, ih - ch)
    scene = SceneSpec(seconds, lib.sample_rate, fps, width, height, str(bg),
                      (int(x0), int(y0), int(x0 + cw), int(y0 + ch)), bool(rng.random() < 0.5))
    n_src = int(rng.integers(1, max_sources + 1))
    stamp_order = rng.permutation(len(lib.stamps))
    moving_clip = rng.random() < moving_prob
    for s in range(n_src):
        if lib.instruments and rng.random() < instrument_prob:
            name, program, png = lib.instruments[int(rng.integers(len(lib.instruments)))]
            kind, cut, snd = "instrument", png, f"sf2:{program}"
        else:
            st = lib.stamps[int(stamp_order[s % len(stamp_order)])]
            name, kind, cut, snd = st.name, "stamp", str(st.png), str(st.ogg)
        # In a moving clip the first source always moves, the others with probability 1/2.
        moving = bool(moving_clip and (s == 0 or rng.random() < 0.5))
        if moving:
            a0 = rng.uniform(-MAX_ABS_AZIMUTH_DEG, MAX_ABS_AZIMUTH_DEG)
            a1 = a0
            while abs(a1 - a0) < 15.0:
                a1 = rng.uniform(-MAX_ABS_AZIMUTH_DEG, MAX_ABS_AZIMUTH_DEG)
            az = _ease(n_frames, a0, a1)
        else:
            az = np.full(n_frames, rng.uniform(-MAX_ABS_AZIMUTH_DEG, MAX_ABS_AZIMUTH_DEG))
        el = np.full(n_frames, rng.uniform(-5.0, 5.0))
        dist = np.full(n_frames, rng.uniform(1.0, 4.0))
        scene.sources.append(SourceSpec(name, kind, cut, snd, az, el, dist,
                                        float(rng.uniform(0.5, 1.0)),
                                        float(10 ** (rng.uniform(-6.0, 0.0) / 20)), moving))
    if rng.random() < room_prob:
        scene.room = sample_room(rng, scene.sources)
    return scene


def sample_room(rng: np.random.Generator, sources: list) -> RoomSpec:
    """A random shoebox with the head inside and every source position >= 0.5 m from walls."""
    offs = np.concatenate([[direction_to_offset(a, e, d) for a, e, d in
                            zip(s.azimuth_deg, s.elevation_deg, s.distance_m)] for s in sources])
    margin = 0.5
    back = rng.uniform(0.5, 2.0)
    front = max(offs[:, 0].max() + margin, rng.uniform(3.0, 8.0))
    left = max(offs[:, 1].max() + margin, rng.uniform(2.0, 5.0))
    right = max(-offs[:, 1].min() + margin, rng.uniform(2.0, 5.0))
    h = rng.uniform(2.5, 4.0)
    head_z = rng.uniform(1.2, 1.7)
    h = max(h, head_z + offs[:, 2].max() + margin)
    head_z = max(head_z, -offs[:, 2].min() + margin)
    return RoomSpec((back + front, right + left, h), float(rng.uniform(0.15, 0.6)),
                    (back, right, head_z))


def source_signal(rng: np.random.Generator, lib: Library, src: SourceSpec, n: int) -> np.ndarray:
    """The source's real sound as ``(n,) float32`` at ``lib.sample_rate``, unit RMS.

    A stamp's sound is looped (random start, random 0-0.5 s gaps) and trimmed to ``n``; an
    instrument plays a random melody on a pentatonic scale from the SoundFont samples.
    """
    sr = lib.sample_rate
    if src.kind == "stamp":
        snd = A.load_sound(src.sound, sr)
        if snd.size == 0 or not np.any(snd):
            raise ValueError(f"sound {src.sound} is empty or silent")
        pieces, total = [], 0
        start = int(rng.integers(len(snd)))
        first = snd[start:]
        pieces.append(first)
        total += len(first)
        while total < n:
            gap = np.zeros(int(rng.uniform(0.0, 0.5) * sr), dtype=np.float32)
            pieces += [gap, snd]
            total += len(gap) + len(snd)
        x = np.concatenate(pieces)[:n]
    elif src.kind == "instrument":
        if lib.soundfont is None:
            raise ValueError("instrument source but the library has no SoundFont")
        zones = lib.soundfont.zones(int(src.sound.split(":")[1]))
        lo = max(min(z.key_lo for z in zones), 36)
        hi = min(max(z.key_hi for z in zones), 96)
        centre = int(rng.integers(lo, max(lo + 1, hi - 12)))
        scale = centre + np.array([0, 2, 4, 7, 9, 12])
        x = np.zeros(n, dtype=np.float32)
        pos = 0
        while pos < n:
            dur = float(rng.uniform(0.2, 0.8))
            m = min(int(dur * sr), n - pos)
            if rng.random() > 0.1 and m > int(0.02 * sr):  # else a rest
                key = int(rng.choice(scale))
                x[pos: pos + m] += lib.soundfont.note(zones, key, m / sr, sr) * rng.uniform(0.6, 1.0)
            pos += m
    else:
        raise ValueError(f"unknown source kind {src.kind!r}")
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    if rms <= 0:
        raise ValueError(f"source {src.name} rendered silent")
    return (x / rms).astype(np.float32)


def _place(width: int, height: int, src: SourceSpec, cut_h: int, cut_w: int, j: int):
    """Unclipped integer box ``(x0, y0, x1, y1)`` of the cut-out in frame ``j``."""
    az, el = np.deg2rad(src.azimuth_deg[j]), np.deg2rad(src.elevation_deg[j])
    f = focal_px(width)
    u = width / 2.0 + f * np.tan(az)
    v = height / 2.0 - f * np.tan(el) / np.cos(az)
    x0 = int(round(u - cut_w / 2.0))
    y0 = int(round(v - cut_h / 2.0))
    return x0, y0, x0 + cut_w, y0 + cut_h


def compose_frames(scene: SceneSpec, lib: Library):
    """Render the frames.

    Returns:
        frames: list of ``n_frames`` arrays ``(H, W, 3) uint8`` RGB (the same object repeated
        when nothing moves), and bboxes: per source a ``(n_frames, 4)`` int array of
        ``[x0, y0, x1, y1]`` clipped to the frame (x1, y1 exclusive).
    """
    W, H = scene.width, scene.height
    img = lib.background(scene.background)
    x0, y0, x1, y1 = scene.background_crop
    bg = cv2.resize(img[y0:y1, x0:x1], (W, H), interpolation=cv2.INTER_AREA)
    if scene.background_flip:
        bg = np.ascontiguousarray(bg[:, ::-1])
    f = focal_px(W)
    cuts = []
    for src in scene.sources:
        rgba = lib.cutout(src.cutout)
        h_px = int(np.clip(round(f * src.height_m / float(src.distance_m[0])), 4, int(0.9 * H)))
        w_px = max(2, int(round(rgba.shape[1] * h_px / rgba.shape[0])))
        w_px = min(w_px, int(0.6 * W))
        interp = cv2.INTER_AREA if h_px < rgba.shape[0] else cv2.INTER_LINEAR  # AREA only shrinks well
        small = cv2.resize(rgba, (w_px, h_px), interpolation=interp)
        cuts.append(small)
    order = np.argsort([-float(s.distance_m[0]) for s in scene.sources], kind="stable")  # far first
    bboxes = [np.zeros((scene.n_frames, 4), dtype=np.int64) for _ in scene.sources]
    frames, last = [], None
    moving = any(s.moving for s in scene.sources)
    for j in range(scene.n_frames):
        if last is not None and not moving:
            for i in range(len(scene.sources)):
                bboxes[i][j] = bboxes[i][j - 1]
            frames.append(last)
            continue
        fr = bg.copy()
        for i in order:
            cut = cuts[i]
            bx0, by0, bx1, by1 = _place(W, H, scene.sources[i], cut.shape[0], cut.shape[1], j)
            cx0, cy0, cx1, cy1 = max(bx0, 0), max(by0, 0), min(bx1, W), min(by1, H)
            bboxes[i][j] = (cx0, cy0, max(cx0, cx1), max(cy0, cy1))
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            patch = cut[cy0 - by0: cy1 - by0, cx0 - bx0: cx1 - bx0].astype(np.float32)
            alpha = patch[:, :, 3:4] / 255.0
            roi = fr[cy0:cy1, cx0:cx1].astype(np.float32)
            fr[cy0:cy1, cx0:cx1] = np.clip(alpha * patch[:, :, :3] + (1 - alpha) * roi + 0.5,
                                           0, 255).astype(np.uint8)
        frames.append(fr)
        last = fr
    return frames, bboxes


def render_audio(scene: SceneSpec, lib: Library, rng: np.random.Generator):
    """Render the binaural audio of a scene.

    Returns:
        audio: ``(2, n_samples) float32`` left/right, not yet peak-normalised;
        brirs: list (per source) of ``(2, L) float32`` BRIRs of the first frame's position.
    """
    sr, n = scene.sample_rate, scene.n_samples
    room = RoomModel(lib.hrirs, scene.room) if scene.room is not None else None
    key_t = scene.frame_times()
    out = np.zeros((2, n), dtype=np.float64)
    first_brirs = []
    for src in scene.sources:
        tail = None
        if room is not None:
            tail = binaural_tail(rng, int(2.2 * sr) + lib.hrirs.n_taps, sr)
        positions = list(zip(src.azimuth_deg, src.elevation_deg, src.distance_m))
        if not src.moving:
            positions = positions[:1]

        def brir_at(a, e, d):
            if room is None:
                return anechoic_brir(lib.hrirs, a, e, d)
            return room.brir(np.asarray(room.head) + direction_to_offset(a, e, d), tail)

        brirs = [brir_at(*p) for p in positions]
        L = max(b.shape[1] for b in brirs)
        brirs = np.stack([np.pad(b, ((0, 0), (0, L - b.shape[1]))) for b in brirs])
        first_brirs.append(brirs[0])
        # Pre-roll of L samples so reverberation has built up at t = 0 (the sound is continuous).
        x = source_signal(rng, lib, src, n + L) * src.gain
        keys = np.round(key_t * sr).astype(np.int64) + L if src.moving else np.array([L])
        out += render_keyframed(x, brirs, keys)[:, L:]
    return out.astype(np.float32), first_brirs
