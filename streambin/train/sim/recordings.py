"""Recorded sounds beyond the cut-outs' own: sound effects and spoken words from Debian packages.

Tux Paint's stamps bring only about a hundred sounds, and a model trained on them learns side
filters that hold for those sounds and not for others. These collections widen what a source
can sound like. A scene that uses them (``SceneOptions.extra_sound_share``) keeps its cut-out
pictures and plays one of these recordings in place of the stamp's own sound; such scenes get
no silent distractors, because nothing in the picture then says which object sounds.

==================  ====================================================  ========================
collection          files                                                 Debian package
==================  ====================================================  ========================
heroes              /usr/share/games/heroes/sfx/*.wav                     ``heroes-sound-effects``
oxygen              /usr/share/sounds/Oxygen-*.ogg                        ``oxygen-sounds``
freedesktop         /usr/share/sounds/freedesktop/stereo/*.oga            ``sound-theme-freedesktop``
frozen-bubble       /usr/share/games/frozen-bubble/snd/*.ogg              ``frozen-bubble-data``
pingus              /usr/share/games/pingus/data/sounds/*.wav             ``pingus-data``
chromium-bsu        /usr/share/games/chromium-bsu/wav/*.wav               ``chromium-bsu-data``
abe                 /usr/share/games/abe/sounds/*.wav                     ``abe-data``
tuxtype             /usr/share/tuxtype/sounds/*.{wav,ogg}                 ``tuxtype-data``
klettres            /usr/share/klettres/<language>/**/*.ogg (letters and  ``klettres-data``
                    syllables spoken by native speakers)
ktuberling          /usr/share/ktuberling/sounds/<language>/*.ogg         ``ktuberling-data``
                    (words spoken by native speakers)
==================  ====================================================  ========================

A **group** is one identity for the pool rule (:mod:`streambin.train.sim.pools`, kind
``"sound"``): one effect file (``effect:<collection>/<stem>``), or all the words of one
language of one collection (``words:<collection>/<language>``, so that a speaker never sits in
both pools). A source that plays a group plays random files of it with short pauses between.

Kept out: the freedesktop theme's channel announcements (``audio-channel-*``) and test signal
may be the same recordings as ``alsa-utils``' sound files, which are reserved for the
independent evaluation; they are never listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import pools

SOUND_ROOT = Path("/usr/share")
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac")
MIN_WORDS_PER_LANGUAGE = 10  # fewer recordings of a language are too few to be a speaker group

# (collection, directory under the root, file-name glob, "effect" or "words", Debian package)
COLLECTIONS = (
    ("heroes", "games/heroes/sfx", "*", "effect", "heroes-sound-effects"),
    ("oxygen", "sounds", "Oxygen-*", "effect", "oxygen-sounds"),
    ("freedesktop", "sounds/freedesktop/stereo", "*", "effect", "sound-theme-freedesktop"),
    ("frozen-bubble", "games/frozen-bubble/snd", "*", "effect", "frozen-bubble-data"),
    ("pingus", "games/pingus/data/sounds", "*", "effect", "pingus-data"),
    ("chromium-bsu", "games/chromium-bsu/wav", "*", "effect", "chromium-bsu-data"),
    ("abe", "games/abe/sounds", "*", "effect", "abe-data"),
    ("tuxtype", "tuxtype/sounds", "*", "effect", "tuxtype-data"),
    ("klettres", "klettres", "**/*", "words", "klettres-data"),
    ("ktuberling", "ktuberling/sounds", "**/*", "words", "ktuberling-data"),
)
PACKAGES = tuple(sorted({c[4] for c in COLLECTIONS}))
KEPT_OUT_PREFIXES = ("audio-channel-", "audio-test-signal")


@dataclass(frozen=True)
class SoundGroup:
    """One identity of recorded sound: ``id`` as in the module docstring, ``files`` its
    recordings (sorted, at least one)."""

    id: str
    files: tuple

    def __post_init__(self):
        if not self.files:
            raise ValueError(f"sound group {self.id!r} has no files")


def _audio_files(directory: Path, pattern: str) -> list[Path]:
    return sorted(p for p in directory.glob(pattern)
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                  and not p.name.startswith(KEPT_OUT_PREFIXES))


def find_sound_groups(root: str | Path = SOUND_ROOT) -> list[SoundGroup]:
    """Every group of the installed collections under ``root`` (missing ones are skipped),
    sorted by id. Words are grouped by their language directory (``sr@latin`` counts as
    ``sr``: the same speakers in another script)."""
    root = Path(root)
    groups: dict[str, list[Path]] = {}
    for name, sub, pattern, kind, _package in COLLECTIONS:
        directory = root / sub
        if not directory.is_dir():
            continue
        for p in _audio_files(directory, pattern):
            if kind == "effect":
                key = f"effect:{name}/{p.stem}"
            else:
                language = p.relative_to(directory).parts[0].split("@")[0]
                key = f"words:{name}/{language}"
            groups.setdefault(key, []).append(p)
    out = [SoundGroup(k, tuple(sorted(v))) for k, v in groups.items()
           if not k.startswith("words:") or len(v) >= MIN_WORDS_PER_LANGUAGE]
    return sorted(out, key=lambda g: g.id)


def pool_sound_groups(pool: str, root: str | Path = SOUND_ROOT) -> list[SoundGroup]:
    """The groups of ``pool`` ("train", "ood" or "all")."""
    return pools.select(find_sound_groups(root), "sound", pool, lambda g: g.id)
