"""Localisation measures: clip qualification from old and new sidecars, the level difference,
the summary, and the whole evaluation with small real torch generators that do or do not
follow the picture (offline protocol and streamed through the Spatializer)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from streambin.train import evaluate as E
from streambin.train.checkpoint import load_generator
from streambin.train import localisation_eval as L

AUDIO = SimpleNamespace(sample_rate=16000, n_fft=512, win_length=400, hop=160, context_frames=64,
                        input_rms=0.1, rms_floor=1e-4)
CONFIG = SimpleNamespace(audio=AUDIO, model=SimpleNamespace(visual_size=(32, 64)))


# ----------------------------------------------------------------------------- stand-in generators


class SaliencyColumnModel(nn.Module):
    """Follows the picture: the source is where the frame departs from mid-grey.

    visual: per column x, the weight ``w(x)`` = mean over rows and channels of ``|pixel - 128|``;
    feature ``c = sum_x w(x) u(x) / sum_x w(x)`` with ``u`` from -1 (left edge) to +1 (right
    edge), 0 for a uniform grey frame; shape (B, 1). audio: one side mask ``-gain * c`` (real,
    every bin), so ``L = (1 - gain c) m``, ``R = (1 + gain c) m``: a source seen on the right
    makes the right ear louder. Mirroring the frame negates ``c`` exactly.
    """

    mask_kind = "side"

    def __init__(self, gain=0.6):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(float(gain)))

    def visual(self, frames):
        w = (frames.float() - 128.0).abs().mean(dim=(1, 3))  # (B, W)
        u = torch.linspace(-1.0, 1.0, w.shape[1])
        return ((w * u).sum(1) / w.sum(1).clamp(min=1e-6))[:, None]

    def audio(self, spec, feature):
        B, _, F, T = spec.shape
        mask = torch.zeros(B, 1, 2, F, T)
        mask[:, 0, 0] = -self.gain * feature[:, 0, None, None]
        return mask


class LeftLeaningModel(nn.Module):
    """Ignores where things are: a constant side mask 0.3 (left ear louder) whatever the frame."""

    mask_kind = "side"

    def __init__(self):
        super().__init__()
        self.side = nn.Parameter(torch.tensor(0.3))

    def visual(self, frames):
        return frames.float().mean(dim=(1, 2, 3))[:, None]  # mirror-invariant brightness

    def audio(self, spec, feature):
        B, _, F, T = spec.shape
        mask = torch.zeros(B, 1, 2, F, T)
        mask[:, 0, 0] = self.side
        return mask


# ----------------------------------------------------------------------------- sidecars


def _source(az, *, moving=False, silent=None, kind="stamp"):
    s = {"name": "cat/sub0/red_thing", "kind": kind, "moving": moving, "azimuth_deg": list(az)}
    if silent is not None:
        s["silent"] = silent
    return s


def _old(*sources):
    """A sidecar as today's generator writes it (no scene_kind, no silent flags)."""
    return {"fps": 10.0, "hfov_deg": 90.0, "sources": list(sources)}


def _new(scene_kind, *sources):
    return {"fps": 10.0, "hfov_deg": 70.0, "pool": "ood", "scene_kind": scene_kind, "background": "bg7",
            "head": "sphere-0.09", "sources": list(sources)}


def test_qualify_old_sidecars_are_composites_with_sounding_sources():
    q = L.qualify(_old(_source([20.0] * 5)))
    assert q == {"qualifies": True, "reason": "ok", "scene_kind": "composite", "azimuth_deg": 20.0}
    # an instrument counts as a sounding source too
    q = L.qualify(_old(_source([-30.0] * 5), _source([12.0] * 5, kind="instrument")))
    assert not q["qualifies"] and q["reason"] == "2 sounding sources"


def test_qualify_new_sidecars_ignore_silent_distractors():
    meta = _new("photograph", _source([-25.0] * 4, kind="photograph", silent=False),
                _source([30.0] * 4, kind="cutout", silent=True), _source([5.0] * 4, kind="cutout", silent=True))
    q = L.qualify(meta)
    assert q["qualifies"] and q["scene_kind"] == "photograph" and q["azimuth_deg"] == -25.0
    only_silent = _new("composite", _source([30.0] * 4, silent=True))
    assert L.qualify(only_silent)["reason"] == "0 sounding sources"


