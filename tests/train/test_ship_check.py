"""streambin.train.ship_check: the goals table and the ship rule's tests from evaluation JSONs
(small hand-made evaluations, so each test's outcome is known)."""

import json

import numpy as np
import pytest

from streambin.train import ship_check


def _evaluation(path, stft, mono=1.0, composites=1.0, photographs=1.0, ratio=1.0, grey=0.0, direction=0.9,
                localisation=True, first=0, data=None):
    """An evaluation of ``len(stft)`` clips named from ``first`` with these model STFT distances
    (of the data set at ``data``, if given)."""
    per_clip = [{"clip": f"{first + i:06d}", "metrics": {"model": {"stft": float(s), "direction_acc": direction},
                                                         "mono_mono": {"stft": mono, "direction_acc": 0.0}}}
                for i, s in enumerate(stft)]
    ev = {"metrics": ["stft", "direction_acc"], "per_clip": per_clip,
          "summary": {"model": {"stft": {"mean": float(np.mean(stft))}, "direction_acc": {"mean": direction}}}}
    if data is not None:
        ev["settings"] = {"data": data}
    if localisation:
        ev["localisation"] = {"summary": {
            "direction_acc": {"composite": {"rate": composites, "n": 16}, "photograph": {"rate": photographs, "n": 12}},
            "mirror_flip_rate": {"rate": 1.0, "n": 28}, "ld_ratio_median": ratio, "grey_bias_abs_db": grey}}
    path.write_text(json.dumps(ev))
    return str(path)


@pytest.fixture
def files(tmp_path, rng):
    ref = 0.8 + 0.1 * rng.standard_normal(40)
    better = ref - 0.05 + 0.01 * rng.standard_normal(40)         # clearly better, paired
    f = {}
    f["ref_a"] = _evaluation(tmp_path / "ref_a.json", ref[:20], ratio=1.0)
    f["ref_b"] = _evaluation(tmp_path / "ref_b.json", ref[20:], ratio=0.9, first=20)
    f["cand_a"] = _evaluation(tmp_path / "cand_a.json", better[:20], ratio=1.1)
    f["cand_b"] = _evaluation(tmp_path / "cand_b.json", better[20:], ratio=0.95, first=20)
    f["ref_in"] = _evaluation(tmp_path / "ref_in.json", np.full(10, 0.9) + 0.01 * rng.standard_normal(10),
                              localisation=False)
    f["cand_in"] = _evaluation(tmp_path / "cand_in.json", np.full(10, 0.9) + 0.01 * rng.standard_normal(10),
                               localisation=False)
    return f


def test_a_better_candidate_passes_and_the_goals_are_read_as_the_issue_states_them(files):
    result = ship_check.check([(files["cand_a"], files["ref_a"]), (files["cand_b"], files["ref_b"])], None,
                              (files["cand_in"], files["ref_in"]))
    assert result["passed"], result["tests"]
    rows = {r["measure"]: r for r in result["goals"]["candidate"]}
    assert rows["median level ratio"]["values"] == [1.1, 0.95] and rows["median level ratio"]["met"]
    stft = rows["STFT x Mono-Mono, all held-out clips"]
    assert stft["values"][0] == pytest.approx(np.mean([c for c in _stfts(files["cand_a"], files["cand_b"])]))
    assert not stft["met"]                               # 0.75 against the goal's 0.70
    assert result["tests"]["held-out STFT better by more than the margin"]["paired"]["clips"] == 40


def _stfts(*paths):
    return [c["metrics"]["model"]["stft"] for p in paths for c in json.load(open(p))["per_clip"]]


def test_a_met_row_turned_unmet_fails_the_rule(files, tmp_path, rng):
    worse_dir = _evaluation(tmp_path / "cand_b2.json", np.array(_stfts(files["cand_b"])), composites=0.875,
                            ratio=0.95, first=20)
    result = ship_check.check([(files["cand_a"], files["ref_a"]), (worse_dir, files["ref_b"])], None, None)
    assert not result["passed"]
    assert result["tests"]["no met goal row turned unmet"]["turned_unmet"] == ["direction, composites"]
    assert result["tests"]["held-out STFT better by more than the margin"]["passed"]
    report = ship_check.format_report(result)
    assert "direction, composites: FAILED" in report and "ship rule: not passed" in report


def test_a_gain_inside_the_margin_fails_and_in_domain_worse_fails(files, tmp_path, rng):
    ref = np.array(_stfts(files["ref_a"]))
    noisy = ref + 0.05 * rng.standard_normal(20) - 0.001     # barely better, mostly noise
    cand = _evaluation(tmp_path / "noisy.json", noisy, ratio=1.1)
    worse_in = _evaluation(tmp_path / "worse_in.json", np.array(_stfts(files["ref_in"])) + 0.2, localisation=False)
    result = ship_check.check([(cand, files["ref_a"])], None, (worse_in, files["ref_in"]))
    assert not result["tests"]["held-out STFT better by more than the margin"]["passed"]
    assert not result["tests"]["in-domain not worse by more than the margin, and meeting its goal"]["passed"]
    assert ship_check.main(["--ood", cand, files["ref_a"], "--in-domain", worse_in, files["ref_in"]]) == 1


