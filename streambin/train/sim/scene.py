"""Random binaural scenes: sampling, source signals, frame compositing and audio rendering.

What varies between clips is set by :class:`SceneOptions` (everything on by default):
the camera's horizontal field of view (60-100 degrees), scene kind ("composite": cut-outs on a
background crop; "photograph": a whole photograph panned so that its subject sits at the
source's column), silent distractor objects, speech sources (a talker cut-out with an espeak-ng
or recorded voice), the listener's head, webcam effects, softened cut-outs with shadows,
procedural backgrounds, and (off by default) sound colour and recorded effects or words in place
of the stamps' own sounds. :data:`LEGACY_OPTIONS` with pool ``"all"`` reproduces the first
SimBinaural-lite sets byte for byte (one head, 90 degrees, scikit-image backgrounds).

Camera (the project's convention): pinhole at the listener's head, HFOV 90 degrees by default, so a direction with our
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

from streambin.camera import HFOV_DEG, azimuth_to_column, column_to_azimuth, focal_px  # noqa: F401 (re-exported)

from . import assets as A
from . import picture as P
from . import clipart, pools, recordings, synth_sounds
from .hrtf import HrirSet, load_sofa
from .render import (RoomModel, RoomSpec, anechoic_brir, binaural_tail, direction_to_offset,
                     render_keyframed)
from .sf2 import SoundFont

MAX_ABS_AZIMUTH_DEG = 40.0  # legacy: keep sources (and most of their cut-out) inside the 45-degree half-FOV
# With a drawn field of view, sources may sit up to this close to the frame edge (their
# cut-out then partly leaves the frame, as objects at the edge of a webcam picture do).
EDGE_MARGIN_DEG = 3.0
SCENARIOS = ("single_static", "photograph", "moving", "two_sources", "centre")
BASE_HEAD = "base"  # the HRIRs of AssetPaths.sofa, unperturbed
MAX_BACKGROUND_PX = 1280  # longer side of a loaded background (scikit-image's are all smaller)


@dataclass(frozen=True)
class SceneOptions:
    """What varies between clips. Every kind of variation is on by default; each has a switch.

    Attributes:
        hfov_range_deg: (lo, hi) horizontal field of view drawn per clip; None: fixed 90.
        photograph_share: share of "photograph" scenes (a panned whole photograph, one source).
        distractor_share: share of composite scenes with 1-2 silent objects.
        speech_share: share of sources that are a talker with a voice.
        head_variation: draw the head per clip from the pool's heads (else the base HRIRs).
        camera_effects: webcam colour/exposure/blur/noise/low resolution/JPEG per clip.
        realistic_cutouts: feathered edges, colour harmonisation, defocus, contact shadows and
            realistic object heights.
        procedural_share: share of procedural texture backgrounds (train pool only).
        many_backgrounds: the wallpaper/photo packages' photographs (else scikit-image's).
        sound_colour_db: every sounding source's signal through a random smooth equaliser of up
            to +-this many dB (0: off, the default, so sets made before it are unchanged), so
            that a model meets more spectra than the pool's sounds have.
        extra_sound_share: share of clips whose stamp sources play a recorded sound effect or
            spoken words (:mod:`streambin.train.sim.recordings`) instead of the stamp's own
            sound; such clips get no silent distractors (0: off, the default, so sets made
            before it are unchanged).
        synth_sound_share: share of the clips not given recorded sounds whose stamp sources
            play a sound synthesised from a seed of their own (:mod:`streambin.train.sim.synth_sounds`:
            noise bands, harmonic tones, sweeps, click trains); such clips get no silent
            distractors. Train and all pools only: held-out sets hear no synthesised sound
            (0: off, the default, so sets made before it are unchanged).
        clipart_share: share of clips whose sources (sounding and silent, talkers excepted) are
            drawn as clip-art objects (:mod:`streambin.train.sim.clipart`) instead of their own
            pictures; their sounds stay as drawn, so such a clip's pictures and sounds do not
            match (0: off, the default, so sets made before it are unchanged).
        mosaic_share: share of composite scenes whose background is a mosaic of 2-4 tiles, each
            a crop of a photograph of the pool at its own zoom, so that a net cannot learn the
            pool's few backgrounds whole: every mosaic is an arrangement of background things
            never seen before. A training device: refused with held-out backgrounds
            (:func:`check_pools`); never in photograph scenes (0: off, the default, so sets made
            before it are unchanged).
    """

    hfov_range_deg: tuple | None = (60.0, 100.0)
    photograph_share: float = 0.3
    distractor_share: float = 0.5
    speech_share: float = 0.2
    head_variation: bool = True
    camera_effects: bool = True
    realistic_cutouts: bool = True
    procedural_share: float = 0.1
    many_backgrounds: bool = True
    sound_colour_db: float = 0.0
    extra_sound_share: float = 0.0
    synth_sound_share: float = 0.0
    clipart_share: float = 0.0
    mosaic_share: float = 0.0

    def __post_init__(self):
        for name in ("photograph_share", "distractor_share", "speech_share", "procedural_share",
                     "extra_sound_share", "synth_sound_share", "clipart_share", "mosaic_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if not 0.0 <= self.sound_colour_db <= 24.0:
            raise ValueError(f"sound_colour_db must be in [0, 24] dB, got {self.sound_colour_db}")
        if self.hfov_range_deg is not None:
            lo, hi = self.hfov_range_deg
            if not 20.0 <= lo <= hi <= 150.0:
                raise ValueError(f"hfov_range_deg must be (lo, hi) with 20 <= lo <= hi <= 150, "
                                 f"got {self.hfov_range_deg}")

    @property
    def legacy(self) -> bool:
        return self == LEGACY_OPTIONS


LEGACY_OPTIONS = SceneOptions(None, 0.0, 0.0, 0.0, False, False, False, 0.0, False)


@dataclass
class SourceSpec:
    """One sound source of a scene; per-frame arrays have shape ``(n_frames,)``."""

    name: str
    kind: str                 # sound kind: "stamp", "instrument", "speech", "recording", "synth" or "none" (silent)
    cutout: str               # path of the RGBA cut-out
    sound: str                # stamp: sound file; instrument: "sf2:<program>"; speech: voice id;
                              # recording: a recordings.SoundGroup id; synth: synth_sounds.sound_id
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    distance_m: np.ndarray
    height_m: float           # real-world height of the cut-out
    gain: float               # linear gain of the unit-RMS source signal (before 1/r)
    moving: bool
    silent: bool = False      # a distractor: seen, never heard
    look: dict | None = None  # soften_cutout / shadow parameters (None: pasted as is)


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
    sources: list = field(default_factory=list)  # sounding sources first, then silent ones
    room: RoomSpec | None = None
    pool: str = "all"
    kind_pools: dict = field(default_factory=dict)  # kinds drawn from the other pool (evaluation sets)
    kind: str = "composite"       # or "photograph"
    hfov_deg: float = HFOV_DEG
    head: str = BASE_HEAD
    background_id: str = ""
    procedural_seed: int | None = None  # procedural background texture instead of a photograph
    camera: dict | None = None    # picture.sample_camera parameters (None: a perfect camera)
    photo: dict | None = None     # photograph scenes: {"crop_h", "y0", "subject_x"} in photo pixels
    mosaic: list | None = None    # mosaic background: tiles {"background", "path", "crop", "box"}
                                  # (see _sample_mosaic); background/background_crop then unused

    @property
    def sounding(self) -> list:
        return [s for s in self.sources if not s.silent]

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    def frame_times(self) -> np.ndarray:
        """``(n_frames,)`` times in seconds that the frames (and BRIR key times) show."""
        return (np.arange(self.n_frames) + 0.5) / self.fps


def check_pools(options: "SceneOptions", pool: str, kind_pools: "dict[str, str] | None" = None) -> dict:
    """The checked per-kind pools (:func:`streambin.train.sim.pools.check_kind_pools`) of a
    library of ``pool`` with ``options``; ValueError for the training devices in a set with held-out
    assets: synthesised sounds (held-out sets hear only sounds training never hears) and mosaic
    backgrounds with held-out backgrounds (held-out sets show the held-out pool's pictures as they are)."""
    kind_pools = pools.check_kind_pools(pool, kind_pools)
    if options.synth_sound_share > 0 and "ood" in (pool, *kind_pools.values()):
        raise ValueError("synthesised sounds (synth_sound_share > 0) are a training device: a set with "
                         "held-out assets (pool 'ood' or a held-out kind) hears only sounds training never hears")
    if options.mosaic_share > 0 and kind_pools.get("background", pool) == "ood":
        raise ValueError("mosaic backgrounds (mosaic_share > 0) are a training device: a set with held-out "
                         "backgrounds shows them as they are")
    return kind_pools


class Library:
    """The loaded assets of one process for one pool: HRIRs and heads, stamps, SoundFont,
    instruments, backgrounds, distractor cut-outs, voices.

    Args:
        paths: where the assets live.
        sample_rate: audio rate of the rendered scenes.
        pool: "train", "ood" or "all" (see :mod:`streambin.train.sim.pools`).
        options: the scene options; they decide which asset kinds are looked up at all.
        kind_pools: kinds drawn from the other pool, e.g. ``{"head": "ood"}`` (evaluation sets
            only), or picture kinds from a half of the train pool, e.g. ``{"cutout": "train-b"}``
            (:func:`streambin.train.sim.pools.check_kind_pools`).
    """

    def __init__(self, paths: A.AssetPaths, sample_rate: int = 16000, pool: str = "train",
                 options: "SceneOptions | None" = None, kind_pools: "dict[str, str] | None" = None):
        paths.check()
        options = options if options is not None else SceneOptions()
        self.paths, self.sample_rate, self.pool, self.options = paths, sample_rate, pools.check_pool(pool), options
        self.kind_pools = check_pools(options, pool, kind_pools)
        self.hrirs: HrirSet = load_sofa(paths.sofa, sample_rate)
        self.stamps = pools.select(A.audible_stamps(A.find_stamps(paths.stamps)), "cutout",
                                   self.pool_for("cutout"), lambda st: st.name)
        if paths.backgrounds is not None:
            bgs = [A.Background(f"custom/{p.stem}", p) for p in A.background_paths(paths.backgrounds)]
        elif options.many_backgrounds:
            bgs = A.find_backgrounds(paths.background_dirs)
        else:  # the first sets' list, in its order
            bgs = [A.Background(f"skimage/{p.stem}", p) for p in A.background_paths(None)]
        self.background_assets = pools.select(bgs, "background", self.pool_for("background"), lambda b: b.id)
        self.backgrounds = [b.path for b in self.background_assets]
        self.soundfont = SoundFont(paths.sf2) if paths.sf2 is not None else None
        self.instruments = []  # (name, program, cut-out path) with both preset and cut-out present
        if self.soundfont is not None:
            have = {(b, p) for b, p, _ in self.soundfont.presets()}
            for name, (program, stem) in sorted(paths.instruments.items()):
                png = paths.stamps / (stem + ".png")
                # An instrument belongs to the pool of its picture: one object, one pool.
                if (0, program) in have and png.is_file() and pools.in_pool("cutout", stem, self.pool_for("cutout")):
                    self.instruments.append((name, program, str(png)))
        pictures = A.find_cutouts(paths.stamps) if options.distractor_share > 0 or options.speech_share > 0 else []
        self.cutouts = pools.select(pictures, "cutout", self.pool_for("cutout"), lambda st: st.name) \
            if options.distractor_share > 0 else []
        self.voices, self.talkers, self.texts = [], [], []
        if options.speech_share > 0:
            self.voices = pools.select(A.find_voices(paths.stamps), "voice", self.pool_for("voice"), lambda v: v.id)
            talkers = [st for st in pictures if st.name in A.TALKER_STAMPS]
            self.talkers = pools.select(talkers, "cutout", self.pool_for("cutout"), lambda st: st.name)
            self.texts = A.stamp_texts(paths.stamps)
        self.sound_groups = []
        if options.extra_sound_share > 0:
            self.sound_groups = recordings.pool_sound_groups(pool, paths.sound_root)
            if not self.sound_groups:
                raise A.MissingAssetError(
                    f"extra_sound_share > 0 but no recorded sound under {paths.sound_root} in pool "
                    f"{pool!r}: install any of the Debian packages {', '.join(recordings.PACKAGES)}")
        self.clipart = []
        if options.clipart_share > 0:
            drawings = clipart.find_clipart(paths.clipart, kept_out_list=paths.clipart_kept_out)
            self.clipart = pools.select(drawings, "clipart", self.pool_for("clipart"), lambda c: c.name)
            if not self.clipart:
                raise A.MissingAssetError(
                    f"clipart_share > 0 but no clip-art drawing under "
                    f"{paths.clipart} in pool {self.pool_for('clipart')!r}: install the Debian package "
                    f"'{clipart.PACKAGE}'")
        if not self.stamps and not self.instruments:
            raise A.MissingAssetError(f"no sounding stamp or instrument in pool {self.pool_for('cutout')!r}")
        if not self.background_assets and not (options.procedural_share > 0 and self.pool_for("background") != "ood"):
            raise A.MissingAssetError(f"no background photograph in pool {self.pool_for('background')!r}")
        self._cache: dict = {}

    def pool_for(self, kind: str) -> str:
        """The pool the assets of ``kind`` come from: its own per-kind pool, else the library's."""
        return self.kind_pools.get(kind, self.pool)

    def cutout(self, path: str) -> np.ndarray:
        if ("cut", path) not in self._cache:
            self._cache[("cut", path)] = A.load_cutout(path)
        return self._cache[("cut", path)]

    def background(self, path: str) -> np.ndarray:
        """The photograph at ``path``, its longer side at most :data:`MAX_BACKGROUND_PX` (a
        frame crop needs no more; wallpapers come at up to 5120 px and decode slowly), cached."""
        if ("bg", path) not in self._cache:
            img = A.load_rgb(path)
            scale = MAX_BACKGROUND_PX / max(img.shape[:2])
            if scale < 1.0:
                img = cv2.resize(img, (int(round(img.shape[1] * scale)), int(round(img.shape[0] * scale))),
                                 interpolation=cv2.INTER_AREA)
            self._cache[("bg", path)] = img
        return self._cache[("bg", path)]

    def draw_head(self, rng: np.random.Generator) -> str:
        """A head id for one clip: :data:`BASE_HEAD` without head variation, else one of the
        pool's heads (:func:`streambin.train.sim.heads.draw_head`)."""
        if not self.options.head_variation:
            return BASE_HEAD
        from .heads import draw_head
        return draw_head(rng, self.pool_for("head"))

    def head(self, head_id: str) -> HrirSet:
        """The HRIR set of ``head_id`` (:data:`BASE_HEAD`: the SOFA file of ``paths``)."""
        if head_id == BASE_HEAD:
            return self.hrirs
        from .heads import load_head
        return load_head(head_id, self.sample_rate)

    def sound_group(self, group_id: str) -> "recordings.SoundGroup":
        for g in self.sound_groups:
            if g.id == group_id:
                return g
        raise ValueError(f"sound group {group_id!r} is not in pool {self.pool!r}")

    def sound(self, path) -> np.ndarray:
        """The recording at ``path`` as ``(n,) float32`` at the library's rate, cached."""
        key = ("snd", str(path))
        if key not in self._cache:
            self._cache[key] = A.load_sound(path, self.sample_rate)
        return self._cache[key]

    def voice(self, voice_id: str) -> A.Voice:
        for v in self.voices:
            if v.id == voice_id:
                return v
        raise ValueError(f"voice {voice_id!r} is not in pool {self.pool!r}")


def _ease(n_frames: int, a0: float, a1: float) -> np.ndarray:
    """Smooth sweep from a0 to a1 over the frames (raised-cosine ease-in/ease-out)."""
    s = np.arange(n_frames) / max(n_frames - 1, 1)
    return a0 + (a1 - a0) * (1.0 - np.cos(np.pi * s)) / 2.0


def sample_scene(rng: np.random.Generator, lib: Library, seconds: float = 10.0, fps: float = 10.0,
                 width: int = 448, height: int = 224, max_sources: int = 3,
                 room_prob: float = 0.0, moving_prob: float = 0.0,
                 instrument_prob: float = 0.3, options: SceneOptions | None = None,
                 scenario: str | None = None) -> SceneSpec:
    """Draw a random scene.

    Each sounding source: a tuxpaint stamp (its own sound), with ``instrument_prob`` (when the
    SoundFont has instruments) a GM instrument with its matching cut-out, or with the options'
    ``speech_share`` a talker cut-out with a voice; azimuth uniform inside the field of view
    (static) or a smooth sweep between two such azimuths at least 15 degrees apart (moving, with
    ``moving_prob``); elevation uniform in +-5 degrees; distance uniform 1-4 m (constant over the
    clip); gain -6..0 dB. With ``room_prob`` a shoebox room (absorption 0.15-0.6) big enough to
    hold the sources. ``options`` (default: everything varies, see :class:`SceneOptions`) and
    ``scenario`` (one of :data:`SCENARIOS`, for evaluation sets with a fixed mix: one static
    source, one photographed source, one moving source, two static sources, one source within
    5 degrees of the centre) choose the rest.
    """
    options = options if options is not None else lib.options
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds}, {fps}")
    if max_sources < 1:
        raise ValueError(f"max_sources must be >= 1, got {max_sources}")
    if scenario is not None and scenario not in SCENARIOS:
        raise ValueError(f"scenario must be None or one of {SCENARIOS}, got {scenario!r}")
    if not lib.stamps and not lib.instruments:
        raise ValueError("the library has no sounding stamps or instruments")
    n_frames = int(round(seconds * fps))
    if options.legacy and scenario is None:
        return _sample_legacy(rng, lib, seconds, fps, width, height, max_sources, room_prob,
                              moving_prob, instrument_prob, n_frames)
    # Everything beyond the first sets' draws comes from its own stream, so the first sets'
    # draw order (above) is untouched by the options.
    div = np.random.default_rng(rng.integers(2 ** 63))
    hfov = float(div.uniform(*options.hfov_range_deg)) if options.hfov_range_deg else HFOV_DEG
    a_max = hfov / 2.0 - EDGE_MARGIN_DEG if options.hfov_range_deg else MAX_ABS_AZIMUTH_DEG
    if scenario is not None:
        photograph = scenario == "photograph"
        n_src = 2 if scenario == "two_sources" else 1
    else:
        photograph = bool(div.random() < options.photograph_share)
        n_src = 1 if photograph else int(rng.integers(1, max_sources + 1))
    procedural = (lib.pool_for("background") != "ood" and (not lib.background_assets or div.random() < options.procedural_share)
                  and options.procedural_share > 0)
    if procedural:
        bg_id, bg_path, crop, proc_seed = "procedural", "", (0, 0, width, height), int(div.integers(2 ** 31))
    else:
        asset = lib.background_assets[int(div.integers(len(lib.background_assets)))]
        bg_id, bg_path, proc_seed = asset.id, str(asset.path), None
        # zoom: 35-100 % of the largest crop
        crop = _random_crop(div, lib.background(bg_path).shape[:2], width, height, (0.35, 1.0))
    scene = SceneSpec(seconds, lib.sample_rate, fps, width, height, bg_path, crop,
                      bool(div.random() < 0.5), pool=lib.pool, kind_pools=dict(lib.kind_pools),
                      kind="photograph" if photograph else "composite", hfov_deg=hfov,
                      head=lib.draw_head(div),
                      background_id=bg_id, procedural_seed=proc_seed,
                      camera=P.sample_camera(div) if options.camera_effects else None)
    stamp_order = rng.permutation(len(lib.stamps)) if lib.stamps else np.zeros(0, np.int64)
    if scenario is None:
        moving_clip = bool(rng.random() < moving_prob)
    else:
        moving_clip = scenario == "moving"
    for s in range(n_src):
        if lib.voices and lib.talkers and div.random() < options.speech_share:
            talker = lib.talkers[int(div.integers(len(lib.talkers)))]
            voice = lib.voices[int(div.integers(len(lib.voices)))]
            name, kind, cut, snd = talker.name, "speech", str(talker.png), voice.id
            h_range = (1.5, 1.9)
        elif lib.instruments and (not lib.stamps or rng.random() < instrument_prob):
            name, program, png = lib.instruments[int(rng.integers(len(lib.instruments)))]
            kind, cut, snd = "instrument", png, f"sf2:{program}"
            h_range = (0.5, 1.3)
        else:
            st = lib.stamps[int(stamp_order[s % len(stamp_order)])]
            name, kind, cut, snd = st.name, "stamp", str(st.png), str(st.ogg)
            h_range = (0.2, 1.2)
        moving = bool(moving_clip and (s == 0 or (scenario is None and rng.random() < 0.5)))
        if scenario == "centre":
            az = np.full(n_frames, div.uniform(-5.0, 5.0))
        else:
            az = _azimuth_track(div, n_frames, moving, a_max)
        el = np.full(n_frames, div.uniform(-5.0, 5.0))
        dist = np.full(n_frames, div.uniform(1.0, 4.0))
        h = float(div.uniform(*h_range)) if options.realistic_cutouts else float(div.uniform(0.5, 1.0))
        scene.sources.append(SourceSpec(name, kind, cut, snd, az, el, dist, h,
                                        float(10 ** (div.uniform(-6.0, 0.0) / 20)), moving,
                                        look=_sample_look(div) if options.realistic_cutouts else None))
    sounds_replaced = False
    if options.extra_sound_share > 0 and lib.sound_groups:  # drawn only when on (sets stay the same)
        xr = np.random.default_rng(div.integers(2 ** 63))
        sounds_replaced = bool(xr.random() < options.extra_sound_share)
        if sounds_replaced:
            for src in (s for s in scene.sources if s.kind == "stamp"):
                src.kind, src.sound = "recording", lib.sound_groups[int(xr.integers(len(lib.sound_groups)))].id
    if not sounds_replaced and options.synth_sound_share > 0:  # drawn only when on (sets stay the same)
        sy = np.random.default_rng(div.integers(2 ** 63))
        sounds_replaced = bool(sy.random() < options.synth_sound_share)
        if sounds_replaced:
            for src in (s for s in scene.sources if s.kind == "stamp"):
                src.kind, src.sound = "synth", synth_sounds.sound_id(int(sy.integers(2 ** 63)))
    if photograph:
        scene.photo = _sample_pan(div, lib, scene)
    elif lib.cutouts and not sounds_replaced and (scenario in (None, "single_static", "two_sources") and div.random() < options.distractor_share):
        used = {src.cutout for src in scene.sources}
        candidates = [c for c in lib.cutouts if str(c.png) not in used]
        for _ in range(int(div.integers(1, 3))):
            if not candidates:
                break
            c = candidates.pop(int(div.integers(len(candidates))))
            scene.sources.append(SourceSpec(
                c.name, "none", str(c.png), "", np.full(n_frames, div.uniform(-a_max, a_max)),
                np.full(n_frames, div.uniform(-5.0, 5.0)), np.full(n_frames, div.uniform(1.0, 5.0)),
                float(div.uniform(0.2, 1.2)), 0.0, False, silent=True,
                look=_sample_look(div) if options.realistic_cutouts else None))
    if options.clipart_share > 0 and lib.clipart:  # drawn only when on (sets stay the same)
        cr = np.random.default_rng(div.integers(2 ** 63))
        if cr.random() < options.clipart_share:
            drawn = cr.choice(len(lib.clipart), size=len(scene.sources),
                              replace=len(scene.sources) > len(lib.clipart))
            for src, k in zip(scene.sources, drawn):
                if src.kind != "speech":  # a talker stays a person the voice can belong to
                    src.cutout = str(lib.clipart[int(k)].png)
    # Drawn only when on (sets stay the same); never of held-out backgrounds, even where options
    # handed to this function bypass the library's check.
    if (options.mosaic_share > 0 and not photograph and not procedural
            and lib.pool_for("background") != "ood"):
        mr = np.random.default_rng(div.integers(2 ** 63))
        if mr.random() < options.mosaic_share:
            scene.mosaic = _sample_mosaic(mr, lib, width, height)
    if rng.random() < room_prob:
        scene.room = sample_room(rng, scene.sounding)
    return scene