@pytest.mark.parametrize("meta,reason", [
    (_old(_source([20.0, 25.0, 30.0], moving=True)), "moving source"),
    # not flagged as moving, but its azimuth changes over the clip: not static either
    (_old(_source([20.0, 20.2, 21.0])), "moving source"),
    (_old(_source([9.9] * 3)), "|azimuth| < 10 deg"),
    (_old(_source([-9.9] * 3)), "|azimuth| < 10 deg"),
    (None, "no sidecar"),
    ({}, "no sidecar"),
])
def test_qualify_reasons(meta, reason):
    q = L.qualify(meta)
    assert not q["qualifies"] and q["reason"] == reason


def test_qualify_edges_and_validation():
    assert L.qualify(_old(_source([-10.0] * 3)))["qualifies"]  # |az| >= 10 counts
    assert L.qualify(_old(_source([20.0, 20.4])))["qualifies"]  # 0.4 deg of jitter is static
    with pytest.raises(ValueError, match="azimuth_deg"):
        L.qualify(_old(_source([])))
    with pytest.raises(ValueError, match="sources"):
        L.qualify({"scene_kind": "composite"})
    with pytest.raises(ValueError, match="scene_kind"):
        L.qualify({"scene_kind": 3, "sources": []})


# ----------------------------------------------------------------------------- level difference


def test_level_difference_hand_cases():
    m = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    assert L.level_difference_db(np.stack([m, 2 * m])) == pytest.approx(20 * np.log10(2))
    assert L.level_difference_db(np.stack([m, 0.5 * m])) == pytest.approx(-20 * np.log10(2))
    assert L.level_difference_db(np.stack([m, m])) == 0.0
    assert L.level_difference_db(np.zeros((2, 10), np.float32)) == 0.0  # silence: no side
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        L.level_difference_db(m)
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        L.level_difference_db(np.zeros((2, 5), np.int16))
    with pytest.raises(ValueError, match="finite"):
        L.level_difference_db(np.full((2, 5), np.nan))


def _pair(ld_db, n=1000, seed=0):
    """(2, n) float with a right-minus-left level difference of exactly ``ld_db``."""
    m = np.random.default_rng(seed).standard_normal(n)
    return np.stack([m, m * 10 ** (ld_db / 20)])


def test_clip_record_and_summary_by_hand():
    comp_r, comp_l = _old(_source([20.0] * 3)), _old(_source([-30.0] * 3))
    photo_r = _new("photograph", _source([15.0] * 3, kind="photograph"), _source([-20.0] * 3, silent=True))
    two = _old(_source([20.0] * 3), _source([-20.0] * 3))
    recs = [
        # composite, right, predicted right at half the true LD, mirrored flips
        L.clip_record("a", comp_r, _pair(4.0), _pair(2.0), _pair(1.0), mirrored=_pair(-2.0)),
        # composite, left, predicted on the wrong side, mirrored does not flip
        L.clip_record("b", comp_l, _pair(-6.0), _pair(3.0), _pair(-0.5), mirrored=_pair(1.0)),
        # photograph, right, right with the full LD; mirrored output is exactly centred: no flip
        L.clip_record("c", photo_r, _pair(2.0), _pair(2.0), _pair(0.0), mirrored=_pair(0.0)),
        # two sounding sources: only the grey bias counts; no mirrored output needed
        L.clip_record("d", two, _pair(1.0), _pair(1.0), _pair(2.5)),
        # composite, right, but the truth is barely lateral (0.5 dB): no ratio (it would be 8)
        L.clip_record("e", comp_r, _pair(0.5), _pair(4.0), _pair(0.0), mirrored=_pair(-4.0)),
    ]
    assert recs[3]["ld_mirrored_db"] is None and recs[0]["ld_mirrored_db"] == pytest.approx(-2.0)
    s = L.summarize(recs)
    d = s["direction_acc"]
    assert d["composite"]["n"] == 3 and d["composite"]["rate"] == pytest.approx(2 / 3)
    assert d["composite"]["sem"] == pytest.approx(np.sqrt(2 / 9 / 3))
    assert d["photograph"]["n"] == 1 and d["photograph"]["rate"] == 1.0
    assert d["overall"]["n"] == 4 and d["overall"]["rate"] == 0.75
    assert s["mirror_flip_rate"]["rate"] == 0.5
    assert s["ld_ratio_median"] == pytest.approx(0.5) and s["ld_ratio_n"] == 3  # 0.5, -0.5, 1.0
    assert s["grey_n"] == 5
    assert s["grey_bias_abs_db"] == pytest.approx((1.0 + 0.5 + 0.0 + 2.5 + 0.0) / 5)
    assert s["grey_bias_signed_db"] == pytest.approx((1.0 - 0.5 + 0.0 + 2.5 + 0.0) / 5)
    assert s["target_direction_acc"]["overall"]["rate"] == 1.0
    assert s["n_lateral_single"] == 4 and s["skipped"] == {"2 sounding sources": 1}
    table = L.markdown_table(s)
    assert all(line.count("|") == 3 for line in table.splitlines() if line.startswith("|"))  # 2 cells
    assert "photograph" in table and "0.667 ± 0.272 (3 clips)" in table and "+0.60 dB" in table
    with pytest.raises(ValueError, match="mirrored"):
        L.clip_record("e", comp_r, _pair(4.0), _pair(2.0), _pair(1.0))


