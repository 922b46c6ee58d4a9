"""The scene generator's variation: pools, online generation, field of view, distractors,
photograph pans, camera effects, scenario mixes (tiny generated assets; real ones marked)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from streambin.train import simulate as S
from streambin.train.data import OnlineSimDataset
from streambin.train.sim import assets as A
from streambin.train.sim import heads, picture, pools
from streambin.train.sim.scene import (LEGACY_OPTIONS, Library, SceneOptions, column_to_azimuth,
                                       compose_frames, render_audio, sample_scene)

from .conftest import write_synthetic_sofa

N_STAMPS = 14  # "cat/thing06" falls in the OOD pool, the others in train (pools.pool_of)
N_BACKGROUNDS = 12  # "custom/bg11" is OOD
PLAIN = dict(camera_effects=False, realistic_cutouts=False, distractor_share=0.0)


def _colour(k: int) -> tuple:
    """A saturated, distinct RGB colour per stamp (never grey, so it stands out on grey)."""
    hsv = np.uint8([[[int(180 * k / N_STAMPS), 255, 255]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


@pytest.fixture(scope="module")
def diverse_assets(tmp_path_factory):
    """Stamps with sounds (and recorded descriptions in French, a train voice, and German, an
    OOD one), silent pictures, two talkers, random-texture backgrounds, a synthetic SOFA."""
    root = tmp_path_factory.mktemp("diverse")
    rng = np.random.default_rng(5)
    stamps = root / "stamps"
    for k in range(N_STAMPS):
        d = stamps / "cat"
        d.mkdir(parents=True, exist_ok=True)
        img = np.zeros((40, 30, 4), np.uint8)
        img[:, :, :3] = _colour(k)[::-1]
        img[:, :, 3] = 255
        cv2.imwrite(str(d / f"thing{k:02d}.png"), img)
        noise = (rng.standard_normal(11025) * 0.2).astype(np.float32)
        sf.write(str(d / f"thing{k:02d}.ogg"), noise, 22050, format="OGG", subtype="VORBIS")
        for lang in ("fr", "de"):
            tone = 0.3 * np.sin(2 * np.pi * (200 + 20 * k) * np.arange(8000) / 16000).astype(np.float32)
            sf.write(str(d / f"thing{k:02d}_desc_{lang}.ogg"), tone, 16000, format="OGG", subtype="VORBIS")
    for k in range(4):  # pictures without a sound: distractors only
        img = np.full((30, 30, 4), 255, np.uint8)
        img[:, :, :3] = (40 * k, 200, 90)
        cv2.imwrite(str(stamps / "cat" / f"quiet{k}.png"), img)
    for name in ("people/fireman240a", "people/fireman200b"):  # train / OOD talkers
        (stamps / name).parent.mkdir(parents=True, exist_ok=True)
        img = np.full((60, 20, 4), 255, np.uint8)
        img[:, :, :3] = (250, 250, 250)
        cv2.imwrite(str(stamps / f"{name}.png"), img)
    bgs = []
    for k in range(N_BACKGROUNDS):
        p = root / f"bg{k:02d}.png"
        cv2.imwrite(str(p), np.full((300, 700, 3), 100 + 5 * k, np.uint8))
        bgs.append(p)
    return A.AssetPaths(sofa=write_synthetic_sofa(root / "synthetic.sofa"), stamps=stamps, sf2=None,
                        backgrounds=bgs)


@pytest.fixture(scope="module")
def libs(diverse_assets):
    opts = SceneOptions(head_variation=False)
    return {p: Library(diverse_assets, pool=p, options=opts) for p in ("train", "ood")}


def test_pool_rule_is_stable_and_about_one_fifth():
    ids = [f"thing{i}" for i in range(2000)]
    share = np.mean([pools.pool_of("cutout", i) == "ood" for i in ids])
    assert 0.17 < share < 0.23
    assert [pools.pool_of("cutout", i) for i in ids[:50]] == [pools.pool_of("cutout", i) for i in ids[:50]]
    with pytest.raises(ValueError, match="pool must be one of"):
        pools.select([], "cutout", "test", str)


def test_pools_disjoint_for_every_asset_kind(libs):
    tr, ood = libs["train"], libs["ood"]
    pairs = {
        "sounding stamps": ({s.name for s in tr.stamps}, {s.name for s in ood.stamps}),
        "distractor cut-outs": ({s.name for s in tr.cutouts}, {s.name for s in ood.cutouts}),
        "backgrounds": ({b.id for b in tr.background_assets}, {b.id for b in ood.background_assets}),
        "voices": ({v.id for v in tr.voices}, {v.id for v in ood.voices}),
        "talkers": ({s.name for s in tr.talkers}, {s.name for s in ood.talkers}),
        "heads": (set(heads.head_ids("train")), set(heads.head_ids("ood"))),
    }
    for kind, (a, b) in pairs.items():
        assert a and b, f"{kind}: both pools must be non-empty in this fixture"
        assert not (a & b), f"{kind} in both pools: {sorted(a & b)[:5]}"
    # a cut-out's sound and picture are one identity: an OOD object is OOD as a distractor too
    assert {s.name for s in ood.stamps} <= {s.name for s in ood.cutouts}
    assert "rec:de" in {v.id for v in ood.voices} and "rec:fr" in {v.id for v in tr.voices}


def test_ood_scenes_use_only_ood_assets(diverse_assets):
    lib = Library(diverse_assets, pool="ood")  # head variation on: real KEMAR-based heads
    ood_bg = {b.id for b in lib.background_assets}
    for i in range(6):
        scene = sample_scene(np.random.default_rng([3, i]), lib, seconds=0.5, max_sources=2)
        assert heads.head_pool(scene.head) == "ood"
        assert scene.background_id in ood_bg  # never "procedural": textures are train-only
        for s in scene.sources:
            assert pools.pool_of("cutout", s.name) == "ood"


def _find_colour(frame: np.ndarray, rgb) -> float:
    mask = np.all(np.abs(frame.astype(int) - np.array(rgb)) <= 2, axis=2)
    assert mask.sum() > 20, "cut-out not found in the frame"
    xs = np.nonzero(mask)[1]
    return (xs.min() + xs.max() + 1) / 2.0


@pytest.mark.parametrize("scenario", ["single_static", "photograph", "moving"])
def test_sidecar_fov_and_azimuth_agree_with_the_cutout_column(tmp_path, diverse_assets, scenario):
    lib = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False,
                                                                       speech_share=0.0, **PLAIN))
    fovs = []
    mix_index = {"single_static": 0, "photograph": 1, "moving": 2}[scenario]
    for index in (mix_index, mix_index + 5, mix_index + 10):
        S.generate_clip(tmp_path, index, 3, lib, seconds=1.0, max_sources=1, room_fraction=0.0,
                        moving_fraction=0.0, mix="validation")
        meta = json.loads((tmp_path / "meta" / f"{index:06d}.json").read_text())
        src = meta["sources"][0]
        assert src["moving"] == (scenario == "moving")
        assert src["kind"] == ("photograph" if scenario == "photograph" else "cutout")
        fovs.append(meta["hfov_deg"])
        k = int(src["name"][-2:])
        for j in (0, 5, 9):
            x0, _, x1, _ = src["bbox"][j]
            if x0 == 0 or x1 == meta["frame_width"]:
                continue  # cut by the frame edge: the visible centre is not the source column
            frame = cv2.cvtColor(cv2.imread(str(tmp_path / "frames" / f"{index:06d}" / f"{j + 1:06d}.png")),
                                 cv2.COLOR_BGR2RGB)
            u = _find_colour(frame, _colour(k))
            az = float(column_to_azimuth(u, meta["frame_width"], meta["hfov_deg"]))
            assert abs(az - src["azimuth_deg"][j]) < 1.0, (index, j, az, src["azimuth_deg"][j])
    assert all(60 <= f <= 100 for f in fovs) and max(fovs) - min(fovs) > 1.0


def test_distractors_are_silent(libs):
    lib = libs["train"]
    for i in range(40):
        scene = sample_scene(np.random.default_rng([9, i]), lib, seconds=0.5, max_sources=1)
        if any(s.silent for s in scene.sources):
            break
    else:
        pytest.fail("no scene with a distractor in 40 draws (distractor_share 0.5)")
    without = replace(scene, sources=[s for s in scene.sources if not s.silent])
    a, _ = render_audio(scene, lib, np.random.default_rng(7))
    b, _ = render_audio(without, lib, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    fa, boxes = compose_frames(scene, lib)
    fb, _ = compose_frames(without, lib)
    assert not np.array_equal(fa[0], fb[0])  # seen ...
    assert len(boxes) == len(scene.sources)  # ... and boxed in the sidecar


def test_photograph_scene_pans_the_whole_picture(diverse_assets):
    lib = Library(diverse_assets, pool="train", options=SceneOptions(
        head_variation=False, photograph_share=1.0, speech_share=0.0, procedural_share=1.0, **PLAIN))
    scene = sample_scene(np.random.default_rng(4), lib, seconds=1.0, moving_prob=1.0)
    assert scene.kind == "photograph" and scene.sources[0].moving and scene.procedural_seed is not None
    frames, boxes = compose_frames(scene, lib)
    # A camera pan moves the background with the subject: far from the subject the pixels change.
    a, b = frames[0].astype(int), frames[-1].astype(int)
    strip = slice(0, 20)  # top rows: background only
    assert np.abs(a[strip] - b[strip]).mean() > 2.0
    az = scene.sources[0].azimuth_deg
    cx = (boxes[0][:, 0] + boxes[0][:, 2]) / 2
    assert np.sign(cx[-1] - cx[0]) == np.sign(az[-1] - az[0])


def test_camera_effects_are_reproducible_and_visible():
    rng = np.random.default_rng(0)
    img = picture.procedural_background(rng, 64, 128)
    np.testing.assert_array_equal(img, picture.procedural_background(np.random.default_rng(0), 64, 128))
    cam = dict(picture.sample_camera(rng), noise=5.0, jpeg_quality=40, downscale=0.5)
    out = picture.apply_camera(img, cam, 3)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, picture.apply_camera(img, cam, 3))
    assert not np.array_equal(out, picture.apply_camera(img, cam, 4))  # new sensor noise per frame
    assert np.abs(out.astype(int) - img).mean() > 1.0
    with pytest.raises(ValueError, match=r"\(h, w, 4\) uint8"):
        picture.soften_cutout(img, 1.0, 0.1, 0.0, np.zeros(3))


def test_online_items_deterministic_for_any_worker_count(diverse_assets):
    ds = OnlineSimDataset(6, seed=2, visual_size=(32, 64), crop_samples=3200, flip_prob=0.5,
                          paths=diverse_assets, with_positions=True)
    direct = [ds[i] for i in range(3)]
    again = ds[1]
    assert torch.equal(direct[1]["audio"], again["audio"]) and torch.equal(direct[1]["frame"], again["frame"])
    assert not torch.equal(direct[0]["audio"], direct[1]["audio"])
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [0, 1, 2]), batch_size=None,
                                         num_workers=2)
    for a, b in zip(direct, loader):
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["frame"], b["frame"])
    item = direct[0]
    assert item["audio"].shape == (2, 3200) and item["frame"].shape == (32, 64, 3)
    mono = item["audio"].mean(dim=0)
    assert abs(float(mono.pow(2).mean().sqrt()) - 0.1) < 1e-3
    xs = item["source_x"]
    assert xs.shape == (3,) and ((xs == -1) | ((xs >= 0) & (xs <= 1))).all() and xs[0] >= 0
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["audio"], direct[0]["audio"])
    with pytest.raises(ValueError, match="length must be >= 1"):
        OnlineSimDataset(0)


def test_online_frames_only_items_show_the_same_scenes_without_sound(diverse_assets):
    kwargs = dict(seed=2, visual_size=(32, 64), crop_samples=3200, flip_prob=0.5, paths=diverse_assets,
                  with_positions=True)
    full, frames_only = OnlineSimDataset(4, **kwargs), OnlineSimDataset(4, frames_only=True, **kwargs)
    for i in range(4):
        a, b = full[i], frames_only[i]
        assert "audio" not in b and b["frame"].shape == (32, 64, 3) and b["frame"].dtype == torch.uint8
        assert torch.equal(a["frame"], b["frame"]) and torch.equal(a["source_x"], b["source_x"])
        assert a["flipped"] == b["flipped"]
        # the flag says whether the rendered scene has a silent object
        scene = frames_only.render(i)[2]
        assert bool(b["silent_distractors"]) == any(src.silent for src in scene.sources)
        assert b["silent_distractors"].dtype == torch.bool


def test_online_frames_with_held_out_backgrounds(diverse_assets):
    """Online frames (the localiser's scoring frames) may draw one kind from the other pool."""
    ood_bg = {str(p) for p in Library(diverse_assets, pool="ood").backgrounds}
    ds = OnlineSimDataset(3, seed=4, visual_size=(32, 64), paths=diverse_assets, frames_only=True,
                          kind_pools={"background": "ood"}, options=SceneOptions(procedural_share=0.0))
    for i in range(3):
        scene = ds.render(i)[2]
        assert scene.background in ood_bg
        assert all(pools.pool_of("cutout", src.name) == "train" for src in scene.sources)
    with pytest.raises(ValueError, match="the scene's own"):
        OnlineSimDataset(3, pool="train", kind_pools={"background": "train"})
    with pytest.raises(ValueError, match="synthesised sounds"):
        OnlineSimDataset(3, pool="train", kind_pools={"background": "ood"}, options=SceneOptions(synth_sound_share=0.2))


def test_kind_pools_draw_only_the_named_kind_from_the_other_pool(tmp_path, diverse_assets):
    """A train-pool set whose heads (and, separately, cut-outs) come from the held-out pool: that
    kind is held out in every scene, every other kind stays in the train pool, the sidecar says
    which, and a clip renders again from its sidecar."""
    train_bg = {b.id for b in Library(diverse_assets, pool="train").background_assets}
    for kind in ("head", "cutout"):
        out = tmp_path / kind
        S.generate(out, clips=4, seconds=0.5, seed=9, rooms=False, moving=False, workers=1,
                   paths=diverse_assets, pool="train", progress=False, kind_pools={kind: "ood"},
                   options=SceneOptions(procedural_share=0.0))
        metas = [json.loads((out / "meta" / f"{i:06d}.json").read_text()) for i in range(4)]
        for m in metas:
            assert m["pool"] == "train" and m["kind_pools"] == {kind: "ood"}
            assert heads.head_pool(m["head"]) == ("ood" if kind == "head" else "train")
            assert m["background"] in train_bg
            for src in m["sources"]:
                assert pools.pool_of("cutout", src["name"]) == ("ood" if kind == "cutout" else "train")
    meta = json.loads((tmp_path / "head" / "meta" / "000000.json").read_text())
    audio, _ = sf.read(str(tmp_path / "head" / "binaural_audios" / "000000.wav"), dtype="float32")
    from streambin.train.side_headroom import SceneRerenderer
    again = SceneRerenderer(max_sources=3, mix="random", room_fraction=0.0, moving_fraction=0.0,
                            paths=diverse_assets, options=SceneOptions(procedural_share=0.0))
    (same,) = again.render(meta, audio.T, [meta["head"]])
    np.testing.assert_allclose(same * np.float32(meta["output_scale"]), audio.T, atol=2e-4)
    # sets made without per-kind pools keep their sidecars as they were
    S.generate(tmp_path / "plain", clips=1, seconds=0.5, seed=9, rooms=False, moving=False, workers=1,
               paths=diverse_assets, pool="train", progress=False)
    assert "kind_pools" not in json.loads((tmp_path / "plain" / "meta" / "000000.json").read_text())


def test_train_halves_split_the_train_pool_and_nothing_else():
    ids = [f"thing{i}" for i in range(4000)]
    halves = [pools.train_half_of("cutout", i) for i in ids]
    for i, h in zip(ids, halves):   # every train-pool identity in exactly one half, no held-out one in either
        assert (h is None) == (pools.pool_of("cutout", i) == "ood")
        assert [pools.in_pool("cutout", i, p) for p in pools.TRAIN_HALVES] == [h == "train-a", h == "train-b"]
    for half in pools.TRAIN_HALVES:
        assert 0.36 < np.mean([h == half for h in halves]) < 0.44
    assert pools.select(ids[:40], "cutout", "train-a", str) == [i for i, h in zip(ids[:40], halves) if h == "train-a"]


def test_a_train_half_of_pictures(tmp_path, diverse_assets):
    """A train-pool set whose cut-outs and backgrounds come from one half of the train pool: every
    object and background is in that half, the heads stay in the train pool, the sidecar says so."""
    whole = Library(diverse_assets, pool="train")
    half_b = {"cutout": "train-b", "background": "train-b"}
    lib = Library(diverse_assets, pool="train", kind_pools=half_b)
    assert lib.stamps and lib.background_assets
    assert {s.name for s in lib.stamps} == {s.name for s in whole.stamps
                                             if pools.train_half_of("cutout", s.name) == "train-b"}
    assert all(pools.train_half_of("background", b.id) == "train-b" for b in lib.background_assets)
    assert len(lib.background_assets) < len(whole.background_assets)
    S.generate(tmp_path, clips=3, seconds=0.5, seed=9, rooms=False, moving=False, workers=1, paths=diverse_assets,
               pool="train", progress=False, kind_pools=half_b, options=SceneOptions(procedural_share=0.0))
    for i in range(3):
        m = json.loads((tmp_path / "meta" / f"{i:06d}.json").read_text())
        assert m["pool"] == "train" and m["kind_pools"] == half_b and heads.head_pool(m["head"]) == "train"
        assert pools.train_half_of("background", m["background"]) == "train-b"
        for src in m["sources"]:
            assert pools.train_half_of("cutout", src["name"]) == "train-b"


@pytest.mark.parametrize("pool, kind_pools, message", [
    ("ood", {"cutout": "train-a"}, "needs pool 'train'"),
    ("train", {"head": "train-a"}, "only the kinds"),
    ("train", {"voice": "train-b"}, "only the kinds"),
    ("train", {"cutout": "train-c"}, "must be one of"),
])
def test_train_halves_are_checked(pool, kind_pools, message):
    with pytest.raises(ValueError, match=message):
        pools.check_kind_pools(pool, kind_pools)


@pytest.mark.parametrize("kind_pools, message", [
    ({"face": "ood"}, "kind must be one of"),
    ({"head": "all"}, "must be one of"),
    ({"head": "train"}, "the scene's own"),
])
def test_kind_pools_are_checked(diverse_assets, kind_pools, message):
    with pytest.raises(ValueError, match=message):
        Library(diverse_assets, pool="train", kind_pools=kind_pools)
    with pytest.raises(ValueError, match="not 'all'"):
        pools.check_kind_pools("all", {"head": "ood"})
    with pytest.raises(ValueError, match="training device"):
        Library(diverse_assets, pool="train", kind_pools={"head": "ood"},
                options=SceneOptions(synth_sound_share=0.5))


def test_cli_kind_pool(tmp_path, capsys):
    assert pools.parse_kind_pools(["head=ood", "cutout=ood"]) == {"head": "ood", "cutout": "ood"}
    for bad, message in ((["head"], "KIND=POOL"), (["head=ood", "head=ood"], "twice"),
                         (["face=ood"], "kind must be one of")):
        assert S.main(["--out", str(tmp_path), "--clips", "1", *sum((["--kind-pool", b] for b in bad), [])]) == 2
        assert message in capsys.readouterr().err
    assert S.main(["--out", str(tmp_path), "--clips", "1", "--kind-pool", "head=ood",
                   "--synth-sounds", "0.5"]) == 2
    assert "training device" in capsys.readouterr().err
    assert not (tmp_path / "meta").exists()
    # the Python API refuses them before any worker starts (a failing worker initializer would
    # be respawned, not reported)
    with pytest.raises(ValueError, match="kind must be one of"):
        S.generate(tmp_path / "api", clips=2, seconds=0.5, seed=1, rooms=False, moving=False, workers=2,
                   kind_pools={"face": "ood"}, progress=False)
    assert not (tmp_path / "api").exists()


def test_validation_mix_and_ood_pool_in_the_sidecar(tmp_path, diverse_assets):
    S.generate(tmp_path, clips=5, seconds=1.0, seed=8, rooms=False, moving=False, workers=1,
               paths=diverse_assets, pool="ood", mix="validation", progress=False,
               options=SceneOptions(head_variation=True))
    metas = [json.loads((tmp_path / "meta" / f"{i:06d}.json").read_text()) for i in range(5)]
    assert all(m["pool"] == "ood" for m in metas)
    assert [m["scene_kind"] for m in metas] == ["composite", "photograph", "composite", "composite", "composite"]
    sounding = [[s for s in m["sources"] if not s["silent"]] for m in metas]
    assert [len(s) for s in sounding] == [1, 1, 1, 2, 1]
    assert sounding[2][0]["moving"] and abs(sounding[4][0]["azimuth_deg"][0]) <= 5.0
    for m in metas:
        assert heads.head_pool(m["head"]) == "ood" and m["head_info"]["id"] == m["head"]
        for key in ("background", "hfov_deg", "camera"):
            assert key in m
        for s in m["sources"]:
            assert {"kind", "silent", "sound_kind"} <= set(s)
    assert (tmp_path / "splits" / "all.txt").read_text().split() == [f"{i:06d}" for i in range(5)]


def test_cli_refuses_pool_all_without_legacy(tmp_path, capsys):
    assert S.main(["--out", str(tmp_path), "--clips", "1", "--pool", "all"]) == 2
    assert "only for --legacy" in capsys.readouterr().err


@pytest.mark.assets
def test_real_pools_disjoint_pictures(real_assets):
    """With the real packages: no picture (stamp, instrument cut-out, talker) and no background
    or voice in both pools."""
    libs = {p: Library(real_assets, pool=p) for p in ("train", "ood")}
    pictures = {p: ({st.name for st in L.stamps} | {st.name for st in L.cutouts}
                    | {str(Path(png).relative_to(real_assets.stamps).with_suffix("")) for _, _, png in L.instruments})
                for p, L in libs.items()}
    assert pictures["train"] and pictures["ood"] and not (pictures["train"] & pictures["ood"])
    bgs = {p: {b.id for b in L.background_assets} for p, L in libs.items()}
    assert len(bgs["train"]) >= 60 or pytest.skip("wallpaper packages not installed")
    assert not (bgs["train"] & bgs["ood"])
    voices = {p: {v.id for v in L.voices} for p, L in libs.items()}
    assert not (voices["train"] & voices["ood"])


@pytest.mark.assets
def test_legacy_options_reproduce_the_first_sets(tmp_path, real_assets):
    """``--legacy --pool all`` gives the bytes the first generator wrote (hashes recorded with it)."""
    S.generate(tmp_path, clips=4, seconds=2.0, seed=0, rooms=True, moving=True, workers=1,
               paths=real_assets, pool="all", options=LEGACY_OPTIONS, progress=False)
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16]
    assert digest(tmp_path / "binaural_audios" / "000000.wav") == "0d06f62bb2bcd944"
    assert digest(tmp_path / "binaural_audios" / "000001.wav") == "548932dcf03ca3ac"
    assert digest(tmp_path / "binaural_audios" / "000002.wav") == "d3fe0d0e1e538ba4"


