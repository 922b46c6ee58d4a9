"""Paired per-clip differences between two evaluation JSONs (streambin.train.paired)."""

import json

import pytest

from streambin.train import paired


def _evaluation(values):
    """An evaluation result with the model's stft and env per clip: ``{clip: (stft, env)}``."""
    return {"metrics": ["stft", "env"],
            "per_clip": [{"clip": c, "metrics": {"model": {"stft": s, "env": e}}} for c, (s, e) in values.items()]}


def test_differences_are_taken_on_the_shared_clips(tmp_path, capsys):
    cand = _evaluation({"a": (1.0, 0.5), "b": (2.0, 0.5), "c": (3.0, 0.4), "only_here": (9.0, 9.0)})
    ref = _evaluation({"c": (2.0, 0.5), "a": (2.0, 0.5), "b": (2.0, 0.5)})
    rows = {r["metric"]: r for r in paired.paired_table(cand, ref)}
    # stft differences -1, 0, +1: mean 0, s.e. 1/sqrt(3); env: 0, 0, -0.1.
    assert rows["stft"]["mean"] == pytest.approx(0.0) and rows["stft"]["clips"] == 3
    assert rows["stft"]["sem"] == pytest.approx(1 / 3 ** 0.5)
    assert rows["env"]["mean"] == pytest.approx(-0.1 / 3)
    assert rows["env"]["relative"] == pytest.approx(-0.1 / 3 / 0.5)

    paths = []
    for name, ev in (("cand", cand), ("ref", ref)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(ev))
    assert paired.main([str(p) for p in paths] + ["--metrics", "env"]) == 0
    out = capsys.readouterr().out
    assert "| env | -0.0333 ± 0.0333 | -6.7 % | 3 |" in out and "| stft" not in out


def test_bad_inputs_are_refused_with_a_message(tmp_path, capsys):
    ref = _evaluation({"a": (1.0, 0.5), "b": (2.0, 0.5)})
    with pytest.raises(ValueError, match=r"metrics \['snr'\] are not in both"):
        paired.paired_table(ref, ref, ["snr"])
    with pytest.raises(ValueError, match="fewer than 2 shared clips"):
        paired.paired_table(_evaluation({"x": (1.0, 1.0), "y": (1.0, 1.0)}), ref)
    bad = tmp_path / "bad.json"
    bad.write_text('{"summary": {}}')
    assert paired.main([str(bad), str(bad)]) == 2
    assert "not an evaluation result" in capsys.readouterr().err


def test_halves_of_a_split_pool_into_one_comparison(tmp_path, capsys):
    """--also adds the clips of another pair of evaluations; a clip twice on one side is refused."""
    first_c, first_r = _evaluation({"a": (1.0, 0.5), "b": (2.0, 0.5)}), _evaluation({"a": (2.0, 0.5), "b": (2.0, 0.5)})
    last_c, last_r = _evaluation({"c": (3.0, 0.4)}), _evaluation({"c": (2.0, 0.5)})
    paths = {}
    for name, ev in (("fc", first_c), ("fr", first_r), ("lc", last_c), ("lr", last_r)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(ev))
    assert paired.main([str(paths["fc"]), str(paths["fr"]), "--also", str(paths["lc"]), str(paths["lr"]),
                        "--metrics", "stft"]) == 0
    # the three clips' stft differences -1, 0, +1, as if one evaluation had scored them all
    assert "| stft | +0.0000 ± 0.5774 | +0.0 % | 3 |" in capsys.readouterr().out
    assert paired.main([str(paths["fc"]), str(paths["fr"]), "--also", str(paths["fc"]), str(paths["lr"])]) == 2
    assert "is in both" in capsys.readouterr().err
