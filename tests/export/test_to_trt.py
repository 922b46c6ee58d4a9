"""export.to_trt: the clear message where TensorRT/GPU is missing; engine keys and matching.

The build/run path itself needs TensorRT and a GPU and is not exercised here.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from streambin.backends import tensorrt_backend as trtb
from streambin.bundle import load_bundle, read_config, write_config
from tests.export.factory import make_tiny_bundle

REPO = Path(__file__).resolve().parents[2]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_missing_tensorrt_gives_one_clear_sentence(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b")
    r = subprocess.run([sys.executable, "-m", "export.to_trt", "--bundle", str(bundle)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("export.to_trt: TensorRT is not installed: pip install tensorrt")
    assert "GPU" in lines[0] and lines[0].endswith(".")
    assert not (bundle / "engines").exists()  # nothing written


def test_engine_key_names_gpu_capability_and_version():
    assert trtb.engine_key("NVIDIA H100 80GB HBM3", 9, 0, "10.13.0.35") == \
        "nvidia-h100-80gb-hbm3_sm90_trt10.13.0.35"
    assert trtb.engine_key("  ", 8, 6, "11.4.0") == "gpu_sm86_trt11.4.0"


def test_only_the_matching_engine_is_used(tmp_path, monkeypatch):
    """A plan for another GPU/TensorRT is never chosen (GPU detection mocked: no GPU here)."""
    path = make_tiny_bundle(tmp_path / "b")
    other = "nvidia-a100_sm80_trt10.0.0"
    cfg = read_config(path)
    (path / "engines" / other).mkdir(parents=True)
    for n in ("visual", "audio"):
        (path / "engines" / other / f"{n}.plan").write_bytes(b"plan")
    cfg["engines"][other] = {"visual": f"engines/{other}/visual.plan",
                             "audio": f"engines/{other}/audio.plan", "gpu": "NVIDIA A100",
                             "compute_capability": "8.0", "tensorrt": "10.0.0", "max_batch": 4}
    write_config(path, cfg)
    bundle = load_bundle(path)
    monkeypatch.setattr(trtb, "current_engine_key", lambda device_id=0: "nvidia-h100_sm90_trt10.13.0")
    assert trtb.matching_engine_key(bundle) is None
    monkeypatch.setattr(trtb, "current_engine_key", lambda device_id=0: other)
    assert trtb.matching_engine_key(bundle) == other


def test_bad_arguments_are_rejected(tmp_path):
    from export.to_trt import build_bundle_engines

    with pytest.raises(ValueError, match="--max-batch must be a positive int"):
        build_bundle_engines(tmp_path, max_batch=0)
    with pytest.raises(ValueError, match="--workspace-mb"):
        build_bundle_engines(tmp_path, workspace_mb=1)


def test_a_mirror_averaged_bundle_needs_batch_two(tmp_path):
    """A bundle that asks the engine to mirror-average runs each network at batch 2: a profile
    that stops at 1 is refused before anything is built."""
    from export.to_trt import build_bundle_engines

    bundle = make_tiny_bundle(tmp_path / "b")
    cfg = read_config(bundle)
    cfg["inference"] = {"mirror_average": True}
    write_config(bundle, cfg)
    with pytest.raises(ValueError, match="--max-batch must be >= 2 .* mirror-average"):
        build_bundle_engines(bundle, max_batch=1)
    assert not (bundle / "engines").exists()