@pytest.mark.assets
def test_real_assets_diversity(real_assets):
    """40 default clips from the real packages: many backgrounds, several heads, the field of
    view varied, distractors present."""
    lib = Library(real_assets)
    if len(lib.background_assets) < 60:
        pytest.skip("wallpaper packages not installed (scripts/setup.sh --with-assets)")
    scenes = [sample_scene(np.random.default_rng([0, i]), lib, seconds=1.0) for i in range(40)]
    assert len({s.background_id for s in scenes}) >= 30
    assert len({s.head for s in scenes}) >= 3
    assert np.std([s.hfov_deg for s in scenes]) > 5.0
    assert sum(any(x.silent for x in s.sources) for s in scenes) >= 5
    assert sum(s.kind == "photograph" for s in scenes) >= 5


def test_sound_colour_is_a_smooth_bounded_equaliser_drawn_only_when_on(diverse_assets):
    from streambin.train.sim.scene import colour_sound, source_signal

    x = np.random.default_rng(0).standard_normal(16000)
    y = colour_sound(x, np.random.default_rng(1), 10.0, 16000)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.array_equal(y, colour_sound(x, np.random.default_rng(1), 10.0, 16000))
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x)))
    assert np.all(np.abs(gain_db[10:]) <= 10.0 + 1e-6) and np.ptp(gain_db[10:]) > 3.0
    assert np.max(np.abs(np.diff(gain_db[100:]))) < 0.2  # smooth: no jumps between (1 Hz) bins
    with pytest.raises(ValueError, match=r"\(n,\)"):
        colour_sound(np.zeros(1), np.random.default_rng(0), 6.0, 16000)
    with pytest.raises(ValueError, match="sound_colour_db"):
        SceneOptions(sound_colour_db=30.0)

    plain = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False))
    coloured = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False, sound_colour_db=8.0))
    scene = sample_scene(np.random.default_rng(3), plain, seconds=1.0)
    src = scene.sounding[0]
    a = source_signal(np.random.default_rng(4), plain, src, 8000)
    b = source_signal(np.random.default_rng(4), coloured, src, 8000)
    assert not np.allclose(a, b) and np.sqrt(np.mean(b.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    # Off, nothing more is drawn (sets made before the option render the same); on, it draws.
    off = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False, sound_colour_db=0.0))
    r_plain, r_off, r_on = (np.random.default_rng(4) for _ in range(3))
    assert np.array_equal(source_signal(r_plain, plain, src, 8000), source_signal(r_off, off, src, 8000))
    source_signal(r_on, coloured, src, 8000)
    assert r_plain.bit_generator.state == r_off.bit_generator.state != r_on.bit_generator.state


