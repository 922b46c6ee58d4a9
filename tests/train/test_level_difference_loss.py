"""The optional left/right level-difference loss (recipes.level_difference_weight)."""

import math

import pytest
import torch

from streambin.train.build import build_generator
from streambin.train.config import AudioConfig, Config
from streambin.train.losses import level_difference_loss, mono_side_specs
from streambin.train.recipes import get_recipe
from tests.train.synthetic import oracle_side_mask


def _panned(gain_left, gain_right, n=10080, seed=0):
    """(1, 2, n) white noise at gains (left, right), in phase."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n, generator=g)
    return torch.stack([gain_left * x, gain_right * x])[None]


def test_oracle_mask_scores_zero_and_no_mask_scores_the_true_level_difference():
    mono, side = mono_side_specs(_panned(0.8, 0.2), AudioConfig())
    oracle = oracle_side_mask(mono, side)
    assert float(level_difference_loss(oracle, mono, side)) < 1e-3
    # A zero side mask predicts equal ears: the error is the whole level difference, which for
    # in-phase gains 0.8 / 0.2 is ln(0.8^2 / 0.2^2) in every band without the floor, and with
    # it (white noise: about equal power per band) ln((0.64 + e) / (0.04 + e)), e = 1e-3 * 0.34.
    zero = torch.zeros_like(oracle)
    assert float(level_difference_loss(zero, mono, side, floor=0.0)) == pytest.approx(2 * math.log(4.0), rel=1e-4)
    e = 1e-3 * 0.5 * (0.64 + 0.04)
    assert float(level_difference_loss(zero, mono, side)) == pytest.approx(math.log((0.64 + e) / (0.04 + e)), rel=1e-3)


def test_the_loss_grows_as_the_level_difference_shrinks():
    mono, side = mono_side_specs(_panned(0.3, 0.7, seed=1), AudioConfig())
    oracle = oracle_side_mask(mono, side)
    scores = [float(level_difference_loss(s * oracle, mono, side)) for s in (1.0, 0.8, 0.5, 0.0)]
    assert scores == sorted(scores) and scores[0] < 1e-3 < scores[1]


def test_bands_must_divide_the_mask_bins():
    mono, side = mono_side_specs(_panned(0.5, 0.5), AudioConfig())
    with pytest.raises(ValueError, match="n_bands must divide"):
        level_difference_loss(torch.zeros(1, 2, 256, mono.shape[-1]), mono, side, n_bands=7)


def test_mono2binaural_step_adds_the_weighted_term():
    config = Config(recipe="mono2binaural")
    config.model.ngf = 4
    config.model.visual_size = (32, 64)
    config.recipes.level_difference_weight = 0.5
    config.validate()
    recipe = get_recipe(config.recipe)(config)
    assert "level_difference" in recipe.loss_names
    torch.manual_seed(0)
    step = recipe.make_step_module(build_generator(config))
    audio = torch.cat([_panned(0.9, 0.1, seed=2), _panned(0.2, 0.6, seed=3)])
    frames = torch.randint(0, 255, (2, 32, 64, 3), dtype=torch.uint8)
    out = step(audio, frames)
    assert float(out["level_difference"].detach()) > 0
    assert torch.allclose(out["total"], out["side"] + 0.5 * out["level_difference"])


def test_negative_weight_is_refused():
    config = Config(recipe="mono2binaural")
    config.recipes.level_difference_weight = -1.0
    with pytest.raises(Exception, match="level_difference_weight"):
        config.validate()
