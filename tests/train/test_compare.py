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
                                curve=[(0.5, "half", better), (1.0, "new", better)])
    assert "| Mono-Mono (from m2b) | 2.5000 ± 0.5000 |" in text
    assert "| new | 1.2000 ± 0.4000 |" in text and "10 min" in text and "12.36 M / 12.50 M" in text
    assert "| new | -0.3000 ± 0.1000 | -20.0% | +0.0000 ± 0.0000 | +0.0% | 1.83x |" in text
    assert text.index("| 0.5 | half |") < text.index("| 1 | new |")
    with pytest.raises(ValueError, match="other clips"):
        compare.build_tables([("m2b", ref, info), ("odd", fake_eval({"a": 1.0, "q": 1.0}, {"a": 0.1, "q": 0.1}), info)])


def test_run_info_and_cli(tmp_path, one_thread):
    cfg = load_config(None, ["model.ngf=4", "model.visual_size=[32, 64]"])
    recipe = get_recipe("mono2binaural")(cfg)
    recipe.build()
    run = tmp_path / "runs" / "m2b"
    run.mkdir(parents=True)
    save_checkpoint(str(run / "best.pt"), config=cfg, model=recipe.step_module, epoch=0, step=200, best_val=1.0)
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
