"""Find and load the measured assets the scene generator is allowed to use.

Only these assets go into the synthetic data (see DESIGN.md, "Data"):

=====================  ==============================================  =========================
asset                  default location                                Debian package
=====================  ==============================================  =========================
HRIRs (MIT KEMAR)      /usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa  ``libmysofa1``
photo cut-outs+sounds  /usr/share/tuxpaint/stamps/** (stem.png+.ogg)   ``tuxpaint-stamps-default``
instrument samples     /usr/share/sounds/sf2/FluidR3_GM.sf2            ``fluid-soundfont-gm``
backgrounds            scikit-image's bundled photographs              ``scikit-image`` (PyPI)
=====================  ==============================================  =========================

A stamp is used only if both ``<stem>.png`` (with alpha) and ``<stem>.ogg`` exist and the sound
is not silent; the ``<stem>_desc_<lang>.ogg`` files are spoken descriptions and are not used. Instruments are
General-MIDI presets of the SoundFont shown with the tuxpaint cut-out of the same instrument
(:data:`INSTRUMENTS`); an instrument whose cut-out is missing is skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
import soxr

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

    ``backgrounds`` is a list of image files; ``None`` means scikit-image's bundled photographs.
    ``sf2`` may be ``None`` to generate scenes without instrument sources.
    """

    sofa: Path = DEFAULT_SOFA
    stamps: Path = DEFAULT_STAMPS
    sf2: Path | None = DEFAULT_SF2
    backgrounds: list[Path] | None = None
    instruments: dict = field(default_factory=lambda: dict(INSTRUMENTS))

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
