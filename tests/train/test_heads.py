"""Heads of the scene generator: ids, pools, determinism, and the interaural cues of every kind.

Cues are measured as the issue asks: ITD from the cross-correlation of the HRIRs low-passed at
1.5 kHz (positive = right ear earlier), ILD as the right/left broadband energy ratio in dB.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from streambin.train.sim import heads
from streambin.train.sim.hrtf import HrirSet, interaural_cues

from .conftest import KEMAR

SR = 16000
needs_kemar = pytest.mark.skipif(not KEMAR.is_file(),
                                 reason="MIT KEMAR SOFA file absent: apt-get install libmysofa1")
# One of each kind, train and OOD: seeds chosen to cover the ends of the parameter ranges
# (kemar~p102: ITD x0.86 and ILD x1.29; kemar~p2: ITD x1.15 and ILD x0.77; sphere~s2 has no pinna).
KEMAR_KINDS = ["kemar", "kemar~p102", "kemar~p2", "kemar~p1050"]
SPHERE_KINDS = ["sphere~s0", "sphere~s2", "sphere~s1042"]


def cues(h: HrirSet, azimuths, elevation_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.stack([h.interpolate(a, elevation_deg) for a in azimuths])
    return interaural_cues(pairs, h.sample_rate)


@pytest.mark.parametrize("bad", ["", "KEMAR", "kemar~", "kemar~p", "kemar~p-1", "kemar~p01",
                                 "kemar~s3", "sphere~3", "sphere~s1.5", "sphere", "ku100", None, 7])
def test_bad_head_ids_name_the_expected_forms(bad):
    for f in (heads.parse_head_id, heads.describe_head, heads.head_pool,
              lambda i: heads.load_head(i, SR)):
        with pytest.raises(ValueError, match=r'"kemar", "kemar~p<seed>", "sphere~s<seed>"'):
            f(bad)


@pytest.mark.parametrize("rate", [0, 4000, 16000.0, True, "16000"])
def test_bad_sample_rate(rate):
    with pytest.raises(ValueError, match="sample_rate must be an int"):
        heads.load_head("sphere~s1", rate)


def test_pools_are_disjoint_and_cover_every_kind():
    train, ood = heads.head_ids("train"), heads.head_ids("ood")
    assert len(train) == len(set(train)) == 2001 and len(ood) == len(set(ood)) == 200
    assert not set(train) & set(ood)
    assert heads.head_ids("all") == train + ood
    assert "kemar" in train
    for pool, ids in (("train", train), ("ood", ood)):
        assert {heads.parse_head_id(i)[0] for i in ids} >= {"kemar~p", "sphere~s"}
        assert all(heads.head_pool(i) == pool for i in ids)
        assert all(heads.describe_head(i)["pool"] == pool for i in ids[:3] + ids[-3:])
    assert heads.head_pool("kemar~p5000") is None
    with pytest.raises(ValueError, match="pool must be one of"):
        heads.head_ids("test")


def test_draw_head_stays_in_its_pool():
    rng = np.random.default_rng(0)
    for pool in ("train", "ood"):
        drawn = [heads.draw_head(rng, pool) for _ in range(300)]
        assert set(drawn) <= set(heads.head_ids(pool))
        kinds = {heads.parse_head_id(i)[0] for i in drawn}
        assert kinds == ({"kemar", "kemar~p", "sphere~s"} if pool == "train" else {"kemar~p", "sphere~s"})
    a = [heads.draw_head(np.random.default_rng(5), "train") for _ in range(3)]
    assert len(set(a)) == 1  # same generator state, same head
    with pytest.raises(ValueError, match="sum <= 1"):
        heads.draw_head(rng, "train", kemar_share=0.8, sphere_share=0.5)


@needs_kemar
@pytest.mark.parametrize("head_id", ["kemar~p7", "sphere~s7"])
def test_same_id_same_head_and_seeds_differ(head_id):
    a = heads.load_head(head_id, SR)
    assert heads.load_head(head_id, SR) is a  # cached
    with pytest.raises(ValueError, match="read-only"):
        a.hrirs[0, 0, 0] = 1.0
    heads.clear_head_cache()
    b = heads.load_head(head_id, SR)
    assert b is not a
    np.testing.assert_array_equal(a.hrirs, b.hrirs)
    np.testing.assert_array_equal(a.azimuth_deg, b.azimuth_deg)
    assert heads.describe_head(head_id) == heads.describe_head(head_id)
    other = heads.load_head(head_id.replace("7", "8"), SR)
    assert np.abs(other.hrirs - a.hrirs).max() > 0.01 * np.abs(a.hrirs).max()


def test_describe_head_is_json_and_within_ranges():
    for head_id in ("kemar", "kemar~p3", "sphere~s3", "sphere~s1099"):
        d = heads.describe_head(head_id)
        assert json.loads(json.dumps(d)) == d
        assert d["id"] == head_id and d["kind"] in ("kemar", "kemar_perturbed", "sphere")
    for s in range(200):
        p = heads.describe_head(f"kemar~p{s}")
        assert 0.85 <= p["itd_scale"] <= 1.2 and 0.75 <= p["ild_scale"] <= 1.3
        assert np.abs(p["colour_left_db"]).max() <= 5.5 and np.abs(p["colour_right_db"]).max() <= 5.5
        q = heads.describe_head(f"sphere~s{s}")
        assert 0.075 <= q["radius_m"] <= 0.095 and 90 <= q["ear_azimuth_deg"] <= 100


@needs_kemar
@pytest.mark.parametrize("head_id", KEMAR_KINDS + SPHERE_KINDS)
def test_cue_signs_every_kind(head_id):
    """A source on the right reaches the right ear first and louder; mirrored on the left."""
    h = heads.load_head(head_id, SR)
    for el in (0.0, 20.0):
        itd, ild = cues(h, [30, 60, -30, -60], el)
        assert np.all(itd[:2] > 0.1e-3) and np.all(itd[2:] < -0.1e-3), (el, itd)
        assert np.all(ild[:2] > 3.0) and np.all(ild[2:] < -3.0), (el, ild)


@needs_kemar
@pytest.mark.parametrize("head_id", KEMAR_KINDS + SPHERE_KINDS)
def test_grid_covers_the_sphere_and_itd_at_90_is_human(head_id):
    h = heads.load_head(head_id, SR)
    assert h.elevation_deg.min() <= -40 and h.elevation_deg.max() == 90
    assert np.all(np.isfinite(h.hrirs)) and h.sample_rate == SR
    ring = np.sort(h.azimuth_deg[h.elevation_deg == 0])
    assert np.diff(np.r_[ring, ring[0] + 360]).max() <= 5.0 + 1e-6
    itd, _ = cues(h, [90, -90])
    assert 0.5e-3 <= itd[0] <= 0.9e-3 and -0.9e-3 <= itd[1] <= -0.5e-3, itd


@pytest.mark.parametrize("radius_m,ear_azimuth_deg", [(0.075, 100.0), (0.095, 90.0), (0.095, 100.0)])
def test_sphere_itd_at_90_is_human_at_the_ends_of_its_ranges(radius_m, ear_azimuth_deg):
    h = heads.sphere_hrirs(SR, radius_m, ear_azimuth_deg, -10.0, 0.35, 1.15)
    itd, ild = cues(h, [90, -90])
    assert 0.5e-3 <= itd[0] <= 0.9e-3 and -0.9e-3 <= itd[1] <= -0.5e-3, itd
    assert ild[0] > 3.0 and ild[1] < -3.0


@needs_kemar
@pytest.mark.parametrize("head_id", ["kemar~p102", "kemar~p2", "kemar~p1050"])
def test_perturbation_keeps_cues_monotonic_and_scales_them(head_id):
    """ITD rises over -80..80 degrees; the broadband ILD rises wherever KEMAR's does (-65..65:
    KEMAR's own ILD peaks near 70 degrees and falls beyond, the acoustic bright spot)."""
    az = np.arange(-80, 81, 5)
    itd, ild = cues(heads.load_head(head_id, SR), az)
    k_itd, k_ild = cues(heads.load_head("kemar", SR), az)
    assert np.all(np.diff(itd) > 0), itd
    inner = np.abs(az) <= 65
    assert np.all(np.diff(ild[inner]) > 0) and np.all(np.diff(k_ild[inner]) > 0), ild
    p = heads.describe_head(head_id)
    np.testing.assert_allclose(itd[-1] / k_itd[-1], p["itd_scale"], rtol=0.05)
    right = (az >= 30) & (az <= 65)
    assert abs(np.mean(ild[right] / k_ild[right]) - p["ild_scale"]) < 0.2