MOSAIC_TILES = (2, 4)        # tiles per mosaic, inclusive
MOSAIC_CROP = (0.2, 1.0)     # a tile's crop: this share of the largest crop of its shape


def _sample_mosaic(rng: np.random.Generator, lib: Library, width: int, height: int) -> list:
    """Tiles of a mosaic background: the frame cut by straight cuts (each through the larger
    tile, across its longer side, at 30-70 %) into 2-4 tiles, each filled by a crop of a
    photograph of the pool (any of them, repeats allowed) of the tile's shape, 20-100 % of the
    largest such crop: ``[{"background": id, "path": str, "crop": (x0, y0, x1, y1) photo pixels,
    "box": (u0, v0, u1, v1) fractions of the frame}]``."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for _ in range(int(rng.integers(MOSAIC_TILES[0], MOSAIC_TILES[1] + 1)) - 1):
        areas = [(b[2] - b[0]) * width * (b[3] - b[1]) * height for b in boxes]
        u0, v0, u1, v1 = boxes.pop(int(np.argmax(areas)))
        t = float(rng.uniform(0.3, 0.7))
        if (u1 - u0) * width >= (v1 - v0) * height:
            cut = u0 + t * (u1 - u0)
            boxes += [(u0, v0, cut, v1), (cut, v0, u1, v1)]
        else:
            cut = v0 + t * (v1 - v0)
            boxes += [(u0, v0, u1, cut), (u0, cut, u1, v1)]
    tiles = []
    for u0, v0, u1, v1 in boxes:
        asset = lib.background_assets[int(rng.integers(len(lib.background_assets)))]
        crop = _random_crop(rng, lib.background(str(asset.path)).shape[:2], (u1 - u0) * width,
                            (v1 - v0) * height, MOSAIC_CROP)
        tiles.append({"background": asset.id, "path": str(asset.path), "crop": crop, "box": (u0, v0, u1, v1)})
    return tiles


def _random_crop(rng: np.random.Generator, image_hw: tuple, width: float, height: float, zoom: tuple) -> tuple:
    """``(x0, y0, x1, y1)`` whole pixels: a crop of an image of ``image_hw`` with the shape
    ``width : height``, ``zoom`` (lo, hi) of the largest such crop, at a uniform position (each
    side at least one pixel)."""
    ih, iw = image_hw
    ch = min(ih, iw * height / width) * rng.uniform(*zoom)
    cw = ch * width / height
    x0, y0 = rng.uniform(0, iw - cw), rng.uniform(0, ih - ch)
    return (int(x0), int(y0), max(int(x0) + 1, int(x0 + cw)), max(int(y0) + 1, int(y0 + ch)))


def _mosaic_background(scene: SceneSpec, lib: Library) -> np.ndarray:
    """``(H, W, 3) uint8``: the scene's mosaic tiles, each crop resized into its box (the boxes'
    edges rounded to whole pixels the same way on both sides, so the tiles cover the frame)."""
    W, H = scene.width, scene.height
    bg = np.zeros((H, W, 3), np.uint8)
    for tile in scene.mosaic:
        u0, v0, u1, v1 = tile["box"]
        c0, r0, c1, r1 = int(round(u0 * W)), int(round(v0 * H)), int(round(u1 * W)), int(round(v1 * H))
        if c1 <= c0 or r1 <= r0:
            continue
        x0, y0, x1, y1 = tile["crop"]
        bg[r0:r1, c0:c1] = cv2.resize(lib.background(tile["path"])[y0:y1, x0:x1], (c1 - c0, r1 - r0),
                                      interpolation=cv2.INTER_AREA)
    return bg


def _azimuth_track(rng: np.random.Generator, n_frames: int, moving: bool, a_max: float) -> np.ndarray:
    """``(n_frames,)`` azimuths: constant, uniform in +-a_max, or (moving) a smooth sweep between
    two such azimuths at least 15 degrees apart."""
    if not moving:
        return np.full(n_frames, rng.uniform(-a_max, a_max))
    a0 = rng.uniform(-a_max, a_max)
    a1 = a0
    while abs(a1 - a0) < 15.0:
        a1 = rng.uniform(-a_max, a_max)
    return _ease(n_frames, a0, a1)


def _sample_look(rng: np.random.Generator) -> dict:
    """How a cut-out is blended in: feathered edge, colour harmonisation, defocus, shadow."""
    return {"feather_px": round(float(rng.uniform(0.3, 2.0)), 3),
            "harmonise": round(float(rng.uniform(0.0, 0.3)), 3),
            "defocus_px": round(float(rng.uniform(0.4, 1.5)), 3) if rng.random() < 0.2 else 0.0,
            "shadow": round(float(rng.uniform(0.2, 0.5)), 3) if rng.random() < 0.5 else 0.0}


def _sample_pan(rng: np.random.Generator, lib: Library, scene: SceneSpec) -> dict:
    """Crop geometry of a photograph scene: the crop window (height ``crop_h`` photo pixels, top
    ``y0``) slides over the photograph so that the subject, fixed at photo column ``subject_x``,
    lands in each frame at the column of the source's azimuth (a camera pan)."""
    W, H = scene.width, scene.height
    if scene.procedural_seed is not None:
        ih, iw = 2 * H, 4 * W
    else:
        ih, iw = lib.background(scene.background).shape[:2]
    u = azimuth_to_column(scene.sources[0].azimuth_deg, W, scene.hfov_deg) / W  # (n_frames,) fractions
    ch = min(ih, iw * H / W) * rng.uniform(0.35, 0.8)
    for _ in range(40):  # shrink the window until the whole pan fits inside the photograph
        cw = ch * W / H
        lo, hi = u.max() * cw, iw - cw + u.min() * cw
        if hi >= lo:
            break
        ch *= 0.85
    else:
        raise ValueError(f"cannot pan a {iw}x{ih} photograph over azimuths "
                         f"{scene.sources[0].azimuth_deg.min():.1f}..{scene.sources[0].azimuth_deg.max():.1f}")
    return {"crop_h": round(float(ch), 3), "y0": round(float(rng.uniform(0, ih - ch)), 3),
            "subject_x": round(float(rng.uniform(lo, hi)), 3), "photo_size": [int(iw), int(ih)]}


