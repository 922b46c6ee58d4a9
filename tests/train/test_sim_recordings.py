"""The recorded-sound collections: grouping, the kept-out files, the pool split."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streambin.train.sim import pools
from streambin.train.sim import recordings as R


def write_sound_root(root: Path, n_effects: int = 12) -> Path:
    """A fake /usr/share: heroes effects, freedesktop (with its kept-out channel announcement),
    klettres words in French and in a language with too few files, ktuberling words in
    Serbian in two scripts. Every file is 0.2 s of a tone."""
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000)).astype(np.float32)

    def put(rel: str):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), tone, 16000)

    for k in range(n_effects):
        put(f"games/heroes/sfx/boom{k:02d}.wav")
    put("sounds/freedesktop/stereo/bell.wav")
    put("sounds/freedesktop/stereo/audio-channel-front-left.wav")
    put("sounds/freedesktop/stereo/audio-test-signal.wav")
    (root / "sounds/freedesktop/stereo/index.theme").write_text("not audio")
    for k in range(R.MIN_WORDS_PER_LANGUAGE):
        put(f"klettres/fr/alpha/{k}.wav")
    put("klettres/xx/alpha/a.wav")  # too few recordings to be a speaker group
    for k in range(R.MIN_WORDS_PER_LANGUAGE // 2):
        put(f"ktuberling/sounds/sr/w{k}.wav")
        put(f"ktuberling/sounds/sr@latin/w{k}.wav")
    return root


def test_groups_effects_by_file_and_words_by_language(tmp_path):
    groups = {g.id: g for g in R.find_sound_groups(write_sound_root(tmp_path))}
    effects = [k for k in groups if k.startswith("effect:")]
    assert len(effects) == 13 and "effect:freedesktop/bell" in groups
    assert all(len(groups[k].files) == 1 for k in effects)
    assert len(groups["words:klettres/fr"].files) == R.MIN_WORDS_PER_LANGUAGE
    # Both scripts of Serbian are one speaker group; a language with one file is no group.
    assert len(groups["words:ktuberling/sr"].files) == R.MIN_WORDS_PER_LANGUAGE
    assert "words:klettres/xx" not in groups
    assert list(groups) == sorted(groups)


def test_channel_announcements_and_non_audio_files_are_never_listed(tmp_path):
    files = [f.name for g in R.find_sound_groups(write_sound_root(tmp_path)) for f in g.files]
    assert not any(n.startswith(("audio-channel-", "audio-test-signal")) for n in files)
    assert "index.theme" not in files


def test_pools_split_groups_by_identity(tmp_path):
    root = write_sound_root(tmp_path, n_effects=40)
    train, ood = R.pool_sound_groups("train", root), R.pool_sound_groups("ood", root)
    assert train and ood
    assert {g.id for g in train}.isdisjoint({g.id for g in ood})
    assert {g.id for g in train} | {g.id for g in ood} == {g.id for g in R.pool_sound_groups("all", root)}
    assert all(pools.pool_of("sound", g.id) == "ood" for g in ood)


def test_missing_collections_give_no_groups_and_empty_groups_are_refused(tmp_path):
    assert R.find_sound_groups(tmp_path / "nothing") == []
    with pytest.raises(ValueError, match="no files"):
        R.SoundGroup("effect:x/y", ())


def test_setup_installs_every_collection_package():
    setup = (Path(__file__).resolve().parents[2] / "scripts" / "setup.sh").read_text()
    missing = [p for p in R.PACKAGES if p not in setup]
    assert not missing, f"scripts/setup.sh --with-assets does not install {missing}"


def test_an_empty_recording_is_a_clear_error(tmp_path):
    from streambin.train.sim.scene import _recording

    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)

    class _Lib:  # the two things _recording asks of a Library
        sample_rate = 16000

        @staticmethod
        def sound(path):
            return sf.read(str(path), dtype="float32")[0]

    with pytest.raises(ValueError, match="empty"):
        _recording(np.random.default_rng(0), _Lib(), R.SoundGroup("effect:x/empty", (empty,)), 16000)
