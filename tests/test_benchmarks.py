"""benchmarks/: the latency harness runs its code paths and writes rows of the documented schema.

Tiny random-weight models and a fraction of a second of audio: this checks the harness
(timing bookkeeping, row schema, subprocess plumbing, JSON/PNG output), not speed.
"""

import json
from pathlib import Path
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks import engine_bench, latency, reference_bench  # noqa: E402
from benchmarks.engine_bench import ROW_KEYS, STAGES  # noqa: E402


def check_measured_row(row, chunk_samples):
    for key in ROW_KEYS:
        assert key in row, key
    assert row["chunk_samples"] == chunk_samples
    assert row["sample_rate"] == 48000
    assert 0 <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["rtf"] > 0 and row["rtf_total"] >= row["rtf"]
    assert row["chunk_ms"] == pytest.approx(1e3 * chunk_samples / 48000)
    assert row["end_to_end_latency_ms"] == pytest.approx(row["algorithmic_latency_ms"] + row["chunk_ms"])
    assert row["peak_mem_mb"] > 10
    assert set(row["stage_ms_per_s"]) == set(STAGES)
    assert all(v >= 0 for v in row["stage_ms_per_s"].values())
    assert row["stage_ms_per_s"]["audio_net"] > 0
    b = row["box"]
    assert b["whislo"] <= b["q1"] <= b["med"] <= b["q3"] <= b["whishi"] <= b["fliers"][0]
    assert row["reference"] is False
    assert row["underrun_samples"] == 0


@pytest.mark.parametrize("backend,visual", [("onnxruntime", True), ("torch", False)])
def test_measure_stream_row(tiny_unet, backend, visual):
    seconds, chunk = 0.3, 256
    row = engine_bench.measure_stream(tiny_unet[0], backend, "cpu", chunk, seconds, threaded_visual=visual,
                                      warmup_s=0.1, model_label="tiny")
    check_measured_row(row, chunk)
    assert row["backend"] == backend and row["device"] == "cpu" and row["model"] == "tiny"
    n = round(seconds * 48000)
    assert row["n_chunks"] == math.ceil(n / chunk)
    # per-chunk times add up to the real-time factor
    assert row["rtf"] * 1e3 * row["seconds"] == pytest.approx(row["mean_ms"] * row["n_chunks"], rel=1e-6)
    # 30 fps frames over 0.3 s: frames at 0, 1/30, ... 0.2667 s -> 9 frames handed over
    assert row["visual_runs"] + row["frames_dropped"] + row["frames_skipped"] == 9
    assert row["visual_fps"] == 10.0 and row["frames_skipped"] >= 5   # the default cap: at most 3 runs + 1 slack
    assert row["visual"] == ("threaded" if visual else "sync")


def test_measure_offline_row(tiny_unet):
    row = engine_bench.measure_offline(tiny_unet[0], "onnxruntime", "cpu", 0.5, model_label="tiny", fps=10)
    assert row["kind"] == "offline" and row["chunk_samples"] == 4800 and row["n_chunks"] == 5
    assert row["visual_runs"] == 5
    assert row["end_to_end_latency_ms"] is None and row["rtf"] > 0


def test_papers_reference_row(tiny_unet):
    row = reference_bench.measure_papers_offline(tiny_unet[1], "cpu", 1.0, model_label="tiny", batch_size=4)
    for key in ROW_KEYS:
        assert key in row, key
    assert row["reference"] is True and row["backend"] == "torch"
    assert row["p50_ms"] is None and row["chunk_samples"] is None
    from streambin.train.checkpoint import load_generator

    cfg = load_generator(str(tiny_unet[1]))[1].audio
    assert (cfg.context_frames, cfg.hop, cfg.sample_rate) == (64, 160, 16000)
    # 63 * 160 samples = 630 ms window, + the 100 ms hop
    assert row["algorithmic_latency_ms"] == pytest.approx(730.0)
    assert row["windows"] == 5  # starts 0, 0.1, 0.2, 0.3 s, plus one aligned to the 1 s end
    assert row["rtf"] > 0 and row["ms_per_audio_s"] == pytest.approx(1e3 * row["rtf"])


def test_speech_like_and_camera():
    x = engine_bench.speech_like(1.0, 48000, seed=3)
    assert x.shape == (48000,) and x.dtype == np.float32
    assert 0.01 < float(np.sqrt(np.mean(x ** 2))) < 0.2 and np.abs(x).max() <= 1
    np.testing.assert_array_equal(x, engine_bench.speech_like(1.0, 48000, seed=3))
    cam = engine_bench.MovingPatchCamera(48, 64, fps=30)
    a, b = cam.frame(0), cam.frame(30)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)  # the patch moved
    with pytest.raises(ValueError, match="seconds"):
        engine_bench.speech_like(0)


