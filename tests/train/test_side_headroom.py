"""python -m streambin.train.side_headroom: how much of the side a filter on the mono can explain."""

import json
import subprocess
import sys

import numpy as np
import pytest

from streambin.train import side_headroom as H
from tests.train.test_localisation_eval import scenes  # noqa: F401  (the fixture)
from tests.train.test_sim_diversity import diverse_assets  # noqa: F401  (the fixture)


def _binaural(mid, side):
    return np.stack([mid + side, mid - side]).astype(np.float32)


def test_a_side_that_is_filtered_mono_is_all_explained():
    """Side = 0.3 x the mono delayed by 2 samples: one complex gain per bin, residual ~0 (a
    delay is a per-bin phase only up to the window's edges: ~2 % is left)."""
    mid = np.random.default_rng(0).standard_normal(16000)
    side = 0.3 * np.concatenate([np.zeros(2), mid[:-2]])
    r = H.side_residuals(_binaural(mid, side), [None, 50])
    assert r["side"] > 0
    assert r["residual"][0] < 0.03 * r["side"] and r["residual"][1] < 0.03 * r["side"]


def test_a_side_unrelated_to_the_mono_is_not_explained():
    """Independent noise: nothing but the fit's optimism (~1 part in the frames per stretch)."""
    rng = np.random.default_rng(1)
    mid, side = rng.standard_normal(32000), 0.5 * rng.standard_normal(32000)
    r = H.side_residuals(_binaural(mid, side), [None, 100, 20])
    whole, per_second, per_fifth = (x / r["side"] for x in r["residual"])
    assert 0.98 < whole <= 1.0
    assert 0.97 < per_second <= 1.0
    assert 0.9 < per_fifth < per_second  # shorter stretches fit more of the noise


def test_shorter_stretches_never_explain_less():
    """A side whose filter changes halfway (a source that jumps sides): one filter per half
    explains it, one per clip cannot."""
    mid = np.random.default_rng(2).standard_normal(32000)
    side = np.concatenate([0.4 * mid[:16000], -0.4 * mid[16000:]])
    clip, half = H.side_residuals(_binaural(mid, side), [None, 100])["residual"]
    side_energy = H.side_residuals(_binaural(mid, side), [None])["side"]
    assert clip > 0.9 * side_energy and half < 0.05 * side_energy


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match=r"float \(2, n\)"):
        H.side_residuals(np.zeros((1, 100)), [None])
    with pytest.raises(ValueError, match="non-finite"):
        H.side_residuals(np.full((2, 100), np.nan), [None])
    with pytest.raises(ValueError, match=">= 1 frame"):
        H.side_residuals(np.ones((2, 100)), [0])


