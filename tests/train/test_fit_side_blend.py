"""The side blend's least-squares fit: normal equations per bin or pooled over bands, and the
masks' parts in phase with the mono and in quadrature."""

import numpy as np
import pytest

from streambin.train.fit_side_blend import SHARED_TO_PARTS, BlendNormalEquations, octave_bands, split_parts


def test_octave_bands_are_consecutive_and_a_third_of_an_octave_wide():
    bands = octave_bands(257, 16000, 3)
    assert bands.shape == (257,) and bands[0] == 0
    assert set(np.diff(bands)) <= {0, 1} and bands[-1] == len(np.unique(bands)) - 1
    freqs = np.arange(257) * 31.25
    for b in range(1, bands[-1] + 1):   # each band above the first spans at most a third of an octave
        f = freqs[bands == b]
        assert f.max() / f.min() < 2 ** (1 / 3) + 1e-9
    assert np.all(bands[freqs <= 62.5] == 0)
    with pytest.raises(ValueError, match="per_octave >= 1"):
        octave_bands(257, 16000, 0)


def _terms(rng, bins=40, frames=300, k=3):
    return [rng.standard_normal((bins, frames)) + 1j * rng.standard_normal((bins, frames)) for _ in range(k)]


def test_solve_recovers_known_weights_per_bin_and_per_band(rng):
    bins = 40
    true_w = np.stack([np.linspace(0.2, 0.9, bins), np.full(bins, -0.3), np.linspace(1.0, 0.0, bins)], axis=1)
    normal = BlendNormalEquations(bins, n_terms=3)
    for _ in range(3):   # clips; the truth has one frame more than the terms (cut to the common frames)
        terms = _terms(rng, bins)
        truth = np.einsum("fk,kft->ft", true_w, np.stack(terms))
        truth = np.concatenate([truth, np.ones((bins, 1))], axis=1)
        normal.add(truth, terms)
    w = np.stack(normal.solve(), axis=1)
    np.testing.assert_allclose(w, true_w, atol=1e-9)
    assert normal.residual(*w.T) == pytest.approx(0.0, abs=1e-9)
    assert normal.residual(*np.zeros((3, bins))) == pytest.approx(1.0)
    # Pooled over bands: one weight per band, the bins' least-squares compromise (here their mean,
    # the terms being white and alike in power).
    bands = np.repeat(np.arange(4), 10)
    wb = np.stack(normal.solve(bands), axis=1)
    for b in range(4):
        np.testing.assert_allclose(wb[bands == b], wb[bands == b][:1].repeat(10, axis=0))
        np.testing.assert_allclose(wb[bands == b][0], true_w[bands == b].mean(axis=0), atol=0.02)
    with pytest.raises(ValueError, match=r"expected 3 terms"):
        normal.add(truth, terms[:2])
    with pytest.raises(ValueError, match=r"bands must be \(40,\)"):
        normal.solve(np.zeros(3, int))


def test_equations_of_two_sets_add_up_to_the_pooled_ones(rng):
    bins = 10
    a, b, both = BlendNormalEquations(bins), BlendNormalEquations(bins), BlendNormalEquations(bins)
    for target in (a, b):
        terms = _terms(rng, bins, k=2)
        truth = 0.5 * terms[0] + rng.standard_normal(terms[0].shape)
        target.add(truth, terms)
        both.add(truth, terms)
    a += b
    np.testing.assert_allclose(a.gram, both.gram)
    np.testing.assert_allclose(np.stack(a.solve()), np.stack(both.solve()))
    assert a.energy == pytest.approx(both.energy)


def test_split_parts_separates_level_and_time_difference(rng):
    mono = rng.standard_normal((5, 7)) + 1j * rng.standard_normal((5, 7))
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    mono[0, 0] = 0.0
    in_phase, quadrature = split_parts((a + 1j * b) * mono, mono)
    np.testing.assert_allclose(in_phase, a * mono, atol=1e-12)
    np.testing.assert_allclose(quadrature, 1j * b * mono, atol=1e-12)
    side = (a + 1j * b) * mono
    # only the in-phase part makes one ear louder than the other
    level = np.abs(mono + side) ** 2 - np.abs(mono - side) ** 2
    np.testing.assert_allclose(np.abs(mono + in_phase) ** 2 - np.abs(mono - in_phase) ** 2, level, atol=1e-9)
    np.testing.assert_allclose(np.abs(mono + quadrature) ** 2 - np.abs(mono - quadrature) ** 2, 0.0, atol=1e-9)
    side[0, 0] = 2.0 + 1.0j          # where the mono is zero the side is all quadrature
    assert split_parts(side, mono)[0][0, 0] == 0 and split_parts(side, mono)[1][0, 0] == side[0, 0]


def test_tied_equations_are_the_shared_forms_fit(rng):
    """Tying the four parts' weights in pairs gives the fit of the two whole sides."""
    mono = rng.standard_normal((9, 40)) + 1j * rng.standard_normal((9, 40))
    sides = [(rng.standard_normal((9, 40)) + 1j * rng.standard_normal((9, 40))) * mono for _ in range(2)]
    truth = 0.7 * sides[0] + 0.2 * sides[1] + 0.1 * (rng.standard_normal((9, 40)) + 1j * rng.standard_normal((9, 40)))
    parts, whole = BlendNormalEquations(9, 4), BlendNormalEquations(9, 2)
    parts.add(truth, [*split_parts(sides[0], mono), *split_parts(sides[1], mono)])
    whole.add(truth, sides)
    tied = parts.tied(SHARED_TO_PARTS)
    for got, want in zip(tied.solve(), whole.solve()):
        np.testing.assert_allclose(got, want, rtol=1e-9)
    assert tied.residual(*whole.solve()) == pytest.approx(whole.residual(*whole.solve()), rel=1e-9)
    assert parts.residual(*parts.solve()) <= whole.residual(*whole.solve()) + 1e-12   # more freedom, no worse
    with pytest.raises(ValueError, match=r"tie must be \(4, k\)"):
        parts.tied(np.ones((2, 2)))