def test_summary_of_no_lateral_clip_is_nan_not_an_error():
    s = L.summarize([L.clip_record("d", None, _pair(1.0), _pair(1.0), _pair(0.5))])
    assert s["direction_acc"]["overall"]["n"] == 0 and np.isnan(s["direction_acc"]["overall"]["rate"])
    assert np.isnan(s["ld_ratio_median"]) and s["grey_bias_abs_db"] == pytest.approx(0.5)
    assert "n/a (0 clips)" in L.markdown_table(s)


# ----------------------------------------------------------------------------- whole evaluation


HFOV_DEG, SIZE_HW, FPS, N_SAMPLES = 90.0, (64, 128), 10.0, 16000


def _column(az_deg, width=SIZE_HW[1], hfov_deg=HFOV_DEG):
    """Image column of azimuth ``az_deg``: pinhole camera at the head, ``u = W/2 + f tan(az)`` with
    ``f = (W/2) / tan(HFOV/2)``."""
    return width / 2 + (width / 2) / np.tan(np.deg2rad(hfov_deg / 2)) * np.tan(np.deg2rad(az_deg))


def _ild_db(az_deg):
    return 6.0 * np.sin(np.deg2rad(az_deg))  # > 0: right louder, as our azimuth


# (scene kind or None for an old sidecar, sounding azimuths per frame (one list per source),
#  silent distractor azimuths, moving)
CLIPS = {
    "c0": (None, [[25.0]], [], False),
    "c1": (None, [[-30.0]], [], False),
    "c2": ("composite", [[15.0]], [], False),
    "c3": ("photograph", [[-20.0]], [0.0], False),
    "c4": ("photograph", [[35.0]], [0.0, 0.0], False),
    "c5": (None, [[5.0]], [], False),                 # centre source: not lateral
    "c6": (None, [[20.0], [-20.0]], [], False),      # two sounding sources
    "c7": ("composite", [list(np.linspace(-20, 20, 10))], [], True),  # moving
}


