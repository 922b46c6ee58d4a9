"""streambin.train.average_head: the least-squares mid-to-side filter and its antisymmetric half."""

import numpy as np
import pytest

from streambin.train.average_head import antisymmetric_half, side_filter_table
from streambin.train.sim.heads import load_head


def test_one_head_filter_maps_its_own_mid_to_its_own_side():
    grid, table = side_filter_table(["sphere~s3"], step_deg=15.0)
    assert grid.tolist() == list(np.arange(-90.0, 91.0, 15.0)) and table.shape == (13, 257)
    head = load_head("sphere~s3", 16000)
    h = np.fft.rfft(head.interpolate(30.0, 0.0).astype(np.float64), 512)
    mid, side = 0.5 * (h[0] + h[1]), 0.5 * (h[0] - h[1])
    ok = np.abs(mid) > 1e-3 * np.abs(mid).max()
    np.testing.assert_allclose((table[grid.tolist().index(30.0)] * mid)[ok], side[ok], rtol=1e-6, atol=1e-9)
    # a spherical head is left-right symmetric: its side changes sign with the azimuth
    np.testing.assert_allclose(table[::-1][ok[None].repeat(13, 0)], -table[ok[None].repeat(13, 0)], atol=1e-6)


def test_antisymmetric_half_keeps_the_part_that_changes_sign():
    grid = np.arange(-90.0, 90.1, 45.0)
    rng = np.random.default_rng(0)
    table = rng.standard_normal((5, 4)) + 1j * rng.standard_normal((5, 4))
    half_grid, half = antisymmetric_half(grid, table)
    assert half_grid.tolist() == [0.0, 45.0, 90.0]
    np.testing.assert_allclose(half[0], 0.0)
    np.testing.assert_allclose(half[1], 0.5 * (table[3] - table[1]))
    np.testing.assert_allclose(half[2], 0.5 * (table[4] - table[0]))
    with pytest.raises(ValueError, match="symmetric about 0"):
        antisymmetric_half(np.arange(0.0, 90.1, 45.0), table[:3])
    with pytest.raises(ValueError, match="step_deg must divide 90"):
        side_filter_table(["sphere~s3"], step_deg=7.0)
    with pytest.raises(ValueError, match="at least one head"):
        side_filter_table([])
