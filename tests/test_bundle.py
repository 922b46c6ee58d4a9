"""streambin.bundle: loading, validation and clear errors for broken bundles."""

import json
import logging

import pytest

from streambin.bundle import (Bundle, BundleError, default_bundle_path, load_bundle,
                              validate_config, write_config)
from tests.export.factory import TINY, TINY_FEATURE, TINY_VISUAL, make_tiny_bundle, tiny_config


@pytest.fixture
def bundle_dir(tmp_path):
    return make_tiny_bundle(tmp_path / "bundle")


def _edit_config(path, fn):
    cfg = json.loads((path / "config.json").read_text())
    fn(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def test_valid_bundle_loads_with_typed_fields(bundle_dir):
    b = load_bundle(bundle_dir)
    assert isinstance(b, Bundle)
    assert (b.sample_rate, b.n_fft, b.win_length, b.hop) == (16000, 512, 400, 160)
    assert b.context_frames == TINY["context_frames"]
    assert b.visual_size == TINY_VISUAL and b.feature_shape == TINY_FEATURE
    assert b.mask_kind == "side" and b.n_masks == 1
    assert b.spec_shape == (2, 257, TINY["context_frames"])
    assert b.frame_shape == (*TINY_VISUAL, 3)
    assert b.mask_shape == (1, 2, 257, TINY["context_frames"])
    assert b.graphs["audio"] == bundle_dir.resolve() / "audio.onnx"
    assert b.weights is None and b.engines == {}


def test_garbage_config_json_is_named(bundle_dir):
    (bundle_dir / "config.json").write_bytes(b"\x00\xffnot json{")
    with pytest.raises(BundleError, match=r"config\.json.*(JSON|corrupt)"):
        load_bundle(bundle_dir)


def test_missing_config_json(bundle_dir):
    (bundle_dir / "config.json").unlink()
    with pytest.raises(BundleError, match=r"config\.json is missing"):
        load_bundle(bundle_dir)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


@pytest.mark.parametrize("key", ["hop", "sample_rate", "mask_kind", "visual", "graphs", "recipe"])
def test_missing_key_is_named(bundle_dir, key):
    _edit_config(bundle_dir, lambda c: c.pop(key))
    with pytest.raises(BundleError, match=rf"config\.json.*missing required key '{key}'"):
        load_bundle(bundle_dir)


def test_missing_nested_key_is_named(bundle_dir):
    _edit_config(bundle_dir, lambda c: c["visual"].pop("feature_shape"))
    with pytest.raises(BundleError, match=r"\['visual'\].*'feature_shape'"):
        load_bundle(bundle_dir)


def test_wrong_type_is_named(bundle_dir):
    _edit_config(bundle_dir, lambda c: c.update(n_fft="512"))
    with pytest.raises(BundleError, match=r"'n_fft' must be a positive integer.*str"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("changes, pattern", [
    ({"win_length": 600}, r"win_length \(600\) must be <= n_fft \(512\)"),
    ({"hop": 401}, r"hop \(401\) must be <= win_length \(400\)"),
    ({"n_fft": 511, "win_length": 401, "hop": 160}, r"n_fft must be even"),
    ({"win_length": 401}, r"n_fft - win_length must be even"),
    ({"sample_rate": 0}, r"'sample_rate' must be a positive integer"),
    ({"context_frames": 0}, r"'context_frames' must be a positive integer"),
    ({"rms_floor": -1.0}, r"'rms_floor' must be a positive finite number"),
    ({"window": "hamming"}, r"window must be one of \['hann_periodic'\]"),
    ({"mask_kind": "mid"}, r"mask_kind must be one of \['left_right', 'side'\]"),
    ({"n_masks": 2}, r"n_masks must be 1 for mask_kind 'side'"),
    ({"format_version": 2}, r"format_version 2 is not supported"),
])
def test_config_validation_rejects(changes, pattern):
    cfg = tiny_config(**changes)
    with pytest.raises(BundleError, match=pattern):
        validate_config(cfg)


@pytest.mark.parametrize("key, value, pattern", [
    ("height", 0, r"'height' must be a positive integer"),
    ("std", [0.2, 0.0, 0.2], r"'std' must hold 3 positive numbers"),
    ("input_format", "NCHW_float", r"input_format must be 'NHWC_uint8_RGB'"),
    ("feature_shape", [], r"feature_shape must be a non-empty list"),
])
def test_visual_validation_rejects(key, value, pattern):
    cfg = tiny_config()
    cfg["visual"][key] = value
    with pytest.raises(BundleError, match=pattern):
        validate_config(cfg)


def test_missing_graph_file_is_named(bundle_dir):
    (bundle_dir / "visual.onnx").unlink()
    with pytest.raises(BundleError, match=r"visual\.onnx: visual graph file is missing"):
        load_bundle(bundle_dir)


def test_truncated_graph_is_reported_corrupt(bundle_dir):
    data = (bundle_dir / "audio.onnx").read_bytes()
    (bundle_dir / "audio.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"audio\.onnx: audio graph is corrupt"):
        load_bundle(bundle_dir)


def test_empty_graph_is_reported(bundle_dir):
    (bundle_dir / "audio.onnx").write_bytes(b"")
    with pytest.raises(BundleError, match=r"audio\.onnx: audio graph file is empty"):
        load_bundle(bundle_dir)


def test_graph_shapes_must_match_config(bundle_dir):
    _edit_config(bundle_dir, lambda c: c["visual"].update(feature_shape=[5]))
    with pytest.raises(BundleError, match=r"tensor 'feature' has shape \[batch, 4\].*\[batch, 5\]"):
        load_bundle(bundle_dir)


def test_graphs_swapped_are_detected(bundle_dir):
    v, a = (bundle_dir / "visual.onnx").read_bytes(), (bundle_dir / "audio.onnx").read_bytes()
    (bundle_dir / "visual.onnx").write_bytes(a)
    (bundle_dir / "audio.onnx").write_bytes(v)
    with pytest.raises(BundleError, match=r"visual graph has inputs \['spec', 'feature'\]"):
        load_bundle(bundle_dir)


def test_graph_path_must_stay_inside_bundle(bundle_dir):
    _edit_config(bundle_dir, lambda c: c["graphs"].update(audio="../audio.onnx"))
    with pytest.raises(BundleError, match=r"'audio' must be a path inside the bundle"):
        load_bundle(bundle_dir)


def test_engine_with_missing_plan_is_ignored(bundle_dir, caplog):
    key = "gpu_sm90_trt10.0.0"
    _edit_config(bundle_dir, lambda c: c["engines"].update({key: {
        "visual": f"engines/{key}/visual.plan", "audio": f"engines/{key}/audio.plan",
        "gpu": "GPU", "compute_capability": "9.0", "tensorrt": "10.0.0"}}))
    with caplog.at_level(logging.WARNING, logger="streambin"):
        b = load_bundle(bundle_dir)
    assert b.engines == {}
    assert key in caplog.text and "missing" in caplog.text
    # with the plans present the engine is listed, with absolute paths
    (bundle_dir / "engines" / key).mkdir(parents=True)
    for name in ("visual", "audio"):
        (bundle_dir / "engines" / key / f"{name}.plan").write_bytes(b"plan")
    b = load_bundle(bundle_dir)
    assert b.engines[key]["audio"] == bundle_dir.resolve() / "engines" / key / "audio.plan"


def test_write_config_validates_before_writing(bundle_dir):
    before = (bundle_dir / "config.json").read_text()
    with pytest.raises(BundleError, match="hop"):
        write_config(bundle_dir, tiny_config(hop=1000))
    assert (bundle_dir / "config.json").read_text() == before
    write_config(bundle_dir, tiny_config(recipe="other"))
    assert load_bundle(bundle_dir).recipe == "other"


def test_default_bundle_path():
    try:
        path = default_bundle_path()
    except BundleError as exc:
        assert "streambin/models/default" in str(exc).replace("\\", "/")
        assert "export.to_onnx" in str(exc)
    else:  # a default model has been shipped: it must load
        assert load_bundle(path).path == path