@needs_kemar
@pytest.mark.parametrize("head_id", ["kemar~p2", "sphere~s2"])
def test_48k_heads_keep_their_cues(head_id):
    h16, h48 = heads.load_head(head_id, 16000), heads.load_head(head_id, 48000)
    assert h48.sample_rate == 48000 and abs(h48.n_taps / h16.n_taps - 3) < 0.05
    itd16, _ = cues(h16, [-60, -30, 30, 60])
    itd48, ild48 = cues(h48, [-60, -30, 30, 60])
    np.testing.assert_allclose(itd48, itd16, atol=0.03e-3)
    assert np.all(np.sign(ild48) == [-1, -1, 1, 1])


@needs_kemar
def test_sphere_level_matches_kemar():
    """The frontal power gain over 0-8 kHz, mean |H(f)|^2, is KEMAR's for every head kind."""
    def front_power(h):
        i = int(np.argmin(np.abs(h.azimuth_deg) + np.abs(h.elevation_deg)))
        spec = np.fft.rfft(h.hrirs[i].astype(np.float64), 4 * h.n_taps, axis=-1)
        band = np.fft.rfftfreq(4 * h.n_taps, 1.0 / h.sample_rate) <= 8000
        return np.mean(np.abs(spec[:, band]) ** 2)
    assert front_power(heads.load_head("kemar", SR)) == pytest.approx(heads.KEMAR_FRONT_POWER_GAIN, rel=0.03)
    assert front_power(heads.load_head("sphere~s5", SR)) == pytest.approx(heads.KEMAR_FRONT_POWER_GAIN, rel=0.03)


