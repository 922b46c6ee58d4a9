"""benchmarks/localiser_cost.py: exports the object localiser faithfully and times it beside the
shipped visual graph with the engine's session options."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from benchmarks import localiser_cost  # noqa: E402


def _localiser_checkpoint(path, width: int = 8) -> str:
    """A randomly initialised localiser saved as ``object_localiser.py train`` saves one."""
    from object_localiser import ObjectLocaliser  # beside the experiments (the benchmark puts them on the path)

    torch.manual_seed(0)
    net = ObjectLocaliser(width)
    torch.save({"net": net.state_dict(), "width": width, "step": 0}, path)
    return str(path)


def test_times_both_graphs_and_checks_the_export(tmp_path, capsys):
    out = tmp_path / "cost.json"
    ck = _localiser_checkpoint(tmp_path / "localiser.pt")
    assert localiser_cost.main(["--localiser", ck, "--repeats", "2", "--calls", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1
    assert result["localiser_onnx_max_abs_err"] < 1e-3          # ONNX Runtime agrees with torch
    assert result["input_shapes"] == {"shipped visual graph": [2, 64, 128, 3], "object localiser": [2, 96, 192, 3]}
    for name in ("shipped visual graph", "object localiser"):
        assert len(result["per_turn_ms"][name]) == 2 and result["median_ms_per_call"][name] > 0
    ratio = result["median_ms_per_call"]["object localiser"] / result["median_ms_per_call"]["shipped visual graph"]
    assert result["ratio_localiser_to_visual"] == pytest.approx(ratio)
    assert "localiser / shipped visual graph" in capsys.readouterr().out


def test_rejects_a_folder_without_a_visual_graph(tmp_path):
    ck = _localiser_checkpoint(tmp_path / "localiser.pt")
    with pytest.raises(SystemExit):
        localiser_cost.main(["--localiser", ck, "--bundle", str(tmp_path)])