def test_goal_lines_pass_and_fail():
    base = dict(kind="stream", model="default", backend="onnxruntime", device="cpu")
    good = dict(base, chunk_samples=512, chunk_ms=10.67, rtf_total=0.3, algorithmic_latency_ms=40.0,
                end_to_end_latency_ms=50.67, p99_ms=15.0, block_frames=2, block_ms_p99=9.0, block_budget_ms=20.0)
    bad = dict(base, chunk_samples=128, chunk_ms=2.67, rtf_total=0.7, algorithmic_latency_ms=80.0,
               end_to_end_latency_ms=82.67, p99_ms=1.0, block_frames=1, block_ms_p99=11.0, block_budget_ms=10.0)
    lines = latency.goal_lines([good, bad], {"cores": 2})
    assert sum(line.startswith("PASS") for line in lines) == 3
    assert sum(line.startswith("FAIL") for line in lines) == 3
    # per-call p99 vs chunk duration is reported, not judged: 15 ms call > 10.67 ms chunk
    info = [line for line in lines if line.startswith("info")]
    assert len(info) == 2 and ">= chunk duration 10.670" in info[1] and "< chunk duration 2.670" in info[0]
    assert any("NOT MEASURABLE" in line for line in lines)  # no GPU rows
    gpu = dict(kind="stream", model="paper", backend="tensorrt", device="cuda", chunk_samples=256, block_ms_p99=1.5)
    assert any(line.startswith("PASS") and "tensorrt" in line for line in latency.goal_lines([gpu], {"gpu": "X"}))


def test_full_run_writes_json_and_png(tiny_unet, tmp_path, capsys):
    """latency.main end to end on the tiny bundle: every row in its own process."""
    results = tmp_path / "results"
    rc = latency.main(["--model", str(tiny_unet[0]), "--backend", "onnxruntime-cpu,torch-cuda",
                       "--seconds", "0.3", "--chunks", "512", "--hops", "20",
                       "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    dsp = json.loads((results / "dsp.json").read_text())
    assert {r["impl"] for r in dsp["rows"]} == {"streambin._C", "torch", "numpy"}
    assert {"machine", "speedup_vs_torch", "max_abs_diff_between_impls"} <= set(dsp)
    files = list(results.glob("latency-*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    assert set(result) >= {"machine", "command", "rows"}
    rows = result["rows"]
    assert not [r for r in rows if r.get("error")], rows
    kinds = {(r["kind"], r["backend"], r["device"], bool(r.get("skipped"))) for r in rows}
    assert ("stream", "onnxruntime", "cpu", False) in kinds
    assert ("offline", "onnxruntime", "cpu", False) in kinds
    assert ("papers", "torch", "cpu", False) in kinds
    stream = next(r for r in rows if r["kind"] == "stream" and r["backend"] == "onnxruntime")
    check_measured_row(stream, 512)
    papers = next(r for r in rows if r["kind"] == "papers" and not r.get("skipped"))
    assert papers["reference"] is True
    import torch

    cuda = [r for r in rows if r["backend"] == "torch" and r["device"] == "cuda" and r["kind"] == "stream"]
    if not torch.cuda.is_available():  # no GPU: a row that says why, not a silent gap
        assert len(cuda) == 1 and "CUDA" in cuda[0]["skipped"]
    png = files[0].with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "p99" in out and "NOT MEASURABLE" in out


def test_dsp_only_keeps_the_first_version(tmp_path):
    rc = latency.main(["--dsp-only", "--hops", "20", "--results-dir", str(tmp_path)])
    assert rc == 0
    assert [p.name for p in tmp_path.iterdir()] == ["dsp.json"]


def test_engine_settings_rows_take_their_own_block_and_mirror_setting(tmp_path, capsys):
    """engine_settings.py: each configuration's Spatializer keywords reach its row, a row's own
    block replaces the run's, and the ratios are to the first configuration given."""
    from benchmarks import engine_settings

    assert engine_settings.main(["--configs", "no-spin+10fps,mirror-average+block3", "--chunks", "480",
                                 "--seconds", "0.3", "--results-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("engine-settings-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert [r["config"] for r in rows] == ["no-spin+10fps", "mirror-average+block3"]
    plain, mirror = rows
    assert plain["block_frames"] == 2 and plain["options"] == {"mirror_average": False}
    assert mirror["block_frames"] == 3 and mirror["options"] == {"mirror_average": True}
    assert mirror["algorithmic_latency_ms"] == pytest.approx(plain["algorithmic_latency_ms"] + 10)
    assert plain["ratio_to_first"]["rtf_total"] == 1.0 and mirror["ratio_to_first"]["rtf_total"] > 0
    with pytest.raises(SystemExit):
        engine_settings.main(["--configs", "no-such-setting"])
    assert "unknown: no-such-setting" in capsys.readouterr().err


def test_engine_settings_compares_models_side_by_side(tmp_path, tiny_unet):
    """--models runs every configuration for each model; ratios are to the first model's first row."""
    from benchmarks import engine_settings

    bundle, _ = tiny_unet
    assert engine_settings.main(["--configs", "no-spin+10fps", "--chunks", "480", "--seconds", "0.3",
                                 "--models", f"default,{bundle}", "--results-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("engine-settings-*.json")
    result = json.loads(path.read_text())
    rows = result["rows"]
    assert [r["model"] for r in rows] == ["default", Path(bundle).name]
    assert [m["path"] for m in result["models"]][1] == str(Path(bundle).resolve())
    assert rows[0]["ratio_to_first"]["rtf_total"] == 1.0
    assert rows[1]["ratio_to_first"]["rtf_total"] == pytest.approx(rows[1]["rtf_total"] / rows[0]["rtf_total"])