def test_interaural_cues_of_a_known_pair():
    """Right ear 4 samples earlier and 6 dB louder: ITD +4/sr, ILD +6 dB; batches too."""
    n, sr = 64, 16000
    left, right = np.zeros(n), np.zeros(n)
    left[20], right[16] = 0.5, 1.0
    itd, ild = interaural_cues(np.stack([left, right]), sr)
    assert itd == pytest.approx(4 / sr, abs=1e-6) and ild == pytest.approx(6.02, abs=0.01)
    itd_b, ild_b = interaural_cues(np.stack([np.stack([left, right]), np.stack([right, left])]), sr)
    np.testing.assert_allclose(itd_b, [4 / sr, -4 / sr], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, n_taps >= 8\)"):
        interaural_cues(np.zeros((3, 64)), sr)
    with pytest.raises(ValueError, match="silent ear"):
        interaural_cues(np.stack([left, np.zeros(n)]), sr)


@needs_kemar
def test_perturb_hrirs_validates_its_parameters():
    base = heads.load_head("kemar", SR)
    knots = [100.0, 1000.0]
    with pytest.raises(ValueError, match="itd_scale in"):
        heads.perturb_hrirs(base, 3.0, 1.0, knots, [0, 0], [0, 0])
    with pytest.raises(ValueError, match="colour_knots_hz must be"):
        heads.perturb_hrirs(base, 1.0, 1.0, knots, [0, 0, 0], [0, 0])
    # The identity perturbation gives KEMAR back (up to the FFT round trip).
    same = heads.perturb_hrirs(base, 1.0, 1.0, knots, [0, 0], [0, 0])
    np.testing.assert_allclose(same.hrirs, base.hrirs, atol=1e-5 * np.abs(base.hrirs).max())
