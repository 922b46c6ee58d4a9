"""benchmarks/plot.py draws the stored latency result and degenerate ones without failing."""

import json
import os

import pytest

pytest.importorskip("matplotlib")
from benchmarks.plot import plot_latency  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(ROOT, "benchmarks", "results", "latency-cpu-2core.json")


def test_plot_of_the_stored_result(tmp_path):
    with open(RESULT) as f:
        result = json.load(f)
    png = plot_latency(result, str(tmp_path / "latency.png"))
    with open(png, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50000


def test_plot_with_every_row_skipped(tmp_path):
    rows = [{"model": "default", "backend": "tensorrt", "device": "cuda", "kind": "stream", "skipped": "no GPU"}]
    png = plot_latency({"machine": {"cpu": "x", "cores": 1}, "rows": rows}, str(tmp_path / "empty.png"))
    assert os.path.getsize(png) > 1000
    with pytest.raises(ValueError, match="rows"):
        plot_latency({"machine": {}}, str(tmp_path / "bad.png"))
