"""Synthesised source sounds: deterministic per seed, every family sounding and distinct, clear
refusals; the scene option replaces stamp sounds, only in training pools, drawing only when on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from streambin.train import simulate
from streambin.train.sim import synth_sounds as S
from streambin.train.sim.scene import Library, SceneOptions, sample_scene, source_signal

from .test_sim_diversity import diverse_assets  # noqa: F401  (module fixture)

SR = 16000


def _family(seed: int) -> str:
    return S.FAMILIES[int(np.random.default_rng(seed).integers(len(S.FAMILIES)))]


def test_same_id_same_samples_and_every_family_sounds():
    seen = set()
    for seed in range(24):
        x = S.synth_sound(S.sound_id(seed), SR, SR)
        assert x.shape == (SR,) and x.dtype == np.float32 and np.isfinite(x).all()
        assert np.max(np.abs(x)) == pytest.approx(1.0, rel=1e-6)  # peak-normalised, never silent
        assert np.array_equal(x, S.synth_sound(S.sound_id(seed), SR, SR))
        seen.add(_family(seed))
    assert seen == set(S.FAMILIES)


def test_sounds_of_different_seeds_differ_in_spectrum():
    """Different seeds give different long-term spectra (what a model must not learn by heart)."""
    spectra = []
    for seed in range(12):
        x = S.synth_sound(S.sound_id(seed), 2 * SR, SR).astype(np.float64)
        mag = np.abs(np.fft.rfft(x))[: SR]  # 0-8 kHz in 1 Hz bins...
        bands = np.log10(mag.reshape(32, -1).mean(axis=1) + 1e-9)  # ...pooled into 32 bands of 250 Hz
        spectra.append(bands - bands.mean())
    spectra = np.array(spectra)
    dists = [np.abs(spectra[i] - spectra[j]).mean() for i in range(12) for j in range(i + 1, 12)]
    assert min(dists) > 0.05  # no two of the twelve share a spectrum


def test_short_requests_and_bad_input():
    for seed in range(8):  # every family, as short as allowed
        x = S.synth_sound(S.sound_id(seed), 2, SR)
        assert x.shape == (2,) and np.isfinite(x).all() and np.any(x)
    assert S.seed_of(S.sound_id(2 ** 63 - 1)) == 2 ** 63 - 1
    for bad in ("synth:", "synth:-1", "synth:x", "stamp:3", 3, f"synth:{2 ** 63}"):
        with pytest.raises(ValueError, match="synth"):
            S.synth_sound(bad, 100, SR)
    with pytest.raises(ValueError, match="at least 2"):
        S.synth_sound("synth:1", 1, SR)
    with pytest.raises(ValueError, match="sample_rate"):
        S.synth_sound("synth:1", 100, 4000)
    with pytest.raises(ValueError, match="seed"):
        S.sound_id(-1)


def test_scene_option_replaces_stamp_sounds_in_training_pools_only(diverse_assets):  # noqa: F811
    with pytest.raises(ValueError, match="synth_sound_share"):
        SceneOptions(synth_sound_share=-0.1)
    with pytest.raises(ValueError, match="held-out"):
        Library(diverse_assets, pool="ood", options=SceneOptions(head_variation=False, synth_sound_share=0.5))

    on = Library(diverse_assets, pool="train",
                 options=SceneOptions(head_variation=False, speech_share=0.0, distractor_share=1.0,
                                      synth_sound_share=1.0))
    scenes = [sample_scene(np.random.default_rng(i), on, seconds=1.0) for i in range(12)]
    sounding = [s for sc in scenes for s in sc.sounding]
    assert sounding and all(s.kind in ("synth", "instrument") for s in sounding)
    synth = [s for s in sounding if s.kind == "synth"]
    assert len({s.sound for s in synth}) == len(synth)  # every source its own sound
    assert not any(s.silent for sc in scenes for s in sc.sources)  # no distractor: no "which one"
    x = source_signal(np.random.default_rng(0), on, synth[0], 8000)
    assert x.shape == (8000,) and x.dtype == np.float32
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)

    # Off, nothing more is drawn: the same scenes as before the option existed.
    plain = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False))
    off = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False, synth_sound_share=0.0))
    for i in range(5):
        a = sample_scene(np.random.default_rng(i), plain, seconds=1.0)
        b = sample_scene(np.random.default_rng(i), off, seconds=1.0)
        assert [(s.kind, s.sound, s.silent) for s in a.sources] == [(s.kind, s.sound, s.silent) for s in b.sources]
        assert [s.azimuth_deg.tolist() for s in a.sources] == [s.azimuth_deg.tolist() for s in b.sources]


def test_generated_clip_records_the_synthesised_sounds(tmp_path, diverse_assets):  # noqa: F811
    lib = Library(diverse_assets, pool="train",
                  options=SceneOptions(head_variation=False, speech_share=0.0, camera_effects=False,
                                       synth_sound_share=1.0))
    simulate.generate_clip(tmp_path, 0, 3, lib, seconds=1.0, max_sources=2, room_fraction=0.0,
                           moving_fraction=0.0)
    meta = json.loads((tmp_path / "meta" / "000000.json").read_text())
    assert meta["synth_sound_share"] == 1.0
    kinds = {s["sound_kind"] for s in meta["sources"] if not s["silent"]}
    assert "synth" in kinds and kinds <= {"synth", "instrument"}
    for s in meta["sources"]:
        if s["sound_kind"] == "synth":
            S.seed_of(s["sound"])  # a valid id: the sound can be made again from the sidecar
    audio, _ = sf.read(tmp_path / "binaural_audios" / "000000.wav")
    assert audio.shape[1] == 2 and np.abs(audio).max() > 0.1


def test_cli_refuses_synthesised_sounds_for_held_out_sets(tmp_path, capsys):
    assert simulate.main(["--out", str(tmp_path), "--clips", "1", "--pool", "ood", "--synth-sounds", "0.5"]) == 2
    assert "held-out" in capsys.readouterr().err
    assert not (tmp_path / "meta").exists()