def test_lateral_floor_and_bad_inputs(files, tmp_path, capsys):
    lat_ref = _evaluation(tmp_path / "lat_ref.json", np.array(_stfts(files["ref_a"])), ratio=0.6, first=100)
    lat_cand = _evaluation(tmp_path / "lat_cand.json", np.array(_stfts(files["cand_a"])), ratio=0.55, first=100)
    result = ship_check.check([(files["cand_a"], files["ref_a"])], (lat_cand, lat_ref), None,
                              min_lateral_level_ratio=0.6)
    assert not result["tests"]["lateral level ratio not lower than the floor"]["passed"]
    assert result["sets"] == ["ood set 1", "lateral"]
    with pytest.raises(ValueError, match="at least one --ood"):
        ship_check.check([], None, None)
    with pytest.raises(ValueError, match="needs --lateral"):
        ship_check.check([(files["cand_a"], files["ref_a"])], None, None, min_lateral_level_ratio=0.6)
    with pytest.raises(ValueError, match="no localisation summary"):
        ship_check.check([(files["cand_in"], files["ref_in"])], None, None)
    out = tmp_path / "r.json"
    assert ship_check.main(["--ood", files["cand_a"], files["ref_a"], "--out", str(out)]) == 0
    assert json.loads(out.read_text())["passed"] is True
    assert ship_check.main(["--ood", str(tmp_path / "missing.json"), files["ref_a"]]) == 2
    assert "not a readable evaluation JSON" in capsys.readouterr().err


def _lateral(path, wrong, n=10, ratio=1.0, first=0):
    """A --lateral-only evaluation of ``n`` composite clips at +20 degrees whose per-clip records
    put ``wrong`` of them on the wrong side (predicted level difference ``ratio`` x the true)."""
    records = [{"clip": f"{first + i:06d}", "qualifies": True, "reason": "", "scene_kind": "composite",
                "azimuth_deg": 20.0, "ld_target_db": 4.0, "ld_pred_db": (-1 if i < wrong else 1) * 4.0 * ratio,
                "ld_grey_db": 0.0, "ld_mirrored_db": (1 if i < wrong else -1) * 4.0 * ratio} for i in range(n)]
    per_clip = [{"clip": r["clip"], "metrics": {"model": {"stft": 0.5, "direction_acc": 0.9},
                                                "mono_mono": {"stft": 1.0, "direction_acc": 0.0}}} for r in records]
    from streambin.train.localisation_eval import summarize
    path.write_text(json.dumps({"metrics": ["stft"], "per_clip": per_clip,
                                "localisation": {"summary": summarize(records), "per_clip": records}}))
    return str(path)


def test_lateral_sets_pool_their_clips_and_rows_can_be_judged_on_them_alone(files, tmp_path):
    cand = [_lateral(tmp_path / "ca.json", 1, ratio=0.8), _lateral(tmp_path / "cb.json", 1, ratio=0.9, first=100)]
    ref = [_lateral(tmp_path / "ra.json", 0), _lateral(tmp_path / "rb.json", 0, first=100)]
    # One held-out set whose 16-clip composites row drops to 0.875 (two clips), the lateral sets 9 of 10 each.
    weak = _evaluation(tmp_path / "weak.json", np.array(_stfts(files["cand_a"])), composites=0.875, ratio=1.1)
    pairs = list(zip(cand, ref))
    result = ship_check.check([(weak, files["ref_a"])], pairs, None)
    assert result["sets"] == ["ood set 1", "lateral (2 sets pooled)"]
    rows = {r["measure"]: r for r in result["goals"]["candidate"]}
    assert rows["direction, composites"]["values"] == [0.875, pytest.approx(18 / 20)]
    pooled_ratios = [-0.8] + [0.8] * 9 + [-0.9] + [0.9] * 9                    # the wrong side counts negative
    assert rows["median level ratio"]["values"][-1] == pytest.approx(np.median(pooled_ratios))
    assert result["tests"]["no met goal row turned unmet"]["turned_unmet"] == ["direction, composites"]
    judged = ship_check.check([(weak, files["ref_a"])], pairs, None, judge_rows="lateral")
    assert judged["tests"]["no met goal row turned unmet"]["passed"]           # 0.90 pooled: met
    assert "met on the last alone" in ship_check.format_report(judged)
    one = ship_check.check([(weak, files["ref_a"])], pairs[0], None)          # one pair as before
    assert one["sets"] == ["ood set 1", "lateral"]
    args = ["--ood", weak, files["ref_a"], "--lateral", cand[0], ref[0], "--lateral", cand[1], ref[1]]
    assert ship_check.main(args) == 1
    assert ship_check.main(args + ["--judge-rows", "lateral"]) == 0
    with pytest.raises(ValueError, match="needs --lateral"):
        ship_check.check([(weak, files["ref_a"])], None, None, judge_rows="lateral")
    with pytest.raises(ValueError, match="judge_rows must be one of"):
        ship_check.check([(weak, files["ref_a"])], pairs, None, judge_rows="some")
    with pytest.raises(ValueError, match="is in both .* pool lateral evaluations of different clips"):
        ship_check.check([(weak, files["ref_a"])], [pairs[0], pairs[0]], None)
    with pytest.raises(ValueError, match="no per-clip localisation records to pool"):
        ship_check.check([(weak, files["ref_a"])], [(weak, files["ref_a"]), pairs[1]], None)


