"""Tests of the SimBinaural-lite generator: physics, geometry, determinism, splits, assets."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from streambin.train import simulate as S
from streambin.train.sim import assets as A
from streambin.train.sim.hrtf import load_sofa, wrap_deg
from streambin.train.sim.render import (RoomModel, RoomSpec, direction_to_offset,
                                        offset_to_direction, render_keyframed)
from streambin.train.sim.scene import (Library, azimuth_to_column, column_to_azimuth,
                                       compose_frames, render_audio, sample_scene)
from streambin.train.sim.sf2 import SoundFont

from .conftest import STAMP_COLOURS, write_tiny_sf2


def ild_db(audio: np.ndarray) -> float:
    """Right-minus-left level difference in dB of a (2, n) signal."""
    e = np.sum(audio.astype(np.float64) ** 2, axis=1)
    return float(10 * np.log10(e[1] / e[0]))


def right_lead_samples(audio: np.ndarray, max_lag: int = 20) -> int:
    """Samples by which the RIGHT ear leads the left (cross-correlation peak; < 0: left leads)."""
    l, r = audio.astype(np.float64)
    lags = np.arange(-max_lag, max_lag + 1)
    # c(k) = sum_t l[t] r[t - k]. If r[t] = l[t + d] (right earlier by d samples), then
    # r[t - k] = l[t - k + d], which matches l[t] at k = d: the peak lag is the right ear's lead.
    c = [np.dot(l[max_lag:-max_lag], np.roll(r, k)[max_lag:-max_lag]) for k in lags]
    return int(lags[int(np.argmax(c))])


@pytest.fixture(scope="module")
def phys_lib(physics_assets):
    from streambin.train.sim.scene import LEGACY_OPTIONS

    return Library(physics_assets, pool="all", options=LEGACY_OPTIONS)


# ---------------------------------------------------------------- physics


def test_right_source_louder_and_earlier_in_right_ear(phys_lib):
    """Many random single-source anechoic scenes: ILD and ITD signs follow the azimuth."""
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng([7, seed])
        scene = sample_scene(rng, phys_lib, seconds=0.5, max_sources=1)
        az = float(scene.sources[0].azimuth_deg[0])
        audio, _ = render_audio(scene, phys_lib, rng)
        if abs(az) < 5:  # too close to the centre for a sign test
            continue
        ild, lead = ild_db(audio), right_lead_samples(audio)
        assert np.sign(ild) == np.sign(az), f"az {az:.1f}: ILD {ild:.2f} dB has the wrong sign"
        if abs(az) >= 15:  # an ITD of >= ~2 samples at 16 kHz
            assert np.sign(lead) == np.sign(az), f"az {az:.1f}: right leads by {lead} samples"
        checked += 1
    assert checked >= 30


def test_centre_source_has_near_zero_ild(phys_lib):
    for seed in range(5):
        rng = np.random.default_rng([8, seed])
        scene = sample_scene(rng, phys_lib, seconds=0.5, max_sources=1)
        src = scene.sources[0]
        src.azimuth_deg[:] = 0.0
        src.elevation_deg[:] = 0.0
        audio, _ = render_audio(scene, phys_lib, rng)
        assert abs(ild_db(audio)) < 1.0
        assert abs(right_lead_samples(audio)) <= 1


def test_moving_source_ild_follows_sweep(phys_lib):
    """A source sweeping from left to right: ILD negative at the start, positive at the end."""
    rng = np.random.default_rng(3)
    scene = sample_scene(rng, phys_lib, seconds=2.0, max_sources=1, moving_prob=1.0)
    src = scene.sources[0]
    assert src.moving
    src.azimuth_deg[:] = np.linspace(-40, 40, len(src.azimuth_deg))
    audio, _ = render_audio(scene, phys_lib, rng)
    q = audio.shape[1] // 4
    assert ild_db(audio[:, :q]) < -3 and ild_db(audio[:, -q:]) > 3
    # Smooth: the short-time ILD (50 ms windows) never jumps by more than 3 dB between adjacent
    # windows that carry sound (the looped sound has silent gaps, where ILD is undefined).
    w = 800
    wins = [audio[:, k:k + w] for k in range(0, audio.shape[1] - w, w)]
    energy = np.array([np.sum(x.astype(np.float64) ** 2) for x in wins])
    loud = energy > 1e-2 * np.median(energy)
    ilds = np.array([ild_db(x) if ok else np.nan for x, ok in zip(wins, loud)])
    steps = np.abs(np.diff(ilds))[loud[1:] & loud[:-1]]
    assert len(steps) > 10 and np.max(steps) < 3.0


def test_room_brir_direct_path_and_decay(phys_lib):
    hr = phys_lib.hrirs
    room = RoomModel(hr, RoomSpec((7.0, 6.0, 3.0), 0.3, (1.0, 3.0, 1.5)))
    from streambin.train.sim.render import binaural_tail
    tail = binaural_tail(np.random.default_rng(0), 3 * hr.sample_rate, hr.sample_rate)
    brir = room.brir(np.array(room.head) + direction_to_offset(30.0, 0.0, 2.0), tail)
    onset = int(np.argmax(np.abs(brir).max(axis=0) > 0.2 * np.abs(brir).max()))
    expected = 2.0 / 343.0 * hr.sample_rate
    assert abs(onset - expected) < hr.n_taps  # direct sound first, at r / c
    direct = brir[:, onset: onset + 48]
    assert ild_db(direct) > 0  # source on the right
    sr = hr.sample_rate
    early = np.mean(brir[:, onset + int(0.05 * sr): onset + int(0.1 * sr)] ** 2)
    late = np.mean(brir[:, onset + int(0.3 * sr): onset + int(0.35 * sr)] ** 2)
    assert 0 < late < early  # the reverberation decays
    assert 0.1 < room.rt60_s < 2.0


def test_geometry_round_trip():
    for az, el, d in [(30, 5, 2), (-40, -3, 1), (0, 0, 4)]:
        a, e, r = offset_to_direction(direction_to_offset(az, el, d))
        assert np.allclose([a, e, r], [az, el, d])
    u = azimuth_to_column(np.array([-45.0, 0.0, 45.0]), 448)
    assert np.allclose(u, [0.0, 224.0, 448.0])
    assert np.allclose(column_to_azimuth(u, 448), [-45, 0, 45])
    assert wrap_deg(-180.0) == 180.0 and wrap_deg(370.0) == 10.0


def test_sofa_azimuth_converted_to_right_positive(tiny_assets):
    """The synthetic file says (SOFA) 90 deg = left; ours must call that -90 and be louder left."""
    hr = load_sofa(tiny_assets.sofa, 16000)
    i = hr.nearest(-90.0, 0.0)[0]
    assert hr.azimuth_deg[i] == -90.0
    e = np.sum(hr.hrirs[i].astype(np.float64) ** 2, axis=1)
    assert e[0] > e[1]
    # Interpolating exactly on a measured direction returns that HRIR.
    j = hr.nearest(25.0, 10.0)[0]
    assert np.allclose(hr.interpolate(25.0, 10.0), hr.hrirs[j], atol=1e-6)
    # Gain kept across the 44.1 -> 16 kHz resampling (a frontal impulse of unit sum).
    front = hr.hrirs[hr.nearest(0.0, 0.0)[0]]
    assert np.allclose(front.sum(axis=1), 1.0, atol=0.05)


def test_render_keyframed_constant_brir_equals_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000).astype(np.float32)
    h = rng.standard_normal((2, 50)).astype(np.float32)
    ref = np.stack([np.convolve(x, h[0])[:4000], np.convolve(x, h[1])[:4000]])
    out = render_keyframed(x, np.stack([h, h, h]), np.array([500, 1700, 3000]))
    assert np.allclose(out, ref, atol=1e-4)
    with pytest.raises(ValueError, match="strictly increasing"):
        render_keyframed(x, np.stack([h, h]), np.array([5, 5]))


# ---------------------------------------------------------------- frames


def _find_colour(frame: np.ndarray, rgb) -> tuple[float, np.ndarray]:
    mask = np.all(np.abs(frame.astype(int) - np.array(rgb)) < 30, axis=2)
    ys, xs = np.nonzero(mask)
    return (xs.min() + xs.max() + 1) / 2.0, mask


@pytest.mark.parametrize("moving", [False, True])
def test_cutout_column_matches_sidecar_azimuth(tmp_path, tiny_library, moving):
    for index in range(6):
        S.generate_clip(tmp_path, index, 11, tiny_library, seconds=1.0, max_sources=1,
                        room_fraction=0.0, moving_fraction=1.0 if moving else 0.0)
        meta = json.loads((tmp_path / "meta" / f"{index:06d}.json").read_text())
        src = meta["sources"][0]
        assert src["moving"] == moving
        rgb = STAMP_COLOURS[src["name"].split("/")[-1]]
        for j in (0, 4, 9):
            frame = cv2.cvtColor(cv2.imread(str(tmp_path / "frames" / f"{index:06d}" / f"{j + 1:06d}.png")),
                                 cv2.COLOR_BGR2RGB)
            u, mask = _find_colour(frame, rgb)
            x0, y0, x1, y1 = src["bbox"][j]
            if x0 == 0 or x1 == meta["frame_width"]:
                continue  # cut off by the frame edge: its visible centre is not the source column
            az = float(column_to_azimuth(u, meta["frame_width"]))
            assert abs(az - src["azimuth_deg"][j]) < 1.0, (index, j, az, src["azimuth_deg"][j])
            assert mask[y0:y1, x0:x1].sum() == mask.sum()  # bbox contains the cut-out
        if moving:
            assert src["azimuth_deg"][0] != src["azimuth_deg"][-1]


def test_apparent_size_shrinks_with_distance(tiny_library):
    rng = np.random.default_rng(5)
    scene = sample_scene(rng, tiny_library, seconds=0.2, max_sources=1)
    scene.sources[0].height_m = 0.5  # f * h / r = 112, 56, 28 px: never capped by the frame
    scene.sources[0].elevation_deg[:] = 0.0
    heights = []
    for d in (1.0, 2.0, 4.0):
        scene.sources[0].distance_m[:] = d
        _, bb = compose_frames(scene, tiny_library)
        heights.append(bb[0][0][3] - bb[0][0][1])
    assert heights[0] > heights[1] > heights[2]
    assert abs(heights[0] / heights[2] - 4.0) < 0.2


# ---------------------------------------------------------------- whole clips


def _all_bytes(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_any_worker_count(tmp_path, tiny_assets):
    kw = dict(clips=3, seconds=1.0, seed=4, rooms=True, moving=True, max_sources=2,
              paths=tiny_assets, room_fraction=0.5, moving_fraction=0.5, progress=False)
    S.generate(tmp_path / "a", workers=1, **kw)
    S.generate(tmp_path / "b", workers=2, **kw)
    a, b = _all_bytes(tmp_path / "a"), _all_bytes(tmp_path / "b")
    assert len(a) > 3 * 10 and a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    S.generate(tmp_path / "c", workers=1, **{**kw, "seed": 5})
    c = _all_bytes(tmp_path / "c")
    assert a["binaural_audios/000000.wav"] != c["binaural_audios/000000.wav"]


def test_clip_files_and_sidecar(tmp_path, tiny_assets):
    import soundfile as sf

    S.generate(tmp_path, clips=4, seconds=1.0, seed=1, rooms=True, moving=True, workers=1,
               paths=tiny_assets, room_fraction=1.0, moving_fraction=1.0, max_sources=3,
               progress=False)
    for i in range(4):
        c = f"{i:06d}"
        m = json.loads((tmp_path / "meta" / f"{c}.json").read_text())
        for k in ("sample_rate", "fps", "sources", "room", "brir_file"):
            assert k in m
        assert m["sample_rate"] == 16000 and m["fps"] == 10.0 and m["room"]["rt60_s"] > 0
        x, sr = sf.read(str(tmp_path / "binaural_audios" / f"{c}.wav"), dtype="float32")
        assert sr == 16000 and x.shape == (16000, 2) and np.abs(x).max() <= 0.9 + 1e-3
        frames = sorted((tmp_path / "frames" / c).glob("*.png"))
        assert [p.name for p in frames] == [f"{k:06d}.png" for k in range(1, 11)]
        assert cv2.imread(str(frames[0])).shape == (224, 448, 3)
        sounding = [s for s in m["sources"] if not s["silent"]]
        brirs = np.load(tmp_path / m["brir_file"])
        assert brirs.dtype == np.float32 and brirs.shape[:2] == (len(sounding), 2)
        half_fov = m["hfov_deg"] / 2
        assert 60.0 <= m["hfov_deg"] <= 100.0
        for s in m["sources"]:
            for k in ("azimuth_deg", "elevation_deg", "distance_m", "bbox"):
                assert len(s[k]) == 10
            assert all(-half_fov < a < half_fov for a in s["azimuth_deg"])
            assert all(1.0 <= d <= (5.0 if s["silent"] else 4.0) for d in s["distance_m"])


def test_splits_exact_disjoint_and_stable(tmp_path):
    names = {s: {i for i in range(1000) if S.split_of(i, 0) == s} for s in S.SPLIT_NAMES}
    assert [len(names[s]) for s in S.SPLIT_NAMES] == [800, 100, 100]
    assert not (names["train"] & names["val"]) and not (names["train"] & names["test"]) \
        and not (names["val"] & names["test"])
    assert {S.split_of(i, 1) for i in range(10)} == set(S.SPLIT_NAMES)
    assert [S.split_of(i, 0) for i in range(30)] != [S.split_of(i, 1) for i in range(30)]
    # write_splits lists exactly the clips whose sidecar exists, each in one split.
    (tmp_path / "meta").mkdir()
    for i in (0, 1, 2, 5, 17):
        (tmp_path / "meta" / f"{i:06d}.json").write_text("{}")
    out = S.write_splits(tmp_path, 0)
    listed = [l for s in S.SPLIT_NAMES for l in (tmp_path / "splits" / f"{s}.txt").read_text().split()]
    assert sorted(listed) == [f"{i:06d}" for i in (0, 1, 2, 5, 17)]
    assert all(S.split_of(int(c), 0) == s for s, cs in out.items() for c in cs)


def test_failed_clip_is_reported_and_others_written(tmp_path, tiny_assets, monkeypatch):
    real = S.generate_clip

    def flaky(out, index, *args):
        if index == 1:
            raise ValueError("boom")
        return real(out, index, *args)

    monkeypatch.setattr(S, "generate_clip", flaky)
    with pytest.raises(RuntimeError, match="000001"):
        S.generate(tmp_path, clips=3, seconds=0.5, seed=0, rooms=False, moving=False, workers=1,
                   paths=tiny_assets, progress=False)
    assert sorted(p.stem for p in (tmp_path / "meta").glob("*.json")) == ["000000", "000002"]


def test_splits_only_cli(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "000003.json").write_text("{}")
    assert S.main(["--out", str(tmp_path), "--splits-only"]) == 0
    assert sum(len((tmp_path / "splits" / f"{s}.txt").read_text().split()) for s in S.SPLIT_NAMES) == 1


# ---------------------------------------------------------------- assets


def test_missing_assets_name_the_debian_package(tmp_path, tiny_assets):
    with pytest.raises(A.MissingAssetError, match="libmysofa1"):
        replace(tiny_assets, sofa=tmp_path / "nope.sofa").check()
    with pytest.raises(A.MissingAssetError, match="tuxpaint-stamps-default"):
        replace(tiny_assets, stamps=tmp_path).check()
    with pytest.raises(A.MissingAssetError, match="fluid-soundfont-gm"):
        replace(tiny_assets, sf2=tmp_path / "nope.sf2").check()
    assert S.main(["--out", str(tmp_path / "o"), "--clips", "1", "--sofa", str(tmp_path / "x.sofa")]) == 2


def test_find_stamps_pairs_png_and_ogg_only(tiny_assets, tiny_library):
    stamps = A.find_stamps(tiny_assets.stamps)
    assert sorted(s.name.split("/")[-1] for s in stamps) == sorted([*STAMP_COLOURS, "silent_thing"])
    assert all(s.png.stem == s.ogg.stem for s in stamps)
    # The silent one is dropped by the library.
    assert sorted(s.name.split("/")[-1] for s in tiny_library.stamps) == sorted(STAMP_COLOURS)


def test_find_cutouts_leaves_out_pictures_without_alpha(tmp_path):
    """A picture without an alpha channel (an RGB PNG, also one with a colour-key transparency,
    which OpenCV may decode without alpha) cannot be cut out; it is not offered as a cut-out, so
    no scene fails on it. Grey + alpha and
    palette + transparency pictures decode with alpha and are kept."""
    from PIL import Image

    Image.new("RGBA", (8, 8), (255, 0, 0, 255)).save(tmp_path / "rgba.png")
    Image.new("LA", (8, 8), (128, 255)).save(tmp_path / "grey_alpha.png")
    Image.new("P", (8, 8), 1).save(tmp_path / "palette_key.png", transparency=0)
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "rgb_key.png", transparency=(0, 0, 0))
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "rgb.png")
    names = [s.name for s in A.find_cutouts(tmp_path)]
    assert names == ["grey_alpha", "palette_key", "rgba"]
    for name in names:  # what is offered loads as RGBA
        assert A.load_cutout(tmp_path / f"{name}.png").shape[2] == 4
    with pytest.raises(ValueError, match="RGBA"):
        A.load_cutout(tmp_path / "rgb.png")

def test_sf2_parse_and_pitch(tmp_path):
    path = write_tiny_sf2(tmp_path / "t.sf2", sine_hz=440.0, sample_rate=22050, root_key=69)
    font = SoundFont(path)
    assert font.presets() == [(0, 40, "Test")]
    zones = font.zones(40)
    assert len(zones) == 1 and zones[0].root_key == 69 and zones[0].loops
    for key, hz in ((69, 440.0), (81, 880.0), (57, 220.0)):
        y = font.note(zones, key, 2.0, 16000)  # longer than the sample: the loop sustains it
        assert y.shape == (32000,)
        mid = y[8000:24000]
        assert np.sqrt(np.mean(mid ** 2)) > 0.2
        spec = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
        assert abs(np.argmax(spec) * 16000 / len(mid) - hz) < 3.0
    with pytest.raises(KeyError):
        font.zones(1)
    with pytest.raises(ValueError, match="SoundFont 2"):
        bad = tmp_path / "bad.sf2"
        bad.write_bytes(b"RIFF\0\0\0\0WAVE")
        SoundFont(bad)


def test_instrument_sources_render(tmp_path, tiny_assets):
    """An instrument source uses the SoundFont and its matching cut-out."""
    sf2 = write_tiny_sf2(tmp_path / "t.sf2", program=40)
    stem = "cat/sub0/red_thing"
    paths = replace(tiny_assets, sf2=sf2, instruments={"violin": (40, stem)})
    lib = Library(paths)
    assert lib.instruments == [("violin", 40, str(paths.stamps / (stem + ".png")))]
    rng = np.random.default_rng(0)
    scene = sample_scene(rng, lib, seconds=1.0, max_sources=1, instrument_prob=1.0)
    assert scene.sources[0].kind == "instrument"
    audio, _ = render_audio(scene, lib, rng)
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() > 0


def test_card_figure(tmp_path, tiny_assets):
    from streambin.train.sim.card import make_figure, pick_clip, short_time_ild_db

    t, ild = short_time_ild_db(np.stack([np.ones(3200), 2 * np.ones(3200)]), 16000)
    assert np.allclose(t, [0.05, 0.15]) and np.allclose(ild, 20 * np.log10(2))
    S.generate(tmp_path, clips=3, seconds=1.0, seed=2, rooms=False, moving=True, workers=1,
               paths=tiny_assets, moving_fraction=1.0, max_sources=1, progress=False)
    out = make_figure(tmp_path, pick_clip(tmp_path), tmp_path / "fig.png")
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600


@pytest.mark.assets
def test_real_assets_smoke(tmp_path, real_assets):
    """The generator with the real Debian assets (skipped where they are not installed)."""
    paths = real_assets
    S.generate(tmp_path, clips=2, seconds=2.0, seed=0, rooms=True, moving=True, workers=1,
               paths=paths, room_fraction=0.5, moving_fraction=0.5, progress=False)
    for c in ("000000", "000001"):
        m = json.loads((tmp_path / "meta" / f"{c}.json").read_text())
        assert len(list((tmp_path / "frames" / c).glob("*.png"))) == 20
        assert 1 <= len([s for s in m["sources"] if not s["silent"]]) <= 3
