"""The methods comparison tables (streambin.train.compare) on hand-made evaluation results."""

import csv
import json
import math

import numpy as np
import pytest

from streambin.train import compare
from streambin.train.checkpoint import save_checkpoint
from streambin.train.config import load_config
from streambin.train.recipes import get_recipe

METRICS = ["stft", "env", "direction_acc"]


def fake_eval(stft_by_clip, env_by_clip, shift_flipped=0.5):
    """An evaluate-style result with the given per-clip model values (baselines derived)."""
    per_clip, conds = [], ("model", "mono_mono", "audio_only", "flipped_visual")
    for clip in stft_by_clip:
        s, e = stft_by_clip[clip], env_by_clip[clip]
        vals = {"model": (s, e), "mono_mono": (s + 1, e + 0.1), "audio_only": (s + 0.5, e + 0.05),
                "flipped_visual": (s + shift_flipped, e + 0.2)}
        per_clip.append({"clip": clip, "metrics": {c: {"stft": vals[c][0], "env": vals[c][1], "direction_acc": 0.5}
                                                   for c in conds}})
    summary = {}
    for c in conds:
        summary[c] = {}
        for m in METRICS:
            v = np.array([pc["metrics"][c][m] for pc in per_clip])
            summary[c][m] = {"mean": float(v.mean()), "sem": float(v.std(ddof=1) / math.sqrt(len(v))), "n": len(v)}
    return {"metrics": METRICS, "higher_is_better": ["direction_acc"], "summary": summary, "per_clip": per_clip,
            "settings": {"n_clips": len(per_clip)}}


def test_paired_difference_by_hand():
    ref = fake_eval({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.1, "b": 0.2, "c": 0.3})
    ev = fake_eval({"a": 0.9, "b": 1.7, "c": 3.0}, {"a": 0.1, "b": 0.2, "c": 0.3})
    mean, se, rel, n = compare.paired_difference(ev, ref, "stft")
    d = np.array([-0.1, -0.3, 0.0])
    assert n == 3 and mean == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert rel == pytest.approx(d.mean() / 2.0)
    with pytest.raises(ValueError, match="shared clips"):
        compare.paired_difference(fake_eval({"z": 1.0, "y": 2.0}, {"z": 0.1, "y": 0.2}), ref, "stft")


