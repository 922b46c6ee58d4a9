"""streambin.camera: the pinhole geometry, the field-of-view check and the diagonal-to-horizontal
conversion a webcam's data sheet needs."""

import numpy as np
import pytest

from streambin.camera import azimuth_to_column, check_hfov_deg, column_to_azimuth, hfov_from_diagonal


def test_the_frame_edges_are_half_the_field_of_view_off_centre():
    for hfov in (60.0, 90.0, 100.0):
        np.testing.assert_allclose(column_to_azimuth([0.0, 224.0, 448.0], 448, hfov), [-hfov / 2, 0.0, hfov / 2])
        np.testing.assert_allclose(azimuth_to_column(column_to_azimuth(100.0, 448, hfov), 448, hfov), 100.0)


def test_field_of_view_check_names_the_value_and_the_range():
    assert check_hfov_deg(70) == 70.0 and isinstance(check_hfov_deg(np.float32(70.5)), float)
    for bad in (0, 180, -5, float("nan"), float("inf"), "70", None, True):
        with pytest.raises(ValueError, match=r"lens must be a horizontal field of view in degrees, a number in "
                                             r"\(0, 180\)"):
            check_hfov_deg(bad, "lens")


def test_diagonal_field_of_view_becomes_the_horizontal_one():
    # a square-pixel frame's half-diagonal and half-width lie on one image plane: tan scales by w / d
    assert hfov_from_diagonal(78.0, 1920, 1080) == pytest.approx(70.43, abs=0.01)
    assert hfov_from_diagonal(78.0, 640, 480) == pytest.approx(65.87, abs=0.01)
    assert hfov_from_diagonal(90.0, 1, 1e-9) == pytest.approx(90.0)       # a one-row strip: the diagonal
    with pytest.raises(ValueError, match="diagonal_deg must be a diagonal field of view"):
        hfov_from_diagonal(180.0, 640, 480)
    for w, h in ((0, 480), (640, -1), (True, 480)):
        with pytest.raises(ValueError, match="width and height must be positive pixel counts"):
            hfov_from_diagonal(78.0, w, h)
