"""Find and load the measured assets the scene generator is allowed to use.

Only these assets go into the synthetic data (the project's data policy: measured assets from Debian/PyPI packages, no kept-out package):

=====================  ==============================================  =========================
asset                  default location                                Debian package
=====================  ==============================================  =========================
HRIRs (MIT KEMAR)      /usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa  ``libmysofa1``
photo cut-outs+sounds  /usr/share/tuxpaint/stamps/** (stem.png+.ogg)   ``tuxpaint-stamps-default``
instrument samples     /usr/share/sounds/sf2/FluidR3_GM.sf2            ``fluid-soundfont-gm``
backgrounds            scikit-image's bundled photographs              ``scikit-image`` (PyPI)
more backgrounds       /usr/share/backgrounds, /usr/share/wallpapers,  ``gnome-backgrounds``,
                       /usr/share/tuxpaint/templates                   ``mate-backgrounds``,
                                                                       ``plasma-workspace-wallpapers``,
                                                                       ``ukui-wallpapers``,
                                                                       ``lomiri-wallpapers*``,
                                                                       ``sway-backgrounds``,
                                                                       ``tuxpaint-data``
silent cut-outs        every RGBA stamp PNG (sounding or not)          ``tuxpaint-stamps-default``
recorded speech        tuxpaint ``<stem>_desc_<lang>.ogg`` recordings   ``tuxpaint-stamps-default``
synthetic speech       espeak-ng voices and variants                   ``espeak-ng``
effects, spoken words  see :mod:`streambin.train.sim.recordings`        games' and KDE's data
clip-art objects       /usr/share/openclipart/png (see                 ``openclipart-png``
                       :mod:`streambin.train.sim.clipart`)
=====================  ==============================================  =========================

Which of these a scene may use is decided by its pool (:mod:`streambin.train.sim.pools`).

A stamp is a sounding source only if both ``<stem>.png`` (with alpha) and ``<stem>.ogg`` exist and
the sound is not silent; every stamp picture may appear as a silent distractor. The
``<stem>_desc_<lang>.ogg`` files are spoken descriptions: they are used only as recorded speech
(a talker's voice), never as the sound of their stamp. Instruments are
General-MIDI presets of the SoundFont shown with the tuxpaint cut-out of the same instrument
(:data:`INSTRUMENTS`); an instrument whose cut-out is missing is skipped.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
import soxr

from .clipart import DEFAULT_CLIPART
from .clipart import KEPT_OUT_LIST as CLIPART_KEPT_OUT_LIST
from .recordings import SOUND_ROOT

DEFAULT_SOFA = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
DEFAULT_STAMPS = Path("/usr/share/tuxpaint/stamps")
DEFAULT_SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")

# Real photographs shipped inside scikit-image's wheel (no pooch download needed). Grey ones are
# replicated to RGB. Excluded: synthetic/diagram images (logo, text, page, color, phantom,
# chessboard, binary blobs) and microscopy/medical images (cell, ihc, retina, microaneurysms).
SKIMAGE_BACKGROUNDS = (
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "hubble_deep_field.jpg",
    "motorcycle_left.png", "motorcycle_right.png", "camera.png", "moon.png", "coins.png",
    "grass.png", "gravel.png", "brick.png",
)

# General-MIDI program (bank 0) -> tuxpaint stamp (relative, without extension) of the same
# instrument. Chosen so that picture and sound always show the same kind of instrument.
INSTRUMENTS = {
    "violin": (40, "hobbies/music/string/violin"),
    "cello": (42, "hobbies/music/string/cello"),
    "bassoon": (70, "hobbies/music/wind/bassoon"),
    "trumpet": (56, "hobbies/music/brass/trumpet"),
    "guitar_classical": (24, "hobbies/music/string/guitar_classical"),
    "guitar_electric": (27, "hobbies/music/string/guitar_electric"),
    "guitar_electric_bass": (33, "hobbies/music/string/guitar_electric_bass"),
}


class MissingAssetError(FileNotFoundError):
    """An asset the generator needs is missing; the message names the package to install."""


@dataclass(frozen=True)
class Stamp:
    """A photo cut-out with its real sound: ``png`` RGBA image and ``ogg`` sound paths."""

    name: str
    png: Path
    ogg: Path


@dataclass
class AssetPaths:
    """Where the generator's assets live (defaults: the Debian/scikit-image locations).

    ``backgrounds`` is a list of image files; ``None`` means the photographs found under
    ``background_dirs`` plus scikit-image's bundled ones (only scikit-image's when the scene
    options ask for the first sets' backgrounds). ``sf2`` may be ``None`` to generate scenes
    without instrument sources.
    """

    sofa: Path = DEFAULT_SOFA
    stamps: Path = DEFAULT_STAMPS
    sf2: Path | None = DEFAULT_SF2
    backgrounds: list[Path] | None = None
    instruments: dict = field(default_factory=lambda: dict(INSTRUMENTS))
    background_dirs: tuple = field(default_factory=lambda: BACKGROUND_DIRS)
    sound_root: Path = SOUND_ROOT  # where recordings.COLLECTIONS' directories live
    clipart: Path = DEFAULT_CLIPART  # openclipart-png's PNG root (streambin.train.sim.clipart)
    clipart_kept_out: Path = CLIPART_KEPT_OUT_LIST  # its drawings that a kept-out package shares

    def check(self) -> None:
        """Raise :class:`MissingAssetError` naming the package for the first missing asset."""
        if not Path(self.sofa).is_file():
            raise MissingAssetError(
                f"HRIR file {self.sofa} not found: install the Debian package 'libmysofa1' "
                "(apt-get install libmysofa1)")
        if not Path(self.stamps).is_dir() or not find_stamps(self.stamps):
            raise MissingAssetError(
                f"no tuxpaint stamps (PNG + OGG of the same name) under {self.stamps}: install "
                "the Debian package 'tuxpaint-stamps-default'")
        if self.sf2 is not None and not Path(self.sf2).is_file():
            raise MissingAssetError(
                f"SoundFont {self.sf2} not found: install the Debian package 'fluid-soundfont-gm' "
                "(or pass sf2=None to generate without instrument sources)")
        if not background_paths(self.backgrounds):
            raise MissingAssetError(
                "no background photographs found: install the PyPI package 'scikit-image' "
                "(its bundled images are used)")


def find_stamps(root: str | Path) -> list[Stamp]:
    """All stamps under ``root`` having both ``<stem>.png`` and ``<stem>.ogg``, sorted by name.

    Sorting makes the list (and hence every scene drawn from it) independent of file-system
    order.
    """
    root = Path(root)
    out = []
    for ogg in root.rglob("*.ogg"):
        if "_desc" in ogg.stem:
            continue
        png = ogg.with_suffix(".png")
        if png.is_file():
            out.append(Stamp(str(ogg.relative_to(root).with_suffix("")), png, ogg))
    return sorted(out, key=lambda s: s.name)


def audible_stamps(stamps: list[Stamp], min_rms: float = 1e-4) -> list[Stamp]:
    """The stamps whose sound decodes and has an RMS of at least ``min_rms`` (a few tuxpaint
    OGGs, e.g. giraffe and iguana, are silent placeholders). Order is kept."""
    out = []
    for st in stamps:
        try:
            x = load_sound(st.ogg, 16000)
        except (RuntimeError, ValueError, sf.LibsndfileError):
            continue
        if x.size and np.sqrt(np.mean(x.astype(np.float64) ** 2)) >= min_rms:
            out.append(st)
    return out


def background_paths(backgrounds: list[Path] | None = None) -> list[Path]:
    """Background image files: the given list, or scikit-image's bundled photographs."""
    if backgrounds is not None:
        return [Path(p) for p in backgrounds if Path(p).is_file()]
    try:
        import skimage.data
    except ImportError:
        return []
    d = Path(os.path.dirname(skimage.data.__file__))
    return [d / n for n in SKIMAGE_BACKGROUNDS if (d / n).is_file()]


