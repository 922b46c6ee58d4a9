"""Tests of the SimBinaural-lite and FAIR-Play loaders (tiny data sets made by the tests)."""
from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import correlate

from streambin.train import simulate as S
from streambin.train.data import (FairPlayDataset, SimBinauralDataset, colour_jitter,
                                  read_clip)


@pytest.fixture(scope="module")
def sim_root(make_tiny_sim):
    return make_tiny_sim("simbin", seconds=1.2)


def test_sim_train_items(sim_root):
    ds = SimBinauralDataset(sim_root, "train", mode="train", visual_size=(112, 224), seed=3)
    assert len(ds) == 8
    for i in range(len(ds)):
        it = ds[i]
        assert set(it) == {"audio", "frame", "clip", "flipped"}
        assert it["audio"].dtype == torch.float32 and it["audio"].shape == (2, 10080)
        assert it["frame"].dtype == torch.uint8 and it["frame"].shape == (112, 224, 3)
        mono = it["audio"].double().mean(0)
        assert abs(mono.pow(2).mean().sqrt().item() - 0.1) < 1e-4
        assert it["flipped"] is False and it["clip"] == ds.clips[i]


def test_sim_train_determinism_and_epochs(sim_root):
    a = SimBinauralDataset(sim_root, "train", seed=1)
    b = SimBinauralDataset(sim_root, "train", seed=1)
    assert torch.equal(a[2]["audio"], b[2]["audio"]) and torch.equal(a[2]["frame"], b[2]["frame"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["audio"], b[2]["audio"])
    c = SimBinauralDataset(sim_root, "train", seed=2)
    assert not torch.equal(a[2]["audio"], c[2]["audio"])


def test_flip_mirrors_frame_and_swaps_channels_together(sim_root):
    plain = SimBinauralDataset(sim_root, "train", flip_prob=0.0, seed=5)
    flip = SimBinauralDataset(sim_root, "train", flip_prob=1.0, seed=5)
    for i in range(3):
        p, f = plain[i], flip[i]
        assert f["flipped"] is True
        assert torch.equal(f["audio"], p["audio"].flip(0))
        assert torch.equal(f["frame"], p["frame"].flip(1))


def test_sim_eval_items(sim_root):
    ds = SimBinauralDataset(sim_root, "test", mode="eval", visual_size=(56, 112))
    it = ds[0]
    audio, sr, fdir = read_clip(sim_root, it["clip"])
    assert sr == 16000 and torch.equal(it["audio"], torch.from_numpy(audio))
    assert it["audio"].shape == (2, 19200) and it["audio"].dtype == torch.float32
    assert it["frames"].shape == (12, 56, 112, 3) and it["frames"].dtype == torch.uint8
    assert it["fps"] == 10.0 and it["meta"]["clip"] == it["clip"]
    assert fdir == sim_root / "frames" / it["clip"]


def test_split_lists_are_disjoint_and_complete(sim_root):
    clips = [c for s in S.SPLIT_NAMES for c in SimBinauralDataset(sim_root, s).clips]
    assert sorted(clips) == [f"{i:06d}" for i in range(10)]


def test_blank_items_show_nothing_and_keep_the_sound_centred(sim_root):
    plain = SimBinauralDataset(sim_root, "train", visual_size=(32, 64), seed=4, with_positions=True)
    blank = SimBinauralDataset(sim_root, "train", visual_size=(32, 64), seed=4, with_positions=True,
                               blank_prob=1.0)
    some = SimBinauralDataset(sim_root, "train", visual_size=(32, 64), seed=4, blank_prob=0.5)
    for i in range(3):
        p, b = plain[i], blank[i]
        frame = b["frame"].numpy().reshape(-1, 3)
        assert (frame == frame[0]).all()  # one uniform colour
        mono = p["audio"].mean(dim=0)
        assert torch.allclose(b["audio"][0], mono) and torch.allclose(b["audio"][1], mono)
        assert (b["source_x"] == -1).all()
    n_blank = sum(bool((some[i]["frame"] == some[i]["frame"][0, 0]).all()) for i in range(len(some)))
    assert 0 < n_blank < len(some)
    # the share does not move the other draws: non-blank items equal the plain ones
    plain_nopos = SimBinauralDataset(sim_root, "train", visual_size=(32, 64), seed=4)
    for i in range(len(some)):
        if not bool((some[i]["frame"] == some[i]["frame"][0, 0]).all()):
            assert torch.equal(some[i]["audio"], plain_nopos[i]["audio"])
    with pytest.raises(ValueError, match="blank_prob must be in"):
        SimBinauralDataset(sim_root, "train", blank_prob=1.5)


def test_colour_jitter():
    img = np.full((4, 4, 3), (100, 150, 200), np.uint8)
    assert np.array_equal(colour_jitter(img, 1.0, 1.0), img)
    dark = colour_jitter(img, 0.7, 1.0)
    assert np.allclose(dark, np.round(np.array([70, 105, 140])), atol=1)
    grey = colour_jitter(img, 1.0, 0.0)
    assert np.ptp(grey[0, 0].astype(int)) <= 1
    with pytest.raises(ValueError, match="uint8"):
        colour_jitter(img.astype(np.float32), 1.0, 1.0)


def test_bad_arguments(sim_root):
    with pytest.raises(ValueError, match="mode"):
        SimBinauralDataset(sim_root, "train", mode="test")
    with pytest.raises(FileNotFoundError, match="splits-only"):
        SimBinauralDataset(sim_root, "nosuchsplit")


# ---------------------------------------------------------------- FAIR-Play layout


def _bar_frame(k: int) -> np.ndarray:
    """Black frame with a white vertical bar at column 10 * k: encodes the frame number."""
    img = np.zeros((60, 240, 3), np.uint8)
    img[:, 10 * k: 10 * k + 4] = 255
    return img


@pytest.fixture(scope="module")
def fairplay_root(tmp_path_factory):
    """FAIR-Play as shipped: 48 kHz wavs, frames/<stem>.mp4/%06d.png, splits/split1/*.h5 whose
    paths point to the authors' machine (they must be found by file name)."""
    root = tmp_path_factory.mktemp("fairplay")
    (root / "binaural_audios").mkdir()
    t = np.arange(2 * 48000) / 48000
    noise = np.random.default_rng(0).standard_normal(len(t))
    for stem in ["000001", "000002"]:
        if stem == "000001":  # a sine with a known 12 dB level difference
            left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)
        else:  # noise: a crop can be located in the clip by cross-correlation
            left, right = 0.2 * noise, 0.1 * np.roll(noise, 5)
        sf.write(str(root / "binaural_audios" / f"{stem}.wav"), np.stack([left, right], 1), 48000)
        d = root / "frames" / f"{stem}.mp4"
        d.mkdir(parents=True)
        for k in range(1, 21):
            cv2.imwrite(str(d / f"{k:06d}.png"), _bar_frame(k))
    (root / "splits" / "split1").mkdir(parents=True)
    for split, stems in (("train", ["000001", "000002"]), ("test", ["000002"])):
        with h5py.File(root / "splits" / "split1" / f"{split}.h5", "w") as f:
            f.create_dataset("audio", data=[f"/home/authors/FAIR-Play/binaural_audios/{s}.wav".encode()
                                            for s in stems])
    return root


