"""export.parity.compare_graphs: the check shared by export.to_onnx and export.to_trt, on small
numpy stand-ins for the graphs (no torch, ONNX Runtime or TensorRT needed)."""

import numpy as np
import pytest

from export.parity import Graphs, compare_graphs

FIELDS = {"sample_rate": 16000, "n_fft": 64, "win_length": 48, "hop": 16, "context_frames": 8,
          "input_rms": 0.1, "rms_floor": 1e-4, "visual_size": (8, 16)}
TOL = 1e-4


class CheckFailed(RuntimeError):
    pass


def _visual(frames):
    """(B, 8, 16, 3) uint8 -> (B, 4) float32: mean intensity per image quarter, 0..255."""
    b = frames.shape[0]
    return frames.reshape(b, 2, 4, 2, 8, 3).mean(axis=(2, 4, 5)).reshape(b, 4).astype(np.float32)


def _audio(spec, feature):
    """(B, 2, 33, 8), (B, 4) -> (B, 1, 2, 33, 8) float32 in [-1, 1]."""
    return np.tanh(spec + feature.mean(axis=1)[:, None, None, None] / 255.0)[:, None] \
        .astype(np.float32)


def _reference():
    return Graphs("Reference", _visual, _audio)


def _shifted_audio(delta):
    return Graphs("Candidate", _visual, lambda spec, feature: _audio(spec, feature) + delta,
                  label="{graph}.onnx")


def test_identical_graphs_pass_with_zero_error():
    errs = compare_graphs(_reference(), Graphs("Candidate", _visual, _audio), FIELDS, (1, 3), TOL)
    assert errs == {"visual": 0.0, "audio": 0.0}


def test_audio_over_tolerance_raises_naming_the_graph():
    with pytest.raises(CheckFailed) as info:
        compare_graphs(_reference(), _shifted_audio(np.float32(10 * TOL)), FIELDS, (1, 3), TOL,
                       fp16=True, error=CheckFailed)
    msg = str(info.value)
    assert msg.startswith("audio.onnx differs from Reference by 0.001 (max abs, batch ")
    assert "over the tolerance 0.0001 (fp16)" in msg


def test_audio_tolerance_scales_with_audio_scale():
    shifted = _shifted_audio(np.float32(1.5 * TOL))
    errs = compare_graphs(_reference(), shifted, FIELDS, (1,), TOL, audio_scale=2.0)
    assert errs["visual"] == 0.0 and errs["audio"] == pytest.approx(1.5 * TOL, rel=1e-2)
    with pytest.raises(RuntimeError, match=r"audio\.onnx differs .* \(fp32\)"):
        compare_graphs(_reference(), shifted, FIELDS, (1,), TOL, audio_scale=1.0)


def test_non_finite_and_wrong_dtype_outputs_are_refused():
    nan = Graphs("Candidate", _visual, lambda spec, feature: _audio(spec, feature) * np.nan)
    with pytest.raises(CheckFailed,
                       match="non-finite Candidate output on random inputs at batch 1"):
        compare_graphs(_reference(), nan, FIELDS, (1,), TOL, error=CheckFailed)
    wide = Graphs("Candidate", lambda frames: _visual(frames).astype(np.float64), _audio)
    with pytest.raises(CheckFailed, match="Candidate outputs must be float32, got feature float64"):
        compare_graphs(_reference(), wide, FIELDS, (1,), TOL, error=CheckFailed)
