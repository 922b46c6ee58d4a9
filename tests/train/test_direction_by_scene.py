"""scripts/experiments/direction_by_scene.py: the output's and the truth's direction by scene."""
import json

import numpy as np
import pytest
import soundfile as sf

from .experiment_scripts import load_experiment


@pytest.fixture(scope="module")
def script():
    return load_experiment("direction_by_scene")


def _clip(root, name, silent, room):
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "binaural_audios").mkdir(parents=True, exist_ok=True)
    sources = [{"silent": False}] + [{"silent": True}] * silent
    meta = {"clip": name, "sources": sources, "room": {"size": [4, 5, 3]} if room else None,
            "head_info": {"kind": "measured"}}
    (root / "meta" / f"{name}.json").write_text(json.dumps(meta))
    t = np.arange(1600) / 16000
    sf.write(str(root / "binaural_audios" / f"{name}.wav"), np.stack([np.sin(2 * np.pi * 300 * t)] * 2, 1), 16000)


def test_rates_by_silent_objects_beside_the_truth(script, tmp_path, capsys):
    root = tmp_path / "data"
    # (clip, silent objects, azimuth, true and predicted level differences)
    clips = [("a", 0, 20.0, 3.0, 2.0), ("b", 0, -20.0, -3.0, -1.0), ("c", 1, 30.0, 2.0, -1.0),
             ("d", 2, -30.0, 0.2, -2.0), ("e", 1, 25.0, 2.0, -1.0)]
    per_clip = []
    for name, silent, az, tgt, pred in clips:
        _clip(root, name, silent, room=silent > 0)
        per_clip.append({"clip": name, "qualifies": True, "scene_kind": "composite", "azimuth_deg": az,
                         "ld_target_db": tgt, "ld_pred_db": pred})
    per_clip.append({"clip": "z", "qualifies": False, "scene_kind": "composite", "azimuth_deg": 3.0,
                     "ld_target_db": 0.1, "ld_pred_db": -0.1})  # not lateral: not counted, no meta read
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"localisation": {"per_clip": per_clip}}))
    out = tmp_path / "table.json"
    # the same evaluation twice under one name: each clip counted once
    assert script.main(["--set", "s", str(evaluation), str(root), "--set", "s", str(evaluation), str(root),
                        "--out", str(out)]) == 0
    table = json.loads(out.read_text())["s"]
    assert table["all"]["output"]["n"] == 5 and table["all"]["output"]["rate"] == pytest.approx(3 / 5)
    with_, without = table["silent objects"]["composite with"], table["silent objects"]["composite without"]
    assert with_["output"]["n"] == 3
    assert (with_["output"]["rate"], with_["truth"]["rate"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert (without["output"]["rate"], without["truth"]["rate"]) == (1.0, 1.0)
    assert table["room"]["composite room"]["output"]["n"] == 3
    assert "composite with 0.333" in capsys.readouterr().out


def test_no_lateral_clip_is_an_error(script, tmp_path):
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"localisation": {"per_clip": []}}))
    with pytest.raises(SystemExit):
        script.main(["--set", "s", str(evaluation), str(tmp_path)])