def _sample_legacy(rng, lib, seconds, fps, width, height, max_sources, room_prob, moving_prob,
                   instrument_prob, n_frames) -> SceneSpec:
    """The first SimBinaural-lite sets' sampler, draw for draw (do not reorder its draws)."""
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
                      (int(x0), int(y0), int(x0 + cw), int(y0 + ch)), bool(rng.random() < 0.5),
                      pool=lib.pool, background_id=lib.background_assets[lib.backgrounds.index(bg)].id)
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
        az = _azimuth_track(rng, n_frames, moving, MAX_ABS_AZIMUTH_DEG)
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
        if not np.any(x):  # short clips can fall in rests only: then the melody starts at once
            m = min(int(rng.uniform(0.2, 0.8) * sr), n)
            x[:m] += lib.soundfont.note(zones, int(rng.choice(scale)), m / sr, sr)
    elif src.kind == "speech":
        x = _speech(rng, lib, lib.voice(src.sound), n)
    elif src.kind == "recording":
        x = _recording(rng, lib, lib.sound_group(src.sound), n)
    elif src.kind == "synth":
        x = synth_sounds.synth_sound(src.sound, n, sr)
    else:
        raise ValueError(f"unknown source kind {src.kind!r} (silent distractors have no signal)")
    if lib.options.sound_colour_db > 0:  # drawn only when on: sets made without it stay the same
        x = colour_sound(x, rng, lib.options.sound_colour_db, sr)
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    if rms <= 0:
        raise ValueError(f"source {src.name} rendered silent")
    return (x / rms).astype(np.float32)