def test_tables_rows_and_same_clip_check():
    info = {"train_s": 600.0, "steps": 400, "best_step": 400, "params_generator": 12_360_000,
            "params_trained": 12_500_000, "recipe": "x"}
    ref = fake_eval({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": 0.2})
    better = fake_eval({"a": 0.8, "b": 1.6}, {"a": 0.1, "b": 0.2}, shift_flipped=1.0)
    text = compare.build_tables([("m2b", ref, info), ("new", better, info)],
                                curve=[compare.CurvePoint(0.5, "half", better), compare.CurvePoint(1.0, "new", better)])
    assert "| Mono-Mono (from m2b) | 2.5000 ± 0.5000 |" in text
    assert "| new | 1.2000 ± 0.4000 |" in text and "10 min" in text and "12.36 M / 12.50 M" in text
    assert "| new | -0.3000 ± 0.1000 | -20.0% | +0.0000 ± 0.0000 | +0.0% | 1.83x |" in text
    assert text.index("| 0.5 | half |") < text.index("| 1 | new |")
    assert "| 1 | new | 1.2000 ± 0.4000 | 0.1500 ± 0.0500 | 0.5000 ± 0.0000 | - | - | - | - |" in text
    with pytest.raises(ValueError, match="other clips"):
        compare.build_tables([("m2b", ref, info), ("odd", fake_eval({"a": 1.0, "q": 1.0}, {"a": 0.1, "q": 0.1}), info)])


def tiny_run(run, step):
    """A tiny mono2binaural run directory ``run`` whose best.pt is at ``step``; returns its recipe."""
    cfg = load_config(None, ["model.ngf=4", "model.visual_size=[32, 64]"])
    recipe = get_recipe("mono2binaural")(cfg)
    recipe.build()
    run.mkdir(parents=True)
    save_checkpoint(str(run / "best.pt"), config=cfg, model=recipe.step_module, epoch=0, step=step, best_val=1.0)
    return recipe


def test_run_info_and_cli(tmp_path, one_thread):
    run = tmp_path / "runs" / "m2b"
    recipe = tiny_run(run, step=200)
    with open(run / "log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "elapsed_s"])
        w.writerows([[200, 100.0], [400, 250.5]])
    info = compare.run_info(str(run))
    n_gen = sum(p.numel() for p in recipe.generator.parameters())
    assert info == {"train_s": 250.5, "steps": 400, "best_step": 200, "params_generator": n_gen,
                    "params_trained": n_gen, "recipe": "mono2binaural"}
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "m2b.json").write_text(json.dumps(fake_eval({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": 0.2})))
    out = tmp_path / "table.md"
    assert compare.main(["--runs", str(tmp_path / "runs"), "--evals", str(evals), "--methods", "m2b",
                         "--out", str(out)]) == 0
    assert "| m2b | 1.5000 ± 0.5000 |" in out.read_text()
    assert compare.main(["--runs", str(tmp_path / "runs"), "--evals", str(evals), "--methods", "nope"]) == 2


def _localised_eval(pred_gain_right):
    """An evaluation with localisation measures over two lateral clips (right composite, left
    photograph); ``pred_gain_right`` scales the prediction's right ear on both."""
    from streambin.train import localisation_eval as L

    rng = np.random.default_rng(0)
    x = rng.standard_normal(1600)
    records = []
    for clip, kind, az in (("a", "composite", 30.0), ("b", "photograph", -30.0)):
        meta = {"scene_kind": kind, "sources": [{"name": "s", "azimuth_deg": [az, az], "moving": False}]}
        side = 1.0 if az > 0 else -1.0
        target = np.stack([x * 10 ** (-side / 2), x * 10 ** (side / 2)])  # 20 dB toward the source
        pred = np.stack([x, x * pred_gain_right])
        mirrored = np.stack([x * pred_gain_right, x])
        records.append(L.clip_record(clip, meta, target, pred, grey=np.stack([x, x]), mirrored=mirrored))
    ev = fake_eval({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": 0.2})
    ev["localisation"] = {"summary": L.summarize(records), "per_clip": records}
    return ev


def test_localisation_table_side_by_side():
    right = _localised_eval(10.0)  # right ear +20 dB on both clips: right on a, wrong on b
    text = compare.localisation_table([("always_right", right), ("no_loc", fake_eval({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": 0.2}))])
    row = next(line for line in text.splitlines() if line.startswith("| always_right |"))
    # composite right (1/1), photograph wrong (0/1), overall 1/2 = 0.50 ± 0.35; mirrors flip both;
    # signed ratios +20/+20 and +20/-20: median 0; grey frames give 0 dB.
    assert row == "| always_right | 1.00 ± 0.00 | 0.00 ± 0.00 | 0.50 ± 0.35 | 1.00 ± 0.00 | 0.00 | 0.00 |"
    assert "no_loc" not in text  # evaluations without the measures are left out, not shown empty
    assert "Lateral single-source clips: 2 (1 composite, 1 photograph) of 2" in text
    assert compare.localisation_table([("no_loc", fake_eval({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": 0.2}))]) == ""


def test_cli_suffix_and_localisation(tmp_path, one_thread):
    run = tmp_path / "runs" / "m2b"
    tiny_run(run, step=10)
    (run / "log.csv").write_text("step,elapsed_s\n10,60.0\n")
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "m2b_ood.json").write_text(json.dumps(_localised_eval(10.0)))
    args = ["--runs", str(tmp_path / "runs"), "--evals", str(evals), "--methods", "m2b"]
    assert compare.main(args) == 2  # no m2b.json without the suffix
    out = tmp_path / "ood.md"
    assert compare.main(args + ["--suffix", "_ood", "--out", str(out)]) == 0
    assert "| m2b | 1.00 ± 0.00 | 0.00 ± 0.00 |" in out.read_text()


def test_curve_table_run_minus_control():
    control = fake_eval({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.1, "b": 0.2, "c": 0.3})
    with_unlabelled = fake_eval({"a": 0.9, "b": 1.7, "c": 3.0}, {"a": 0.1, "b": 0.2, "c": 0.3})
    text = compare.curve_table([compare.CurvePoint(0.25, "avc", with_unlabelled, "ctl", control),
                                compare.CurvePoint(1.0, "full", control)])
    row = next(line for line in text.splitlines() if line.startswith("| 0.25 |"))
    # per clip -0.1, -0.3, 0: mean -0.1333, SE 0.0882, relative to the control's mean 2.0: -6.7%
    assert row == ("| 0.25 | avc | 1.8667 ± 0.6119 | 0.2000 ± 0.0577 | 0.5000 ± 0.0000 | ctl | 2.0000 ± 0.5774 "
                   "| -0.1333 ± 0.0882 | -6.7% |")
    assert "| 1 | full | 2.0000 ± 0.5774 | 0.2000 ± 0.0577 | 0.5000 ± 0.0000 | - | - | - | - |" in text


def test_seed_table_seed_noise_and_seed_means():
    env = {"a": 0.1, "b": 0.2}
    ref0, ref1 = fake_eval({"a": 1.0, "b": 2.0}, env), fake_eval({"a": 1.2, "b": 2.2}, env)
    new0, new1 = fake_eval({"a": 0.8, "b": 1.6}, env), fake_eval({"a": 1.0, "b": 1.6}, env)
    text = compare.seed_table([("m2b", [("m2b", ref0), ("m2b_s1", ref1)]), ("new", [("new", new0), ("new_s1", new1)])])
    # seed 2 - seed 1: m2b +0.2 on both clips (SE 0); new +0.2, 0 (SE 0.1).
    # seed means: m2b 1.1, 2.1; new 0.9, 1.6 -> differences -0.2, -0.5: mean -0.35 ± 0.15, -0.35 / 1.6 = -21.9%
    assert "| m2b | m2b, m2b_s1 | 1.5000 / 1.7000 | 0.50 / 0.50 | +0.2000 ± 0.0000 | 0 (reference) | 0 |" in text
    assert "| new | new, new_s1 | 1.2000 / 1.3000 | 0.50 / 0.50 | +0.1000 ± 0.1000 | -0.3500 ± 0.1500 | -21.9% |" in text
    assert "2 clips" in text
    with pytest.raises(ValueError, match="at least two seeds"):
        compare.seed_table([("m2b", [("m2b", ref0)])])
    with pytest.raises(ValueError, match="reference method"):
        compare.seed_table([("m2b", [("m2b", ref0), ("m2b_s1", ref1)])], reference="other")


def test_cli_curve_controls_and_seeds(tmp_path, one_thread):
    runs, evals = tmp_path / "runs", tmp_path / "evals"
    tiny_run(runs / "m2b", step=10)
    (runs / "m2b" / "log.csv").write_text("step,elapsed_s\n10,60.0\n")
    evals.mkdir()
    env = {"a": 0.1, "b": 0.2}
    for name, stft in (("m2b", {"a": 1.0, "b": 2.0}), ("m2b_s1", {"a": 1.1, "b": 2.1}),
                       ("half", {"a": 0.9, "b": 1.9}), ("half_ctl", {"a": 1.0, "b": 2.1})):
        (evals / f"{name}.json").write_text(json.dumps(fake_eval(stft, env)))
    base = ["--runs", str(runs), "--evals", str(evals), "--methods", "m2b"]
    out = tmp_path / "t.md"
    assert compare.main(base + ["--curve", "half:0.5:half_ctl", "--seeds", "m2b:m2b_s1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 0.5 | half | 1.4000 ± 0.5000 |" in text and "| half_ctl | 1.5500 ± 0.5500 | -0.1500 ± 0.0500 |" in text
    assert "| m2b | m2b, m2b_s1 | 1.5000 / 1.6000 |" in text
    for bad in (["--curve", "half"], ["--curve", "half:x"], ["--curve", "half:0.5:"], ["--seeds", "m2b"],
                ["--seeds", "other:m2b_s1"], ["--curve", "half:0.5:missing"]):
        assert compare.main(base + bad) == 2, bad
