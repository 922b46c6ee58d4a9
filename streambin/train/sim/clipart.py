"""Clip art: many more object pictures than Tux Paint's stamps, drawn in place of a source's own.

Debian's ``openclipart-png`` (Open Clip Art Library, public domain) ships about 8,100 RGBA
drawings under ``/usr/share/openclipart/png/<category>/...``. Only the categories that show
objects a scene could hold (:data:`OBJECT_CATEGORIES`: animals, people, vehicles, food, ...) are
used; icons, shapes, symbols, flags and patterns are not. The pictures have no sounds: a scene
that uses them keeps the sound its source drew and only changes what the source looks like, so
clip art widens what the visual path sees without touching what the audio path hears.

Kept out: GCompris, whose ``gcompris-qt-data`` is reserved for the independent evaluation, draws
many of its pictures from Open Clip Art. Every file whose artwork also appears there is listed
in ``openclipart_kept_out.txt`` beside this module (how the list was made is in its header) and
is never returned by :func:`find_clipart`.

Identity (for :mod:`streambin.train.sim.pools`, kind ``"clipart"``): the path relative to the
package's PNG root without the extension.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLIPART = Path("/usr/share/openclipart/png")
PACKAGE = "openclipart-png"
KEPT_OUT_LIST = Path(__file__).with_name("openclipart_kept_out.txt")
# A few drawings are rendered at up to 25,000 px a side (600 M pixels, gigabytes decoded); those
# and thumbnails are skipped.
MAX_SIDE_PX = 4096
MIN_SIDE_PX = 32
# Top-level categories whose drawings are things that could sit in a camera's view and sound.
OBJECT_CATEGORIES = ("animals", "buildings", "containers", "decorations", "education",
                     "electronics", "food", "office", "people", "plants", "recreation", "science",
                     "tools", "transportation")
# Within them, subtrees of signs, symbols and playing cards rather than things (road signs and
# arrows could even teach a side from what a picture says rather than where it is).
EXCLUDED_SUBTREES = ("transportation/aiga-symbols", "transportation/roadsigns",
                     "recreation/games/cards", "recreation/religion", "people/smilies",
                     "tools/weapons")


@dataclass(frozen=True)
class ClipArt:
    """One clip-art drawing: ``name`` its identity, ``png`` the RGBA file."""

    name: str
    png: Path


def kept_out_names(list_path: str | Path = KEPT_OUT_LIST) -> set[str]:
    """The identities (relative paths without extension) listed in ``list_path``; lines starting
    with ``#`` and blank lines are skipped.

    Raises:
        FileNotFoundError: if the list is missing (clip art is never used without it).
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise FileNotFoundError(f"the kept-out list {list_path} is missing: without it clip art "
                                "could carry a kept-out package's pictures into training")
    names = set()
    for line in list_path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(str(Path(line).with_suffix("")))
    return names


def usable_drawing(png: str | Path) -> bool:
    """Whether ``png`` is a drawing :func:`streambin.train.sim.assets.load_cutout` can cut out:
    RGBA (or grey/palette with transparency), both sides in [MIN_SIDE_PX, MAX_SIDE_PX] (read
    from the header first, so the huge ones are never decoded), not fully transparent (two of
    the package's drawings are)."""
    from PIL import Image

    from .assets import image_has_alpha

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(png) as im:
                if not image_has_alpha(im) or not MIN_SIDE_PX <= min(im.size) <= max(im.size) <= MAX_SIDE_PX:
                    return False
                return im.convert("RGBA").getchannel("A").getbbox() is not None
        except (OSError, Image.DecompressionBombError):
            return False


def find_clipart(root: str | Path = DEFAULT_CLIPART, categories=OBJECT_CATEGORIES,
                 kept_out_list: str | Path = KEPT_OUT_LIST) -> list[ClipArt]:
    """Every usable drawing (:func:`usable_drawing`) under ``root``'s ``categories``, outside
    :data:`EXCLUDED_SUBTREES`, that the kept-out list does not name, sorted by identity (so
    scenes drawn from the list do not depend on file-system order).

    Returns an empty list when ``root`` does not exist (the package is not installed).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    unknown = sorted(set(categories) - set(OBJECT_CATEGORIES))
    if unknown:
        raise ValueError(f"categories must be among {OBJECT_CATEGORIES}, got unknown {unknown}")
    excluded = kept_out_names(kept_out_list)
    excluded_prefixes = tuple(t + "/" for t in EXCLUDED_SUBTREES)
    out = []
    for category in categories:
        for png in (root / category).rglob("*.png"):
            name = str(png.relative_to(root).with_suffix(""))
            if name not in excluded and not name.startswith(excluded_prefixes) and usable_drawing(png):
                out.append(ClipArt(name, png))
    return sorted(out, key=lambda c: c.name)