def _write_clip(root, clip, kind, sounding, silent, moving, rng):
    """One clip in the SimBinaural-lite / FAIR-Play layout: a 1 s binaural wav whose sources
    differ by level only (ILD 6 sin(az) dB), 10 frames of mid-grey with a coloured square at each
    source's column (silent ones too), and a hand-written sidecar (old layout when kind is None)."""
    import cv2
    import soundfile as sf

    h, w = SIZE_HW
    audio = np.zeros((2, N_SAMPLES))
    frames = np.full((10, h, w, 3), 128, np.uint8)
    sources = []
    for k, az in enumerate(sounding + [[a] for a in silent]):
        az = np.resize(np.asarray(az, float), 10)
        is_silent = k >= len(sounding)
        if not is_silent:
            m = 0.1 * rng.standard_normal(N_SAMPLES)
            g = 10 ** (_ild_db(az.mean()) / 40)  # R / L = 10^(ILD / 20)
            audio += np.stack([m / g, m * g])
        for j in range(10):
            u = int(round(_column(az[j])))
            frames[j, h // 2 - 8:h // 2 + 8, max(u - 8, 0):u + 8] = (240, 40, 40) if not is_silent else (40, 40, 240)
        src = {"name": f"src{k}", "kind": "stamp" if kind is None else "cutout", "moving": moving and not is_silent,
               "azimuth_deg": az.tolist()}
        if kind is not None:
            src.update(silent=is_silent, sound_kind=None if is_silent else "stamp")
        sources.append(src)
    meta = {"sample_rate": 16000, "fps": FPS, "seconds": 1.0, "n_frames": 10, "frame_width": w,
            "frame_height": h, "hfov_deg": HFOV_DEG, "sources": sources}
    if kind is not None:
        meta.update(pool="ood", scene_kind=kind, background="bg0", head="kemar")
    sf.write(str(root / "binaural_audios" / f"{clip}.wav"), audio.T, 16000, subtype="PCM_16")
    (root / "frames" / clip).mkdir()
    for j, f in enumerate(frames):
        cv2.imwrite(str(root / "frames" / clip / f"{j + 1:06d}.png"), f[:, :, ::-1])
    (root / "meta" / f"{clip}.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A tiny hand-made data set of :data:`CLIPS` (split "all"): 5 lateral single-source clips
    (3 composite: 2 right, 1 left; 2 photographs: 1 each side, with silent distractors at the
    centre), a centre source, two sounding sources and a moving source."""
    root = tmp_path_factory.mktemp("scenes")
    for d in ("binaural_audios", "frames", "meta", "splits"):
        (root / d).mkdir()
    rng = np.random.default_rng(0)
    for clip, spec in CLIPS.items():
        _write_clip(root, clip, *spec, rng)
    (root / "splits" / "all.txt").write_text("\n".join(CLIPS) + "\n")
    (root / "splits" / "first.txt").write_text("\n".join(list(CLIPS)[:3]) + "\n")
    (root / "splits" / "rest.txt").write_text("\n".join(list(CLIPS)[3:]) + "\n")
    return root


def _dataset(root, visual_size=(32, 64)):
    from streambin.train.data import SimBinauralDataset

    return SimBinauralDataset(root, "all", mode="eval", visual_size=visual_size)


def test_a_model_that_follows_the_picture_flips_when_mirrored(scenes, one_thread):
    res = E.evaluate_model(SaliencyColumnModel(), CONFIG, _dataset(scenes), progress=False)
    s = res["localisation"]["summary"]
    per = {r["clip"]: r for r in res["localisation"]["per_clip"]}
    assert [c for c in CLIPS if per[c]["qualifies"]] == ["c0", "c1", "c2", "c3", "c4"]
    assert s["skipped"] == {"|azimuth| < 10 deg": 1, "2 sounding sources": 1, "moving source": 1}
    assert [per[c]["scene_kind"] for c in CLIPS] == ["composite"] * 3 + ["photograph"] * 2 + ["composite"] * 3
    for c, (_, sounding, _, _) in CLIPS.items():  # the loader and LD give back the written ILD
        if len(sounding) == 1:
            assert per[c]["ld_target_db"] == pytest.approx(_ild_db(np.mean(sounding[0])), abs=0.02)
    assert s["target_direction_acc"]["overall"]["rate"] == 1.0
    d = s["direction_acc"]
    assert (d["composite"]["n"], d["photograph"]["n"], d["overall"]["n"]) == (3, 2, 5)
    assert d["composite"]["rate"] == d["photograph"]["rate"] == d["overall"]["rate"] == 1.0
    assert s["mirror_flip_rate"] == {"rate": 1.0, "sem": 0.0, "n": 5}
    assert s["ld_ratio_median"] > 0
    assert s["grey_n"] == 8 and s["grey_bias_abs_db"] < 1e-3  # a grey frame has no side
    for c in ("c0", "c1", "c2", "c3", "c4"):  # mirrored: the same level difference, other side
        assert per[c]["ld_mirrored_db"] == pytest.approx(-per[c]["ld_pred_db"], abs=0.05)
        assert abs(per[c]["ld_pred_db"]) > 0.5
    table = E.markdown_table(res)
    assert "single static source, azimuth beyond ±10 deg, photograph | 1.000 ± 0.000 (2 clips)" in table


def test_lateral_only_scores_just_the_clips_the_measures_count(scenes, one_thread):
    data = _dataset(scenes)
    full = E.evaluate_model(SaliencyColumnModel(), CONFIG, data, progress=False)
    part = E.evaluate_model(SaliencyColumnModel(), CONFIG, data, lateral_only=True, progress=False)
    assert [c["clip"] for c in part["per_clip"]] == ["c0", "c1", "c2", "c3", "c4"]
    assert part["settings"]["n_clips"] == 5
    assert part["settings"]["clip_selection"] == "lateral single-source clips only: 5 of the first 8"
    same = {r["clip"]: r for r in full["localisation"]["per_clip"]}
    for r in part["localisation"]["per_clip"]:
        assert r == same[r["clip"]]
    assert part["localisation"]["summary"]["direction_acc"] == full["localisation"]["summary"]["direction_acc"]
    first4 = E.evaluate_model(SaliencyColumnModel(), CONFIG, data, max_clips=4, lateral_only=True, progress=False)
    assert [c["clip"] for c in first4["per_clip"]] == ["c0", "c1", "c2", "c3"]
    with pytest.raises(ValueError, match="none of the 3 clips is a lateral single-source clip"):
        E.evaluate_model(SaliencyColumnModel(), CONFIG, [data[i] for i in (5, 6, 7)], lateral_only=True,
                         progress=False)


def test_a_model_that_ignores_the_picture_does_not_flip(scenes, one_thread):
    # mono_mono only: the localisation measures run the model themselves
    res = E.evaluate_model(LeftLeaningModel(), CONFIG, _dataset(scenes), conditions=("mono_mono",),
                           progress=False)
    s = res["localisation"]["summary"]
    d = s["direction_acc"]
    assert d["composite"]["rate"] == pytest.approx(1 / 3)  # only c1 is on the left
    assert d["photograph"]["rate"] == pytest.approx(1 / 2)  # c3 left, c4 right
    assert d["overall"]["rate"] == pytest.approx(2 / 5)
    assert s["mirror_flip_rate"]["rate"] == 0.0
    # constant side mask 0.3: L = 1.3 m, R = 0.7 m whatever the frame
    expected = 20 * np.log10(0.7 / 1.3)
    assert s["grey_bias_signed_db"] == pytest.approx(expected, abs=0.01)
    assert s["grey_bias_abs_db"] == pytest.approx(-expected, abs=0.01)


def test_cli_scores_several_splits_in_order(scenes, tmp_path, one_thread):
    args = E.build_parser().parse_args(["--checkpoint", "stand-in.pt", "--data", str(scenes), "--split", "first",
                                        "rest", "--no-progress", "--device", "cpu"])
    res = E.run(args, load_generator=lambda path: (SaliencyColumnModel(), CONFIG))
    assert [c["clip"] for c in res["per_clip"]] == list(CLIPS) and res["settings"]["split"] == "first+rest"
    s = res["localisation"]["summary"]
    assert s["n_lateral_single"] == 5 and s["direction_acc"]["overall"]["rate"] == 1.0
    args = E.build_parser().parse_args(["--checkpoint", "stand-in.pt", "--data", str(scenes), "--split", "all",
                                        "--lateral-only", "--no-progress", "--device", "cpu"])
    res = E.run(args, load_generator=lambda path: (SaliencyColumnModel(), CONFIG))
    assert len(res["per_clip"]) == res["localisation"]["summary"]["n_lateral_single"] == 5


def test_grey_and_mirrored_outputs_are_computed_when_not_among_the_conditions(scenes, one_thread):
    data = _dataset(scenes)
    full = E.evaluate_model(SaliencyColumnModel(), CONFIG, data, max_clips=3, progress=False)
    part = E.evaluate_model(SaliencyColumnModel(), CONFIG, data, max_clips=3, conditions=("mono_mono",),
                            progress=False)
    for a, b in zip(full["localisation"]["per_clip"], part["localisation"]["per_clip"]):
        assert a == b
    none = E.evaluate_model(SaliencyColumnModel(), CONFIG, data, max_clips=1, localisation=False, progress=False)
    assert "localisation" not in none
    with pytest.raises(ValueError, match="either model"):
        E.evaluate_model(None, CONFIG, data, progress=False)


# ----------------------------------------------------------------------------- streamed


def test_streamed_predictor_grey_frames_equal_the_neutral_feature(tiny_unet, one_thread):
    from streambin.train.evaluate_streaming import StreamedPredictor, stream_clip

    bundle, _ = tiny_unet
    p = StreamedPredictor(bundle, sample_rate=48000, lookahead_frames=2)
    mono = (0.1 * np.random.default_rng(3).standard_normal(8000)).astype(np.float32)
    frames = np.random.default_rng(4).integers(0, 256, (5, 32, 64, 3), dtype=np.uint8)
    grey = p(mono, frames, 10.0, "none")
    assert grey.shape == (2, 8000) and grey.dtype == np.float32
    # no frame at all: the engine uses the neutral (grey-frame) feature throughout
    import soxr

    up = soxr.resample(mono, 16000, 48000, quality="VHQ").astype(np.float32)
    no_frames = stream_clip(p.spatializer, up, np.zeros((0, 32, 64, 3), np.uint8), 10.0, chunk=480)
    back = soxr.resample(np.ascontiguousarray(no_frames.T), 48000, 16000, quality="VHQ").T
    np.testing.assert_allclose(grey, back[:, :8000], atol=1e-6)
    # mirrored frames are the true frames mirrored
    flipped = p(mono, frames, 10.0, "flipped")
    np.testing.assert_allclose(flipped, p(mono, frames[:, :, ::-1], 10.0, "true"), atol=1e-6)
    with pytest.raises(ValueError, match="visual_mode"):
        p(mono, frames, 10.0, "mirror")
    with pytest.raises(ValueError, match=r"\(n_frames, H, W, 3\) uint8"):
        p(mono, frames[0], 10.0)


def test_streamed_at_48k_matches_streamed_at_the_model_rate(tiny_unet, one_thread):
    """The 48 kHz path (resample, engine at 48 kHz, resample back) gives what the engine gives at
    16 kHz below the resamplers' band edges (white noise differs by ~20% in norm, all of it in
    the top of the 8 kHz band, which the device-rate round trip attenuates)."""
    import scipy.signal

    from streambin.train.evaluate_streaming import StreamedPredictor

    bundle, _ = tiny_unet
    noise = 0.1 * np.random.default_rng(5).standard_normal(16000)
    mono = scipy.signal.lfilter(scipy.signal.firwin(255, 5000, fs=16000), 1, noise).astype(np.float32)
    frames = np.random.default_rng(6).integers(0, 256, (10, 32, 64, 3), dtype=np.uint8)
    at48 = StreamedPredictor(bundle, sample_rate=48000)(mono, frames, 10.0)
    at16 = StreamedPredictor(bundle, sample_rate=16000)(mono, frames, 10.0)
    core = slice(800, 15200)
    err = np.linalg.norm(at48[:, core] - at16[:, core]) / np.linalg.norm(at16[:, core])
    assert err < 1e-3


def test_cli_bundle_streams_and_reports_localisation(tiny_unet, scenes, tmp_path, one_thread):
    bundle, ckpt = tiny_unet
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = E.build_parser().parse_args([
        "--bundle", str(bundle), "--data", str(scenes), "--split", "all", "--max-clips", "3",
        "--out", str(out), "--markdown", str(md), "--no-progress"])
    res = E.run(args)
    st = res["settings"]
    assert "Spatializer (onnxruntime) at 48000 Hz" in st["protocol"] and st["bundle"] == str(bundle)
    assert st["audio_only"] == "same engine, uniform uint8 128 grey frames" and st["wall_s_per_clip"] > 0
    saved = json.loads(out.read_text())
    loc = saved["localisation"]["summary"]
    assert loc["n_clips"] == 3 and loc["grey_n"] == 3
    assert loc["direction_acc"]["overall"]["n"] == sum(r["qualifies"] for r in saved["localisation"]["per_clip"])
    # the grey bias is the audio-only condition's level difference
    assert [r["ld_grey_db"] for r in res["localisation"]["per_clip"]] == pytest.approx(
        [L.level_difference_db(x) for x in _audio_only_outputs(bundle, scenes, 3)], abs=1e-4)
    table = md.read_text()
    assert "mirrored frames flip" in table and "Mono-Mono" in table
    # a training checkpoint streamed through the Spatializer's torch backend
    args = E.build_parser().parse_args([
        "--checkpoint", str(ckpt), "--streamed", "--sample-rate", "16000", "--lookahead", "0",
        "--data", str(scenes), "--split", "all", "--max-clips", "1", "--no-localisation", "--no-progress"])
    res = E.run(args)
    assert "Spatializer (torch) at 16000 Hz" in res["settings"]["protocol"] and "lookahead 0" in res["settings"]["protocol"]
    assert "localisation" not in res and res["settings"]["checkpoint"] == str(ckpt)
    with pytest.raises(ValueError, match="offline protocol"):
        E.run(E.build_parser().parse_args(["--bundle", str(bundle), "--data", "D", "--audio-only-checkpoint",
                                           str(ckpt)]))


def _audio_only_outputs(bundle, root, n):
    from streambin.train.evaluate_streaming import StreamedPredictor

    p = StreamedPredictor(bundle)
    data = _dataset(root)
    outs = []
    for i in range(n):
        a = data[i]["audio"].numpy()
        outs.append(p(0.5 * (a[0] + a[1]), data[i]["frames"], 10.0, "none"))
    return outs


def test_evaluate_streaming_reports_offline_streamed_and_localisation(tiny_unet, scenes, one_thread):
    from streambin.train import metrics as M
    from streambin.train import evaluate_streaming as ES

    bundle, ckpt = tiny_unet
    res = ES.evaluate_streaming(bundle, scenes, "all", lookaheads=(2,), max_clips=2, progress=False)
    assert res["settings"]["offline_reference"] and res["settings"]["sample_rate"] == 48000
    assert set(res["summary"]) == {"mono_mono", "offline", "streaming_lookahead_2"}
    assert set(res["localisation"]) == {"offline", "streaming_lookahead_2"}
    assert res["stft_ratio_to_mono_mono"]["mono_mono"] == 1.0
    # each condition is the output of its own engine
    item = _dataset(scenes)[1]
    target = item["audio"].numpy()
    mono = 0.5 * (target[0] + target[1])
    streamed = ES.StreamedPredictor(bundle, sample_rate=48000, lookahead_frames=2)(mono, item["frames"], FPS)
    model, cfg = load_generator(str(ckpt))
    offline = E.predict_clip(model, mono, item["frames"], FPS, cfg.audio)
    got = res["per_clip"][1]["metrics"]
    assert got["streaming_lookahead_2"]["stft"] == pytest.approx(M.stft_distance(streamed, target), rel=1e-5)
    assert got["offline"]["stft"] == pytest.approx(M.stft_distance(offline, target), rel=1e-5)
    loc = res["localisation"]["streaming_lookahead_2"]["per_clip"][1]
    assert loc["ld_pred_db"] == pytest.approx(L.level_difference_db(streamed), abs=1e-4)
    md = ES.markdown(res)
    assert "Localisation: streaming_lookahead_2" in md and "STFT / Mono-Mono" in md


def test_evaluate_streaming_without_weights_scores_the_engine_only(tiny_unet, scenes, tmp_path, one_thread):
    import shutil

    from streambin.train import evaluate_streaming as ES

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_unet[0], bundle)
    (bundle / "weights.pt").unlink()  # like the shipped default
    res = ES.evaluate_streaming(bundle, scenes, "all", lookaheads=(0,), max_clips=1, progress=False,
                                localisation=False)
    assert not res["settings"]["offline_reference"] and res["ratio_to_offline"] == {}
    assert set(res["summary"]) == {"mono_mono", "streaming_lookahead_0"} and "localisation" not in res
    assert "| streaming_lookahead_0 |" in ES.markdown(res)
    out = tmp_path / "s.json"
    assert ES.main(["--bundle", str(bundle), "--data", str(scenes), "--split", "all", "--lookahead", "0",
                    "--max-clips", "1", "--sample-rate", "16000", "--no-progress", "--json", str(out)]) == 0

    def no_constants(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    saved = json.loads(out.read_text(), parse_constant=no_constants)
    assert saved["settings"]["sample_rate"] == 16000 and "localisation" in saved


def test_cli_mirror_average_makes_a_checkpoint_mirror_equivariant(tiny_unet, scenes, one_thread):
    bundle, ckpt = tiny_unet
    base = ["--checkpoint", str(ckpt), "--data", str(scenes), "--split", "all", "--lateral-only", "--no-progress",
            "--device", "cpu"]
    plain = E.run(E.build_parser().parse_args(base))
    avg = E.run(E.build_parser().parse_args(base + ["--mirror-average"]))
    assert plain["settings"]["mirror_average"] is False and avg["settings"]["mirror_average"] is True
    per = avg["localisation"]["per_clip"]
    for r in per:  # the mirrored picture gives the same level difference on the other side
        assert r["ld_mirrored_db"] == pytest.approx(-r["ld_pred_db"], abs=1e-3)
    assert avg["localisation"]["summary"]["grey_bias_abs_db"] < 1e-3  # grey is its own mirror image
    assert avg["localisation"]["summary"]["grey_bias_abs_db"] < plain["localisation"]["summary"]["grey_bias_abs_db"]


def test_cli_mirror_average_streams_a_bundle_mirror_equivariant(tiny_unet, scenes, one_thread):
    """Streamed, --mirror-average is the Spatializer's mirror_average on a plain bundle."""
    bundle, _ = tiny_unet
    base = ["--bundle", str(bundle), "--data", str(scenes), "--split", "all", "--lateral-only", "--max-clips", "2",
            "--no-progress", "--block-frames", "2"]
    avg = E.run(E.build_parser().parse_args(base + ["--mirror-average"]))
    plain = E.run(E.build_parser().parse_args(base + ["--no-mirror-average"]))
    assert avg["settings"]["mirror_average"] is True and plain["settings"]["mirror_average"] is False
    assert "mirror-averaged" in avg["settings"]["protocol"]
    for r in avg["localisation"]["per_clip"]:
        assert r["ld_mirrored_db"] == pytest.approx(-r["ld_pred_db"], abs=1e-2)
    assert avg["localisation"]["summary"]["grey_bias_abs_db"] < 1e-2
    assert plain["localisation"]["summary"]["grey_bias_abs_db"] > avg["localisation"]["summary"]["grey_bias_abs_db"]


def test_mirror_average_ab_script_equals_the_two_evaluations(tiny_unet, scenes, tmp_path, one_thread):
    """scripts/mirror_average_ab.py shares one set of predictions between the plain and the
    mirror-averaged scores; they must equal evaluate's without and with --mirror-average."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "mirror_average_ab", Path(__file__).resolve().parents[2] / "scripts" / "mirror_average_ab.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _, ckpt = tiny_unet
    assert script.main([str(ckpt), str(scenes), "all", str(tmp_path / "ab"), "--max-clips", "5"]) == 0
    base = ["--checkpoint", str(ckpt), "--data", str(scenes), "--split", "all", "--max-clips", "5", "--no-progress",
            "--device", "cpu"]
    for name, extra in (("plain", []), ("mirror_avg", ["--mirror-average"])):
        ab = json.loads((tmp_path / f"ab_{name}.json").read_text())
        direct = E.run(E.build_parser().parse_args(base + extra))
        for a, b in zip(ab["per_clip"], direct["per_clip"]):
            for cond in ("model", "audio_only", "flipped_visual"):
                assert a["metrics"][cond]["stft"] == pytest.approx(b["metrics"][cond]["stft"], rel=1e-4, abs=1e-6)
        for a, b in zip(ab["localisation"]["per_clip"], direct["localisation"]["per_clip"]):
            assert a["ld_pred_db"] == pytest.approx(b["ld_pred_db"], abs=1e-3)


def test_cli_side_gain_widens_level_differences_offline_and_streamed(tiny_unet, scenes, one_thread):
    """--side-gain scales the output's side: offline on the predictions, streamed through the
    Spatializer's side_gain. Level differences keep their sign and grow."""
    bundle, ckpt = tiny_unet
    common = ["--data", str(scenes), "--split", "all", "--lateral-only", "--max-clips", "3", "--no-progress"]
    for model_args in (["--checkpoint", str(ckpt), "--device", "cpu"],
                       ["--bundle", str(bundle), "--block-frames", "2"]):
        plain = E.run(E.build_parser().parse_args(model_args + common))
        wide = E.run(E.build_parser().parse_args(model_args + common + ["--side-gain", "1.5"]))
        assert plain["settings"]["side_gain"] == 1.0 and wide["settings"]["side_gain"] == 1.5
        assert "side gain 1.5" in wide["settings"]["protocol"] and "side gain" not in plain["settings"]["protocol"]
        pairs = list(zip(plain["localisation"]["per_clip"], wide["localisation"]["per_clip"]))
        assert len(pairs) == 3
        for p, w in pairs:
            assert abs(p["ld_pred_db"]) > 1e-3
            assert np.sign(w["ld_pred_db"]) == np.sign(p["ld_pred_db"])
            assert abs(w["ld_pred_db"]) > 1.3 * abs(p["ld_pred_db"])
            assert w["ld_target_db"] == p["ld_target_db"]
    with pytest.raises(SystemExit):
        E.build_parser().parse_args(["--checkpoint", str(ckpt)] + common + ["--side-gain", "-1"])


def test_side_gain_sweep_script_equals_evaluate_with_side_gain(tiny_unet, scenes, tmp_path, one_thread):
    """scripts/side_gain_sweep.py shares one set of predictions between gains; each gain's scores
    must equal evaluate's offline with --mirror-average --side-gain G."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "side_gain_sweep", Path(__file__).resolve().parents[2] / "scripts" / "side_gain_sweep.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _, ckpt = tiny_unet
    assert script.main([str(ckpt), str(scenes), "all", str(tmp_path / "sw"), "--max-clips", "5",
                        "--gains", "1,1.5"]) == 0
    base = ["--checkpoint", str(ckpt), "--data", str(scenes), "--split", "all", "--max-clips", "5", "--no-progress",
            "--device", "cpu", "--mirror-average"]
    for gain in ("1", "1.5"):
        swept = json.loads((tmp_path / f"sw_g{gain}.json").read_text())
        direct = E.run(E.build_parser().parse_args(base + ["--side-gain", gain]))
        assert swept["settings"]["side_gain"] == float(gain)
        for a, b in zip(swept["per_clip"], direct["per_clip"]):
            assert a["metrics"]["model"]["stft"] == pytest.approx(b["metrics"]["model"]["stft"], rel=1e-4, abs=1e-6)
        for a, b in zip(swept["localisation"]["per_clip"], direct["localisation"]["per_clip"]):
            assert a["ld_pred_db"] == pytest.approx(b["ld_pred_db"], abs=1e-3)
    with pytest.raises(SystemExit, match="--gains must be positive"):
        script.main([str(ckpt), str(scenes), "all", str(tmp_path / "bad"), "--gains", "0,1"])