COLOUR_KNOTS = 6  # equaliser knots, log-spaced from 100 Hz to Nyquist


def colour_sound(x: np.ndarray, rng: np.random.Generator, max_db: float, sample_rate: int) -> np.ndarray:
    """``x`` (``(n,)`` float) through a random smooth equaliser: gains drawn uniformly in
    ``[-max_db, max_db]`` at :data:`COLOUR_KNOTS` log-spaced frequencies, linear in dB between them
    over log frequency (flat beyond the end knots), applied in one FFT. Returns ``(n,)`` float32."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"x must be (n,) with n >= 2, got {x.shape}")
    knots = np.log(np.geomspace(100.0, sample_rate / 2, COLOUR_KNOTS))
    gains_db = rng.uniform(-max_db, max_db, COLOUR_KNOTS)
    f = np.fft.rfftfreq(x.size, 1.0 / sample_rate)
    curve_db = np.interp(np.log(np.maximum(f, 1.0)), knots, gains_db)
    return np.fft.irfft(np.fft.rfft(x) * 10.0 ** (curve_db / 20.0), n=x.size).astype(np.float32)


def _recording(rng: np.random.Generator, lib: Library, group: "recordings.SoundGroup", n: int) -> np.ndarray:
    """``(n,) float32``: random recordings of ``group`` one after another, 0-0.5 s apart,
    starting after 0-0.3 s (an effect group of one file loops, as a stamp's sound does)."""
    sr = lib.sample_rate
    pieces = [np.zeros(int(rng.uniform(0.0, 0.3) * sr), np.float32)]
    total = len(pieces[0])
    while total < n:
        path = group.files[int(rng.integers(len(group.files)))]
        x = lib.sound(path)
        if x.size == 0:  # it would add nothing but gaps (and, with a zero gap, never fill n)
            raise ValueError(f"recording {path} of sound group {group.id!r} is empty")
        gap = np.zeros(int(rng.uniform(0.0, 0.5) * sr), np.float32)
        pieces += [x, gap]
        total += len(x) + len(gap)
    return np.concatenate(pieces)[:n]


def _speech(rng: np.random.Generator, lib: Library, voice: A.Voice, n: int) -> np.ndarray:
    """``(n,) float32`` of a talker: utterances of ``voice`` separated by 0.1-0.7 s pauses,
    starting after 0-0.3 s. espeak-ng voices say Tux Paint's stamp descriptions at a random
    speed and pitch; a recorded voice plays random recordings of its language."""
    sr = lib.sample_rate
    pieces = [np.zeros(int(rng.uniform(0.0, 0.3) * sr), np.float32)]
    total = len(pieces[0])
    while total < n:
        if voice.kind == "espeak":
            text = lib.texts[int(rng.integers(len(lib.texts)))]
            x = A.synthesize_speech(voice.name, text, sr, speed_wpm=int(rng.integers(130, 190)),
                                    pitch=int(rng.integers(30, 71)))
        else:
            x = A.load_sound(voice.files[int(rng.integers(len(voice.files)))], sr)
        gap = np.zeros(int(rng.uniform(0.1, 0.7) * sr), np.float32)
        pieces += [x, gap]
        total += len(x) + len(gap)
    return np.concatenate(pieces)[:n]


def _place(width: int, height: int, src: SourceSpec, cut_h: int, cut_w: int, j: int,
           hfov_deg: float = HFOV_DEG):
    """Unclipped integer box ``(x0, y0, x1, y1)`` of the cut-out in frame ``j``."""
    az, el = np.deg2rad(src.azimuth_deg[j]), np.deg2rad(src.elevation_deg[j])
    f = focal_px(width, hfov_deg)
    u = width / 2.0 + f * np.tan(az)
    v = height / 2.0 - f * np.tan(el) / np.cos(az)
    x0 = int(round(u - cut_w / 2.0))
    y0 = int(round(v - cut_h / 2.0))
    return x0, y0, x0 + cut_w, y0 + cut_h


def _background(scene: SceneSpec, lib: Library, j: int) -> np.ndarray:
    """``(H, W, 3) uint8`` background of frame ``j``: the crop of the photograph (or procedural
    texture), resized and mirrored as drawn; in a photograph scene the crop window pans."""
    W, H = scene.width, scene.height
    if scene.procedural_seed is not None:
        shape = (2 * H, 4 * W) if scene.photo is not None else (H, W)
        key = ("proc", scene.procedural_seed, shape)
        if key not in lib._cache:
            if len(lib._cache) > 256:  # online generation draws a new texture per item
                lib._cache.clear()
            lib._cache[key] = P.procedural_background(np.random.default_rng(scene.procedural_seed), *shape)
        img = lib._cache[key]
    elif scene.mosaic is not None:
        bg = _mosaic_background(scene, lib)
        return np.ascontiguousarray(bg[:, ::-1]) if scene.background_flip else bg
    else:
        img = lib.background(scene.background)
    if scene.photo is None:
        x0, y0, x1, y1 = scene.background_crop
        bg = cv2.resize(img[y0:y1, x0:x1], (W, H), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(bg[:, ::-1]) if scene.background_flip else bg
    if scene.background_flip:  # the photograph itself is mirrored; the pan is drawn on it
        img = img[:, ::-1]
    ch = scene.photo["crop_h"]
    cw = ch * W / H
    u = float(azimuth_to_column(scene.sources[0].azimuth_deg[j], W, scene.hfov_deg)) / W
    x0 = scene.photo["subject_x"] - u * cw
    y0 = scene.photo["y0"]
    # Sub-pixel crop by an affine warp: the pan is smooth, not in whole photo pixels.
    m = np.array([[W / cw, 0.0, -x0 * W / cw], [0.0, H / ch, -y0 * H / ch]])
    if cw > 2 * W:  # shrink first so the warp does not alias
        s = 2 * W / cw
        small = cv2.resize(np.ascontiguousarray(img), (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        m[:, :2] /= s
        img = small
    return cv2.warpAffine(np.ascontiguousarray(img), m, (W, H), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def compose_frames(scene: SceneSpec, lib: Library):
    """Render the frames.

    Returns:
        frames: list of ``n_frames`` arrays ``(H, W, 3) uint8`` RGB (the same object repeated
        when nothing moves), and bboxes: per source (silent ones included, in ``scene.sources``
        order) a ``(n_frames, 4)`` int array of ``[x0, y0, x1, y1]`` clipped to the frame
        (x1, y1 exclusive).
    """
    W, H = scene.width, scene.height
    f = focal_px(W, scene.hfov_deg)
    bg = _background(scene, lib, 0)
    max_h = int(0.9 * H) if all(s.look is None for s in scene.sources) else int(1.2 * H)
    cuts = []
    for src in scene.sources:
        rgba = lib.cutout(src.cutout)
        h_px = int(np.clip(round(f * src.height_m / float(src.distance_m[0])), 4, max_h))
        w_px = max(2, int(round(rgba.shape[1] * h_px / rgba.shape[0])))
        w_px = min(w_px, int(0.6 * W))
        interp = cv2.INTER_AREA if h_px < rgba.shape[0] else cv2.INTER_LINEAR  # AREA only shrinks well
        small = cv2.resize(rgba, (w_px, h_px), interpolation=interp)
        if src.look is not None:
            small = P.soften_cutout(small, src.look["feather_px"], src.look["harmonise"],
                                    src.look["defocus_px"], bg.reshape(-1, 3).mean(axis=0))
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
        fr = (_background(scene, lib, j) if scene.photo is not None and j > 0 else bg).copy()
        for i in order:
            cut = cuts[i]
            bx0, by0, bx1, by1 = _place(W, H, scene.sources[i], cut.shape[0], cut.shape[1], j,
                                        scene.hfov_deg)
            cx0, cy0, cx1, cy1 = max(bx0, 0), max(by0, 0), min(bx1, W), min(by1, H)
            bboxes[i][j] = (cx0, cy0, max(cx0, cx1), max(cy0, cy1))
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            look = scene.sources[i].look
            if look is not None and look["shadow"] > 0:
                P.draw_shadow(fr, (bx0, by0, bx1, by1), look["shadow"])
            patch = cut[cy0 - by0: cy1 - by0, cx0 - bx0: cx1 - bx0].astype(np.float32)
            alpha = patch[:, :, 3:4] / 255.0
            roi = fr[cy0:cy1, cx0:cx1].astype(np.float32)
            fr[cy0:cy1, cx0:cx1] = np.clip(alpha * patch[:, :, :3] + (1 - alpha) * roi + 0.5,
                                           0, 255).astype(np.uint8)
        if scene.camera is not None:
            fr = P.apply_camera(fr, scene.camera, j)
        frames.append(fr)
        last = fr
    return frames, bboxes


def render_audio(scene: SceneSpec, lib: Library, rng: np.random.Generator):
    """Render the binaural audio of a scene.

    Returns:
        audio: ``(2, n_samples) float32`` left/right, not yet peak-normalised;
        brirs: list (per sounding source) of ``(2, L) float32`` BRIRs of the first frame's position.
    """
    sr, n = scene.sample_rate, scene.n_samples
    hrirs = lib.head(scene.head)
    room = RoomModel(hrirs, scene.room) if scene.room is not None else None
    key_t = scene.frame_times()
    out = np.zeros((2, n), dtype=np.float64)
    first_brirs = []
    for src in scene.sounding:  # silent distractors draw nothing: the audio ignores them
        tail = None
        if room is not None:
            tail = binaural_tail(rng, int(2.2 * sr) + hrirs.n_taps, sr)
        positions = list(zip(src.azimuth_deg, src.elevation_deg, src.distance_m))
        if not src.moving:
            positions = positions[:1]

        def brir_at(a, e, d):
            if room is None:
                return anechoic_brir(hrirs, a, e, d)
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