def test_held_out_sets_of_two_roots_pool_although_their_clips_are_numbered_alike(tmp_path, rng):
    ref = 0.8 + 0.1 * rng.standard_normal(20)
    pairs = []
    for root in ("/data/ood_val", "/data/ood_confirm"):    # both number their clips from 000000
        tag = root.rsplit("/", 1)[1]
        pairs.append((_evaluation(tmp_path / f"c_{tag}.json", ref - 0.05, data=root),
                      _evaluation(tmp_path / f"r_{tag}.json", ref, data=root)))
    result = ship_check.check(pairs, None, None)
    test = result["tests"]["held-out STFT better by more than the margin"]
    assert test["paired"]["clips"] == 40 and test["passed"]
    same_root = [pairs[0], (pairs[0][0], pairs[0][1])]      # the same clips twice still count once
    with pytest.raises(ValueError, match="is in both ood set 1 and ood set 2"):
        ship_check.check(same_root, None, None)


def test_direction_is_compared_clip_by_clip_over_the_pooled_lateral_clips(files, tmp_path, capsys):
    """Per kind: the candidate's right-side share minus the reference's, paired per clip, with its
    standard error; --direction-se turns it into a test of the rule."""
    cand = [_lateral(tmp_path / "ca.json", 2), _lateral(tmp_path / "cb.json", 0, first=100)]
    ref = [_lateral(tmp_path / "ra.json", 1), _lateral(tmp_path / "rb.json", 0, first=100)]
    pairs = list(zip(cand, ref))
    ood = [(files["cand_a"], files["ref_a"])]
    d = ship_check.check(ood, pairs, None)["paired_direction"]["composite"]
    diff = np.array([0.0, -1.0] + [0.0] * 18)          # clip 1 lost by the candidate, clip 0 lost by both
    assert (d["clips"], d["candidate"], d["reference"]) == (20, 18, 19)
    assert d["mean"] == pytest.approx(diff.mean()) and d["sem"] == pytest.approx(diff.std(ddof=1) / np.sqrt(20))
    assert not any("paired" in name for name in ship_check.check(ood, pairs, None)["tests"])   # reported only
    name = "direction, composites, not worse paired by more than the margin"
    assert ship_check.check(ood, pairs, None, direction_se=2.0)["tests"][name]["passed"]       # -0.05 ± 0.05
    assert not ship_check.check(ood, pairs, None, direction_se=0.5)["tests"][name]["passed"]
    # Without a discordant clip the difference has no spread: level passes, lower fails at any margin.
    assert ship_check.check(ood, [(ref[0], ref[0])], None, direction_se=2.0)["tests"][name]["passed"]
    all_lost, all_right = _lateral(tmp_path / "lost.json", 10), _lateral(tmp_path / "right.json", 0)
    assert not ship_check.check(ood, [(all_lost, all_right)], None, direction_se=2.0)["tests"][name]["passed"]
    args = ["--ood", *ood[0], "--lateral", cand[0], ref[0], "--lateral", cand[1], ref[1]]
    assert ship_check.main(args + ["--direction-se", "0.5"]) == 1
    assert "paired direction, composites (pooled lateral): -0.050 ± 0.050 (20 clips; on the right side: " \
           "candidate 18, reference 19)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="do not score the same lateral clips"):
        ship_check.check(ood, [(cand[0], ref[1])], None)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({**json.load(open(cand[0])), "settings": {"data": "/data/other"}}))
    with pytest.raises(ValueError, match="evaluate different data"):
        ship_check.check(ood, [(str(elsewhere), ref[0])], None)
    with pytest.raises(ValueError, match="needs --lateral evaluations with per-clip localisation records"):
        ship_check.check(ood, None, None, direction_se=2.0)
    with pytest.raises(ValueError, match="margins must be >= 0"):
        ship_check.check(ood, pairs, None, direction_se=-1.0)