def load_rgb(path: str | Path) -> np.ndarray:
    """Load an image as ``(H, W, 3) uint8`` RGB (grey replicated, alpha dropped)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    if img.dtype != np.uint8:
        img = (img / (np.iinfo(img.dtype).max / 255.0)).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)


def load_cutout(path: str | Path) -> np.ndarray:
    """Load a cut-out as ``(h, w, 4) uint8`` RGBA cropped to its non-transparent pixels.

    Raises:
        ValueError: if the image has no alpha channel or is fully transparent.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(f"cut-out {path} must be an RGBA PNG (h, w, 4), got "
                         f"{None if img is None else img.shape}")
    if img.dtype != np.uint8:
        img = (img / 257.0).astype(np.uint8)
    rgba = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    ys, xs = np.nonzero(rgba[:, :, 3] > 0)
    if len(ys) == 0:
        raise ValueError(f"cut-out {path} is fully transparent")
    return rgba[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def load_sound(path: str | Path, sample_rate: int) -> np.ndarray:
    """Load a sound file as ``(n,) float32`` mono at ``sample_rate`` (soxr resampling)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


# ----------------------------------------------------------------------------- diverse assets
# Directories of real photographs shipped by Debian packages (wallpaper collections and Tux
# Paint's photo templates). Images smaller than MIN_BACKGROUND_PX on either side are skipped.
BACKGROUND_DIRS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"),
                   Path("/usr/share/tuxpaint/templates"))
BACKGROUND_PACKAGES = ("gnome-backgrounds", "mate-backgrounds", "plasma-workspace-wallpapers",
                       "ukui-wallpapers", "lomiri-wallpapers", "lomiri-wallpapers-20.04",
                       "sway-backgrounds", "tuxpaint-data")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MIN_BACKGROUND_PX = 200
_SIZE_SUFFIX = re.compile(r"(_\d+x\d+)?(_Portrait)?$")
# Tux Paint stamps that show a person: what a talking source (speech) is drawn as.
TALKER_STAMPS = ("people/fireman240a", "people/fireman200b", "people/cartoon/mermaid",
                 "people/cartoon/snowman")


@dataclass(frozen=True)
class Background:
    """A background photograph: ``id`` its identity (one per picture, whatever its resolutions)."""

    id: str
    path: Path


def _image_size(path: Path):
    """(width, height) read from the file header without decoding the pixels, or None."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - unreadable files are simply not backgrounds
        return None


def find_backgrounds(dirs=BACKGROUND_DIRS, with_skimage: bool = True) -> list[Background]:
    """Every photograph under ``dirs`` (plus scikit-image's bundled ones), one per identity,
    sorted by id.

    Identity: the path relative to its directory without the extension; a KDE-style wallpaper
    (``<Name>/contents/images/<W>x<H>.jpg``) is one identity ``<Name>`` whose largest file is used.
    """
    best: dict[str, tuple[int, Path]] = {}
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in _IMAGE_SUFFIXES or not p.is_file():
                continue
            rel = p.relative_to(root)
            parts = rel.parts
            if "contents" in parts:  # KDE wallpaper package: Name/contents/images*/WxH.ext
                ident = f"{root.name}/{parts[0]}"
            else:  # one picture at several sizes: Name_3840x2160, Name_1136x640_Portrait, ...
                ident = _SIZE_SUFFIX.sub("", f"{root.name}/{rel.with_suffix('')}")
            if "screenshot" in p.name.lower() or "preview" in p.name.lower():
                continue
            size = _image_size(p)
            if size is None or min(size) < MIN_BACKGROUND_PX:
                continue
            area = size[0] * size[1]
            if ident not in best or area > best[ident][0]:
                best[ident] = (area, p)
    out = [Background(k, v[1]) for k, v in best.items()]
    if with_skimage:
        out += [Background(f"skimage/{p.stem}", p) for p in background_paths(None)]
    return sorted(out, key=lambda b: b.id)


def has_alpha_channel(path: str | Path) -> bool:
    """Whether the PNG decodes with an alpha channel (what :func:`load_cutout` needs), read from
    its header: RGBA, grey + alpha, or a palette with transparency. An RGB picture with a
    colour-key transparency counts as none: OpenCV decodes some without alpha (Tux Paint's
    stoplight road signs)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return image_has_alpha(im)
    except OSError:
        return False


def image_has_alpha(im) -> bool:
    """Whether the opened PIL image ``im`` decodes with an alpha channel (see
    :func:`has_alpha_channel`); reads only its header."""
    return im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)


def find_cutouts(root: str | Path) -> list[Stamp]:
    """Every stamp picture (``<stem>.png``) with an alpha channel under ``root``, sounding or not,
    sorted by name; the ``ogg`` field is the sound file where one exists (else a non-existent
    path). Pictures without alpha (4 of Tux Paint's 802) are left out: they cannot be cut out."""
    root = Path(root)
    out = []
    for png in root.rglob("*.png"):
        if has_alpha_channel(png):
            out.append(Stamp(str(png.relative_to(root).with_suffix("")), png, png.with_suffix(".ogg")))
    return sorted(out, key=lambda s: s.name)


@dataclass(frozen=True)
class Voice:
    """A voice: ``id`` its identity; ``kind`` "espeak" (``name`` is an espeak-ng voice spec such
    as ``en+m3``) or "recorded" (``files`` are recordings of one language)."""

    id: str
    kind: str
    name: str
    files: tuple = ()


# espeak-ng languages and variants used for synthetic speech (voices people are likely to
# speak to a webcam in, with male/female/other variants).
ESPEAK_LANGUAGES = ("en", "en-us", "en-gb-scotland", "fr", "de", "es", "it", "pt", "nl", "sv",
                    "pl", "ru", "hi", "cmn", "ja", "tr", "el", "fi", "cs", "ro")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "whisper")


def find_voices(stamps_root: str | Path = DEFAULT_STAMPS, espeak: bool = True) -> list[Voice]:
    """Synthetic espeak-ng voices (if ``espeak-ng`` is on the PATH) and one recorded voice per
    language of the Tux Paint spoken descriptions, sorted by id."""
    import shutil

    out = []
    if espeak and shutil.which("espeak-ng"):
        for lang in ESPEAK_LANGUAGES:
            for var in ESPEAK_VARIANTS:
                out.append(Voice(f"espeak:{lang}+{var}", "espeak", f"{lang}+{var}"))
    by_lang: dict[str, list[Path]] = {}
    root = Path(stamps_root)
    if root.is_dir():
        for p in root.rglob("*_desc_*.ogg"):
            lang = p.name.rsplit("_desc_", 1)[1].split(".")[0]
            by_lang.setdefault(lang, []).append(p)
    for lang, files in sorted(by_lang.items()):
        if len(files) >= 5:  # a language with a handful of files is too little to be a voice
            out.append(Voice(f"rec:{lang}", "recorded", lang, tuple(sorted(files))))
    return sorted(out, key=lambda v: v.id)


def stamp_texts(stamps_root: str | Path = DEFAULT_STAMPS, limit: int = 2000) -> list[str]:
    """Short English sentences for synthetic speech: the first line of Tux Paint's stamp
    description files (``<stem>.txt``), sorted; a few fixed sentences where there are none."""
    texts = []
    root = Path(stamps_root)
    if root.is_dir():
        for p in sorted(root.rglob("*.txt"))[:limit]:
            try:
                line = p.read_text(errors="ignore").splitlines()[0].strip()
            except (OSError, IndexError):
                continue
            if 10 <= len(line) <= 200 and "=" not in line:
                texts.append(line)
    return texts or ["Hello, can you hear me?", "The weather is lovely today.",
                     "Let us meet at the station at five.", "I think the camera is on now."]


def synthesize_speech(voice: str, text: str, sample_rate: int, speed_wpm: int = 160,
                      pitch: int = 50) -> np.ndarray:
    """``(n,) float32`` speech of ``text`` by espeak-ng voice ``voice`` at ``sample_rate``."""
    import io
    import subprocess

    if not text.strip():
        raise ValueError("text must not be empty")
    r = subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(speed_wpm)), "-p", str(int(pitch)),
                        "--stdout", text], capture_output=True, timeout=30, check=False)
    if r.returncode != 0 or not r.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {r.stderr.decode(errors='ignore')[:200]}")
    x, sr = sf.read(io.BytesIO(r.stdout), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)