def test_extra_sounds_replace_stamp_sounds_without_distractors_and_draw_only_when_on(diverse_assets, tmp_path):
    from streambin.train.sim.scene import source_signal

    from .test_sim_recordings import write_sound_root

    with pytest.raises(ValueError, match="extra_sound_share"):
        SceneOptions(extra_sound_share=1.5)
    with pytest.raises(A.MissingAssetError, match="heroes-sound-effects"):
        Library(replace(diverse_assets, sound_root=tmp_path / "empty"), pool="train",
                options=SceneOptions(head_variation=False, extra_sound_share=0.5))

    paths = replace(diverse_assets, sound_root=write_sound_root(tmp_path / "share", n_effects=30))
    on = Library(paths, pool="train", options=SceneOptions(head_variation=False, speech_share=0.0,
                                                           distractor_share=1.0, extra_sound_share=1.0))
    train_groups = {g.id for g in on.sound_groups}
    assert train_groups and all(pools.pool_of("sound", g) == "train" for g in train_groups)
    scenes = [sample_scene(np.random.default_rng(i), on, seconds=1.0) for i in range(12)]
    sounding = [s for sc in scenes for s in sc.sounding]
    assert sounding and all(s.kind in ("recording", "instrument") for s in sounding)
    assert {s.sound for s in sounding if s.kind == "recording"} <= train_groups
    assert not any(s.silent for sc in scenes for s in sc.sources)  # no distractor: no "which one"
    src = next(s for s in sounding if s.kind == "recording")
    x = source_signal(np.random.default_rng(0), on, src, 8000)
    assert x.shape == (8000,) and x.dtype == np.float32
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)

    # Off, nothing more is drawn: the same scenes as a library that never heard of the option.
    plain = Library(diverse_assets, pool="train", options=SceneOptions(head_variation=False))
    off = Library(paths, pool="train", options=SceneOptions(head_variation=False, extra_sound_share=0.0))
    assert off.sound_groups == []
    for i in range(5):
        a = sample_scene(np.random.default_rng(i), plain, seconds=1.0)
        b = sample_scene(np.random.default_rng(i), off, seconds=1.0)
        assert [(s.kind, s.sound, s.silent) for s in a.sources] == [(s.kind, s.sound, s.silent) for s in b.sources]
        assert [s.azimuth_deg.tolist() for s in a.sources] == [s.azimuth_deg.tolist() for s in b.sources]