def test_fairplay_train(fairplay_root):
    ds = FairPlayDataset(fairplay_root, "splits/split1/train.h5", mode="train",
                         visual_size=(30, 120), crop_samples=32000, seed=0)
    assert ds.clips == ["000001", "000002"]
    it = ds[0]
    assert it["audio"].shape == (2, 32000) and it["audio"].dtype == torch.float32
    assert it["frame"].shape == (30, 120, 3) and it["frame"].dtype == torch.uint8
    # The whole 2 s clip is the crop: centre 1.0 s -> frame file floor(1.0 * 10) + 1 = 11.
    col = np.argmax(it["frame"].numpy().astype(int).sum(axis=(0, 2)))
    assert abs(col * 2 - 10 * 11) <= 4  # frames were resized 240 -> 120 wide
    # 48 -> 16 kHz resampling keeps the 12 dB level difference and the sine's frequency.
    a = it["audio"].double().numpy()[:, 2000:-2000]
    assert abs(20 * np.log10(np.sqrt((a[0] ** 2).mean() / (a[1] ** 2).mean())) - 12.04) < 0.1
    spec = np.abs(np.fft.rfft(a[0]))
    assert abs(np.argmax(spec) * 16000 / a.shape[1] - 440) < 2


def test_fairplay_eval_and_frame_index(fairplay_root):
    ds = FairPlayDataset(fairplay_root, fairplay_root / "splits/split1/test.h5", mode="eval",
                         visual_size=(60, 240))
    it = ds[0]
    assert it["clip"] == "000002" and it["meta"] is None and it["fps"] == 10.0
    assert it["audio"].shape == (2, 32000) and it["frames"].shape == (20, 60, 240, 3)
    for k in (1, 7, 20):
        assert np.argmax(it["frames"][k - 1].numpy().sum(axis=(0, 2))) == 10 * k
    whole = it["audio"][0].double().numpy()
    frames_seen = set()
    for seed in range(6):
        train = FairPlayDataset(fairplay_root, "splits/split1/test.h5", crop_samples=10080,
                                visual_size=(60, 240), seed=seed)
        crop = train[0]["audio"][0].double().numpy()
        start = int(np.argmax(correlate(whole, crop, mode="valid", method="fft")))
        centre_s = (start + 10080 / 2) / 16000
        col = np.argmax(train[0]["frame"].numpy().astype(int).sum(axis=(0, 2)))
        assert col == 10 * (int(centre_s * 10) + 1)  # the frame whose interval holds the centre
        frames_seen.add(col)
    assert len(frames_seen) > 1


def test_fairplay_missing_wav(tmp_path):
    (tmp_path / "s.h5").parent.mkdir(exist_ok=True)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("audio", data=[b"/x/binaural_audios/nope.wav"])
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        FairPlayDataset(tmp_path, tmp_path / "s.h5")
