"""Tests of the sliding-window evaluation protocol with small stand-in generators."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from streambin.train import metrics as M
from streambin.train import evaluate as E

SR = 16000
AUDIO = SimpleNamespace(sample_rate=SR, n_fft=512, win_length=400, hop=160, context_frames=64,
                        input_rms=0.1, rms_floor=1e-4)
CONFIG = SimpleNamespace(audio=AUDIO, model=SimpleNamespace(visual_size=(8, 16)))
CROP = 10080


class LeftRightFeatureModel(nn.Module):
    """Stand-in generator with the contract of docs/architecture.md.

    visual: feature = (mean of the left half of the red channel - mean of the right half) / 255,
    shape (B, 1). audio: one "side" mask, real part = the feature (imag 0), same for every bin.
    So L = (1 + c) m, R = (1 - c) m exactly, c from the frame the window used.
    Records what it was given.
    """

    mask_kind = "side"
    feature_shape = (1,)

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # so the device can be found
        self.visual_inputs, self.audio_inputs = [], []

    def visual(self, frames):
        assert frames.dtype == torch.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
        self.visual_inputs.append(frames.clone())
        red = frames[..., 0].float()
        w = red.shape[2]
        return ((red[:, :, : w // 2].mean((1, 2)) - red[:, :, w // 2:].mean((1, 2))) / 255)[:, None]

    def audio(self, spec, feature):
        self.audio_inputs.append(spec.clone())
        B, _, F, T = spec.shape
        mask = torch.zeros(B, 1, 2, F, T)
        mask[:, 0, 0] = feature[:, 0, None, None]
        return mask


class ConstantMaskModel(nn.Module):
    """Stand-in with fixed complex masks (no parameters at all)."""

    def __init__(self, kind, values):
        super().__init__()
        self.mask_kind = kind
        self.values = values  # one complex number per mask

    def visual(self, frames):
        return torch.zeros(frames.shape[0], 1)

    def audio(self, spec, feature):
        B, _, F, T = spec.shape
        mask = torch.zeros(B, len(self.values), 2, F, T)
        for k, v in enumerate(self.values):
            mask[:, k, 0] = v.real
            mask[:, k, 1] = v.imag
        return mask


def _mono(n, seed=0, amp=0.3):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    return amp * x / np.abs(x).max()


def _frames(values_left, values_right=None, h=8, w=16):
    """(n_frames, h, w, 3) uint8 with the left/right halves at the given levels."""
    n = len(values_left)
    values_right = values_right if values_right is not None else [0] * n
    f = np.zeros((n, h, w, 3), dtype=np.uint8)
    for i, (a, b) in enumerate(zip(values_left, values_right)):
        f[i, :, : w // 2] = a
        f[i, :, w // 2:] = b
    return f


# ----------------------------------------------------------------------------- framing


def test_window_starts_hand_cases():
    assert E.window_starts(13780, CROP, 1600) == [0, 1600, 3200, 3700]
    assert E.window_starts(CROP + 3200, CROP, 1600) == [0, 1600, 3200]  # end already aligned
    assert E.window_starts(CROP, CROP, 1600) == [0]
    with pytest.raises(ValueError, match="shorter"):
        E.window_starts(CROP - 1, CROP, 1600)


def test_frame_index_at():
    # frame i covers [i / fps, (i + 1) / fps), as the training data picks its frame
    assert E.frame_index_at(0.315, 10, 9) == 3
    assert E.frame_index_at(0.399, 10, 9) == 3
    assert E.frame_index_at(0.25, 4, 9) == 1
    assert E.frame_index_at(-1.0, 10, 9) == 0
    assert E.frame_index_at(5.0, 10, 9) == 8


# ----------------------------------------------------------------------------- predict_clip


@pytest.mark.parametrize("kind,values,gains", [
    ("side", [0.5 + 0j], (1.5, 0.5)),
    ("left_right", [0.8 + 0j, 0.2 + 0j], (0.8, 0.2)),
    ("side", [-0.25 + 0j], (0.75, 1.25)),
])
def test_constant_masks_give_exact_gains(kind, values, gains):
    m = _mono(13780, seed=1)
    out = E.predict_clip(ConstantMaskModel(kind, values), m, _frames([0]), 10.0, AUDIO)
    assert out.shape == (2, 13780) and out.dtype == np.float32
    # masks act on the RAW spectrogram: output scales with the input, whole clip incl. edges
    np.testing.assert_allclose(out[0], gains[0] * m, atol=1e-5)
    np.testing.assert_allclose(out[1], gains[1] * m, atol=1e-5)


def test_imaginary_side_mask_is_a_quarter_period_shift():
    # multiplying the spectrum of a sinusoid by 1j = +90 degrees (checks real/imag order and
    # that the mask is not conjugated); one window only, and away from its edges, where the
    # padded analysis frames make the shift inexact
    n = CROP
    t = np.arange(n) / SR
    freq = 31.25 * 16  # 500 Hz = bin 16 of 512 at 16 kHz
    m = (0.2 * np.cos(2 * np.pi * freq * t)).astype(np.float32)
    out = E.predict_clip(ConstantMaskModel("side", [1j]), m, _frames([0]), 10.0, AUDIO)
    shifted = 0.2 * np.cos(2 * np.pi * freq * t + np.pi / 2)
    interior = slice(600, n - 600)
    np.testing.assert_allclose(out[0, interior], m[interior] + shifted[interior], atol=1e-4)
    np.testing.assert_allclose(out[1, interior], m[interior] - shifted[interior], atol=1e-4)


def test_blending_averages_windows_with_their_own_frames():
    n = 13780  # windows start at 0, 1600, 3200 and 3700 (end-aligned)
    m = _mono(n, seed=2)
    levels = [20 * i for i in range(9)]  # frame i: left half 20 i, right half 0, at 10 fps
    model = LeftRightFeatureModel()
    out = E.predict_clip(model, m, _frames(levels), 10.0, AUDIO, window_hop_s=0.1)
    # window centres 0.315, 0.415, 0.515, 0.546875 s -> frames 3, 4, 5, 5
    starts, frame_of = [0, 1600, 3200, 3700], [3, 4, 5, 5]
    total, count = np.zeros(n), np.zeros(n)
    for s, f in zip(starts, frame_of):
        total[s:s + CROP] += levels[f] / 255
        count[s:s + CROP] += 1
    c = total / count
    np.testing.assert_allclose(out[0], (1 + c) * m, atol=1e-5)
    np.testing.assert_allclose(out[1], (1 - c) * m, atol=1e-5)
    # each distinct frame went through the visual net once
    seen = torch.cat(model.visual_inputs)
    assert sorted(int(v) for v in seen[:, 0, 0, 0]) == [60, 80, 100]


def test_network_input_is_rms_normalised_per_window():
    n = 12000
    m = _mono(n, seed=3)
    m[:6000] *= 0.05  # windows with very different levels
    a, b = LeftRightFeatureModel(), LeftRightFeatureModel()
    E.predict_clip(a, m, _frames([0]), 10.0, AUDIO)
    E.predict_clip(b, 7.0 * m, _frames([0]), 10.0, AUDIO)
    spec_a, spec_b = torch.cat(a.audio_inputs), torch.cat(b.audio_inputs)
    assert spec_a.shape == (3, 2, 257, 64)  # starts 0, 1600 and 1920 (end-aligned)
    torch.testing.assert_close(spec_a, spec_b, rtol=1e-4, atol=1e-6)
    window = torch.hann_window(400, periodic=True)
    for i, s in enumerate([0, 1600, n - CROP]):
        # inverting the network input gives the window's waveform at RMS input_rms = 0.1
        wav = torch.istft(torch.complex(spec_a[i, 0], spec_a[i, 1]), 512, 160, 400, window,
                          center=True, length=CROP)
        expected = m[s:s + CROP] * (0.1 / np.sqrt(np.mean(m[s:s + CROP].astype(np.float64) ** 2)))
        np.testing.assert_allclose(wav.numpy(), expected, atol=1e-5)


def test_silent_clip_stays_silent_and_finite():
    out = E.predict_clip(ConstantMaskModel("side", [0.5 + 0j]), np.zeros(11000, np.float32),
                         _frames([0]), 10.0, AUDIO)
    assert np.all(out == 0.0)


def test_flipped_and_neutral_visual_modes():
    n = 11000
    m = _mono(n, seed=4)
    frames = _frames([200, 200], [0, 0])  # source on the left of the picture
    c = 200 / 255
    model = LeftRightFeatureModel()
    true = E.predict_clip(model, m, frames, 10.0, AUDIO, visual_mode="true")
    flipped = E.predict_clip(model, m, frames, 10.0, AUDIO, visual_mode="flipped")
    np.testing.assert_allclose(true, np.stack([(1 + c) * m, (1 - c) * m]), atol=1e-5)
    np.testing.assert_allclose(flipped, np.stack([(1 - c) * m, (1 + c) * m]), atol=1e-5)
    model.visual_inputs.clear()
    neutral = E.predict_clip(model, m, frames, 10.0, AUDIO, visual_mode="none")
    (grey,) = model.visual_inputs
    assert grey.shape == (1, 8, 16, 3) and bool((grey == 128).all())
    np.testing.assert_allclose(neutral, np.stack([m, m]), atol=1e-5)  # grey has no left/right


def test_clip_shorter_than_a_window():
    m = _mono(5000, seed=5)
    out = E.predict_clip(ConstantMaskModel("side", [0.5 + 0j]), m, _frames([0]), 10.0, AUDIO)
    assert out.shape == (2, 5000)
    np.testing.assert_allclose(out, np.stack([1.5 * m, 0.5 * m]), atol=1e-5)


def test_predict_clip_validates_inputs():
    m = _mono(11000)
    good = ConstantMaskModel("side", [0.5 + 0j])
    with pytest.raises(ValueError, match="mask_kind"):
        E.predict_clip(ConstantMaskModel("stereo", [0j]), m, _frames([0]), 10.0, AUDIO)
    with pytest.raises(ValueError, match=r"\(B, n_masks, 2, 257, T\)"):
        E.predict_clip(ConstantMaskModel("left_right", [0j]), m, _frames([0]), 10.0, AUDIO)
    with pytest.raises(ValueError, match=r"\(n,\)"):
        E.predict_clip(good, np.stack([m, m]), _frames([0]), 10.0, AUDIO)
    with pytest.raises(TypeError, match="uint8"):
        E.predict_clip(good, m, _frames([0]).astype(np.float32), 10.0, AUDIO)
    with pytest.raises(ValueError, match=r"\(n_frames, H, W, 3\)"):
        E.predict_clip(good, m, _frames([0])[0], 10.0, AUDIO)
    with pytest.raises(ValueError, match="visual_mode"):
        E.predict_clip(good, m, _frames([0]), 10.0, AUDIO, visual_mode="mirror")
    with pytest.raises(ValueError, match="input_rms"):
        E.predict_clip(good, m, _frames([0]), 10.0, {"sample_rate": SR})


# ----------------------------------------------------------------------------- evaluate_model


def _dataset(n_clips=3, n=17000):
    """Clips whose truth is exactly what LeftRightFeatureModel predicts from the true frames."""
    items = []
    for k in range(n_clips):
        m = _mono(n, seed=10 + k, amp=0.2 + 0.1 * k)
        level = 120 + 40 * k
        c = level / 255
        items.append({"audio": torch.from_numpy(np.stack([(1 + c) * m, (1 - c) * m])),
                      "frames": torch.from_numpy(_frames([level] * 11)), "fps": 10.0,
                      "clip": f"clip{k}", "meta": {}})
    return items


def test_evaluate_model_scores_and_baselines():
    data = _dataset()
    res = E.evaluate_model(LeftRightFeatureModel(), CONFIG, data, progress=False)
    assert res["conditions"] == list(E.CONDITIONS)
    assert res["metrics"] == list(M.METRICS)
    assert [c["clip"] for c in res["per_clip"]] == ["clip0", "clip1", "clip2"]
    s = res["summary"]
    # the stand-in reproduces the truth from the true frames
    assert s["model"]["stft"]["mean"] < 1e-8
    assert s["model"]["direction_acc"]["mean"] == 1.0
    # Mono-Mono: computed independently with the metrics module
    for k, item in enumerate(data):
        target = item["audio"].numpy()
        mono = 0.5 * (target[0] + target[1])
        expected = M.stft_distance(np.stack([mono, mono]), target)
        assert res["per_clip"][k]["metrics"]["mono_mono"]["stft"] == pytest.approx(expected)
    # grey frame = no left/right cue = mono for this stand-in
    assert s["audio_only"]["stft"]["mean"] == pytest.approx(s["mono_mono"]["stft"]["mean"],
                                                             rel=1e-3)
    # flipped frames put the source on the wrong side
    assert s["flipped_visual"]["direction_acc"]["mean"] == 0.0
    assert s["flipped_visual"]["stft"]["mean"] > s["mono_mono"]["stft"]["mean"] > 0.01
    # aggregates: mean, sample std and standard error over clips
    vals = np.array([c["metrics"]["mono_mono"]["env"] for c in res["per_clip"]])
    agg = s["mono_mono"]["env"]
    assert agg["n"] == 3 and agg["n_nonfinite"] == 0
    assert agg["mean"] == pytest.approx(vals.mean())
    assert agg["sem"] == pytest.approx(vals.std(ddof=1) / np.sqrt(3))
    # the model's SNR is finite-but-large or inf; inf values are counted apart
    assert s["model"]["snr"]["n"] + s["model"]["snr"]["n_nonfinite"] == 3


def test_evaluate_model_options():
    data = _dataset(n_clips=3)
    res = E.evaluate_model(LeftRightFeatureModel(), CONFIG, data, max_clips=2, normalize=False,
                           conditions=("mono_mono",), progress=False)
    assert res["settings"]["n_clips"] == 2 and list(res["summary"]) == ["mono_mono"]
    target = data[1]["audio"].numpy()
    mono = 0.5 * (target[0] + target[1])
    assert res["per_clip"][1]["metrics"]["mono_mono"]["wave_l2"] == pytest.approx(
        M.wave_l2(np.stack([mono, mono]), target, normalize=False))
    with pytest.raises(ValueError, match="conditions"):
        E.evaluate_model(LeftRightFeatureModel(), CONFIG, data, conditions=("oracle",))
    with pytest.raises(KeyError, match="frames"):
        E.evaluate_model(LeftRightFeatureModel(), CONFIG, [{"audio": data[0]["audio"], "fps": 10}],
                         progress=False)


def test_run_writes_strict_json_and_markdown(tmp_path):
    data = _dataset(n_clips=2, n=12000)
    models = {"main.pt": LeftRightFeatureModel(), "ao.pt": ConstantMaskModel("side", [0.3 + 0j])}
    calls = []

    def load(path):
        return models[path], CONFIG

    def make(root, split, visual_size):
        calls.append((root, split, visual_size))
        return data

    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = E.build_parser().parse_args([
        "--checkpoint", "main.pt", "--data", "DIR", "--split", "test", "--out", str(out),
        "--markdown", str(md), "--audio-only-checkpoint", "ao.pt", "--no-progress",
        "--device", "cpu"])
    res = E.run(args, load_generator=load, make_dataset=make)
    assert calls == [("DIR", "test", (8, 16))]

    def no_constants(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    saved = json.loads(out.read_text(), parse_constant=no_constants)
    assert saved["settings"]["checkpoint"] == "main.pt"
    assert saved["summary"]["mono_mono"]["stft"]["mean"] == pytest.approx(
        res["summary"]["mono_mono"]["stft"]["mean"])
    # the separate audio-only model (constant side mask 0.3) was used for that row
    target = data[0]["audio"].numpy()
    mono = 0.5 * (target[0] + target[1])
    expected = M.stft_distance(np.stack([1.3 * mono, 0.7 * mono]), target)
    assert saved["per_clip"][0]["metrics"]["audio_only"]["stft"] == pytest.approx(expected, rel=1e-3)
    table = md.read_text()
    for label in ("Mono-Mono", "Audio-only", "Flipped-visual", "STFT", "ENV", "±"):
        assert label in table
    papers = table.split("\n\n")[0]  # the localisation table follows
    assert len([l for l in papers.splitlines() if l.startswith("| ")]) == 5  # header + 4 rows
    assert "| Localisation | value |" in table