def test_mosaic_backgrounds_tile_the_frame_with_the_pools_pictures_and_draw_only_when_on(diverse_assets, tmp_path):
    """A mosaic background: 2-4 tiles cover the frame exactly, each showing one train-pool
    picture (the fixture's backgrounds are flat greys, 100 + 5 k for bg{k}); the rest of the
    scene is what it would have been without the option, which draws nothing when off; held-out
    and photograph scenes never get one; the sidecar lists the tiles."""
    from dataclasses import replace as dc_replace

    with pytest.raises(ValueError, match="mosaic_share"):
        SceneOptions(mosaic_share=-0.1)
    base = dict(head_variation=False, procedural_share=0.0, photograph_share=0.0, **PLAIN)
    plain = Library(diverse_assets, pool="train", options=SceneOptions(**base))
    on = Library(diverse_assets, pool="train", options=SceneOptions(mosaic_share=1.0, **base))
    off = Library(diverse_assets, pool="train", options=SceneOptions(mosaic_share=0.0, **base))
    train_ids = {b.id for b in on.background_assets}
    counts, pictures = set(), set()
    for i in range(8):
        a, b = (sample_scene(np.random.default_rng(i), lib, seconds=0.5) for lib in (plain, on))
        assert sample_scene(np.random.default_rng(i), off, seconds=0.5).mosaic is None and a.mosaic is None
        for attr in ("background", "background_crop", "background_flip"):
            assert getattr(a, attr) == getattr(b, attr)
        assert [(s.name, s.azimuth_deg.tolist()) for s in a.sources] == \
            [(s.name, s.azimuth_deg.tolist()) for s in b.sources]
        tiles = b.mosaic
        assert 2 <= len(tiles) <= 4 and {t["background"] for t in tiles} <= train_ids
        counts.add(len(tiles))
        pictures |= {t["background"] for t in tiles}
        assert sum((t["box"][2] - t["box"][0]) * (t["box"][3] - t["box"][1]) for t in tiles) == pytest.approx(1.0)
        (frame,), _ = compose_frames(dc_replace(b, sources=[], seconds=0.1, fps=10.0), on)
        covered = np.zeros(frame.shape[:2], int)
        for t in tiles:
            u0, v0, u1, v1 = t["box"]
            c0, r0, c1, r1 = (int(round(u0 * b.width)), int(round(v0 * b.height)),
                              int(round(u1 * b.width)), int(round(v1 * b.height)))
            if b.background_flip:
                c0, c1 = b.width - c1, b.width - c0
            grey = 100 + 5 * int(Path(t["path"]).stem[2:])
            assert np.all(frame[r0:r1, c0:c1] == grey), t
            covered[r0:r1, c0:c1] += 1
            x0, y0, x1, y1 = t["crop"]  # a crop of the tile's shape inside its picture
            assert 0 <= x0 < x1 <= 700 and 0 <= y0 < y1 <= 300
            assert (x1 - x0) / (y1 - y0) == pytest.approx((c1 - c0) / (r1 - r0), rel=0.1)
        assert np.all(covered == 1)  # every pixel in exactly one tile
    assert len(counts) >= 2 and len(pictures) >= 4
    # held-out backgrounds are refused as mosaics (a training device), and never drawn as one
    # where options handed to sample_scene bypass the library's check; photographs keep theirs
    for pool, kind_pools in (("ood", None), ("train", {"background": "ood"})):
        with pytest.raises(ValueError, match="mosaic backgrounds"):
            Library(diverse_assets, pool=pool, kind_pools=kind_pools, options=SceneOptions(mosaic_share=0.5, **base))
    ood = Library(diverse_assets, pool="ood", options=SceneOptions(**base))
    photos = Library(diverse_assets, pool="train", options=SceneOptions(
        mosaic_share=1.0, **{**base, "photograph_share": 1.0}))
    for i in range(4):
        assert sample_scene(np.random.default_rng(i), ood, seconds=0.5,
                            options=SceneOptions(mosaic_share=1.0, **base)).mosaic is None
        assert sample_scene(np.random.default_rng(i), photos, seconds=0.5).mosaic is None
    assert S.main(["--out", str(tmp_path / "refused"), "--clips", "1", "--pool", "ood", "--mosaic", "0.5"]) == 2
    assert not (tmp_path / "refused" / "meta").exists()
    S.generate(tmp_path, clips=1, seconds=0.5, seed=3, rooms=False, moving=False, workers=1,
               paths=diverse_assets, pool="train", progress=False, options=SceneOptions(mosaic_share=1.0, **base))
    meta = json.loads((tmp_path / "meta" / "000000.json").read_text())
    assert meta["mosaic_share"] == 1.0 and 2 <= len(meta["background_mosaic"]) <= 4
    assert {t["background"] for t in meta["background_mosaic"]} <= train_ids