def test_the_command_on_a_data_set(scenes, tmp_path):  # noqa: F811
    from streambin.train.data import SimBinauralDataset

    res = H.headroom(SimBinauralDataset(scenes, "all", mode="eval"), [0.5], progress=False)
    assert set(res["ratio"]) == {"clip", "0.5 s"} and res["n_clips"] == len(res["per_clip"]) > 1
    assert 0 <= res["ratio"]["0.5 s"] <= res["ratio"]["clip"] <= 1.0
    with pytest.raises(ValueError, match="seconds > 0"):
        H.headroom(SimBinauralDataset(scenes, "all", mode="eval"), [0.0], progress=False)
    out = tmp_path / "h.json"
    proc = subprocess.run([sys.executable, "-m", "streambin.train.side_headroom", "--data", str(scenes),
                           "--max-clips", "2", "--segments", "0.5", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(out.read_text())
    assert saved["n_clips"] == 2 and "| all | 2 |" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "streambin.train.side_headroom", "--data", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "split file" in bad.stderr


def test_other_head_filters_are_scored_on_the_clip():
    rng = np.random.default_rng(3)
    mid = rng.standard_normal(16000)
    clip = _binaural(mid, 0.4 * mid)
    same = H.other_head_residuals(clip, [clip, clip])  # the clip's own filter: nothing left
    assert same["one other head"] < 1e-6 and same["other heads (2)"] < 1e-6
    opposite = _binaural(mid, -0.4 * mid)  # a head with the ears the other way round
    r = H.other_head_residuals(clip, [opposite, clip])
    side = H.side_residuals(clip, [None])["side"]
    assert r["one other head"] == pytest.approx(4 * side, rel=0.02)  # |S - (-S)|^2 = 4 |S|^2
    assert r["other heads (2)"] == pytest.approx(side, rel=0.02)     # the mean filter is 0
    with pytest.raises(ValueError, match="at least one rendering"):
        H.other_head_residuals(clip, [])
    with pytest.raises(ValueError, match="the clip's shape"):
        H.other_head_residuals(clip, [clip[:, :8000]])


def test_scenes_rendered_again_through_other_heads(diverse_assets, tmp_path):  # noqa: F811
    """A generated set: the scenes render again as written, other heads explain less of the side
    than the clip's own filter, and options other than the set's are refused."""
    from streambin.train import simulate as S
    from streambin.train.data import SimBinauralDataset
    from streambin.train.sim.scene import SceneOptions

    S.generate(tmp_path, clips=3, seconds=1.0, seed=8, rooms=False, moving=False, workers=1, paths=diverse_assets,
               pool="ood", mix="validation", progress=False, options=SceneOptions(head_variation=True))
    ds = SimBinauralDataset(tmp_path, "all", mode="eval")
    same = H.SceneRerenderer("validation", 0.0, 0.0, options=SceneOptions(head_variation=True), paths=diverse_assets)
    res = H.headroom(ds, [], progress=False, other_heads=2, rerenderer=same)
    assert set(res["ratio"]) == {"clip", "one other head", "other heads (2)"}
    assert res["ratio"]["one other head"] >= res["ratio"]["clip"]
    assert res["ratio"]["other heads (2)"] >= res["ratio"]["clip"]
    for row in res["per_clip"]:
        assert len(set(row["other_heads"])) == 2 and ds.meta(ds.clips.index(row["clip"]))["head"] not in row["other_heads"]
    assert H.headroom(ds, [], progress=False, other_heads=2, rerenderer=same)["ratio"] == res["ratio"]  # seeded
    other_mix = H.SceneRerenderer("random", 0.0, 0.0, options=SceneOptions(head_variation=True), paths=diverse_assets)
    with pytest.raises(ValueError, match="does not render again as written"):
        H.headroom(ds, [], progress=False, other_heads=1, rerenderer=other_mix)
    with pytest.raises(ValueError, match="mix must be one of"):
        H.SceneRerenderer("shuffled")


def test_bounds_per_scene_beside_a_model(scenes, tmp_path):  # noqa: F811
    """The table per scene kind, and a model's evaluation of the same clips beside it."""
    from streambin.train.data import SimBinauralDataset

    res = H.headroom(SimBinauralDataset(scenes, "all", mode="eval"), [], progress=False)
    scenes_seen = {r["scene"] for r in res["per_clip"]}
    assert {"lateral single source", "moving source", "2 sounding sources"} <= scenes_seen
    rows = {r["scene"]: r for r in H.by_scene(res)}
    assert rows["all"]["clips"] == res["n_clips"] and rows["all"]["clip"] == pytest.approx(res["ratio"]["clip"])
    assert sum(r["clips"] for k, r in rows.items() if k != "all") == res["n_clips"]
    first, second = res["per_clip"][0]["clip"], res["per_clip"][1]["clip"]
    evaluation = {"per_clip": [{"clip": first, "metrics": {"model": {"stft": 1.0}, "mono_mono": {"stft": 2.0}}},
                               {"clip": second, "metrics": {"model": {"stft": 2.0}, "mono_mono": {"stft": 2.0}}}]}
    beside = {r["scene"]: r for r in H.by_scene(res, evaluation)}
    assert beside["all"]["clips"] == 2 and beside["all"]["model"] == pytest.approx(3.0 / 4.0)
    res["per_clip"][0]["room"] = True  # the hand-made scenes are anechoic; say one is in a room
    split = {r["scene"]: r for r in H.by_scene(res, by_room=True)}
    first_kind = res["per_clip"][0]["scene"]
    assert split[f"{first_kind}, in a room"]["clips"] == 1
    assert sum(r["clips"] for k, r in split.items() if k != "all") == res["n_clips"]
    assert all(k == "all" or k.endswith((", in a room", ", anechoic")) for k in split)
    with pytest.raises(ValueError, match="scored none of these clips"):
        H.by_scene(res, {"per_clip": [{"clip": "elsewhere", "metrics": {"model": {"stft": 1}, "mono_mono": {"stft": 1}}}]})
    with pytest.raises(ValueError, match="per-clip model and mono_mono"):
        H.by_scene(res, {"per_clip": [{"clip": first}]})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "streambin.train.side_headroom", "--data", str(scenes),
                           "--beside", str(bad), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 1 and "side_headroom: error" in proc.stderr
