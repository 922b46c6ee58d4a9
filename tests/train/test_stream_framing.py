"""Training with the engine's framing: ``train.stft_framing = "stream"`` and the side loss on the
frames the engine plays (``recipes.newest_frames_weight``). That the stream framing gives the
engine's own network input is in tests/test_signal_contract.py."""

import numpy as np
import pytest
import torch

from streambin import dsp
from streambin import signal_contract as sc
from streambin.train.build import build_generator
from streambin.train.config import AudioConfig, Config, ConfigError
from streambin.train.losses import (level_difference_loss, mono_side_specs, newest_frames_level_difference_loss,
                                   newest_frames_side_loss, side_loss)
from streambin.train.recipes import get_recipe
from tests.train.synthetic import oracle_side_mask

N_FFT, WIN, HOP, T = 512, 400, 160, 64
CROP = (T - 1) * HOP


def test_stream_framing_is_the_engines_causal_framing_of_the_crop():
    """Frame t of the stream-framed crop is the streaming STFT's frame t - 1 (the crop's last
    window ends at its last sample), for every frame whose window lies inside the crop; only the
    oldest frames differ, by what fills the samples before the crop."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(CROP).astype(np.float32))[None]
    ours = sc.stft_torch(x, N_FFT, HOP, WIN, framing="stream")[0].numpy()     # (257, T)
    centered = sc.stft_torch(x, N_FFT, HOP, WIN)[0].numpy()
    assert ours.shape == centered.shape == (N_FFT // 2 + 1, T)
    stream = dsp.stft(x[0].numpy(), N_FFT, WIN, HOP, framing="stream").T        # (257, T - 1)
    inside = slice(WIN // HOP + 1, T)                # frame t's window starts at t * HOP - WIN
    np.testing.assert_allclose(ours[:, inside], stream[:, inside.start - 1:], rtol=1e-4, atol=1e-4)


def test_stream_framing_refuses_unknown_framings_and_crops_too_short_to_reflect():
    with pytest.raises(ValueError, match="framing must be one of"):
        sc.stft_torch(torch.zeros(1, CROP), N_FFT, HOP, WIN, framing="causal")
    with pytest.raises(ValueError, match="too short to reflect"):
        sc.stft_torch(torch.zeros(1, 320), N_FFT, HOP, WIN, framing="stream")


def _specs(seed=0, framing="centered"):
    g = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(2, 2, CROP, generator=g)
    return mono_side_specs(audio, AudioConfig(), framing)


def test_newest_frames_loss_is_the_side_loss_of_those_frames():
    mono, side = _specs()
    mask = 0.3 * torch.randn(2, 2, 256, T, generator=torch.Generator().manual_seed(1))
    got = newest_frames_side_loss(mask, mono, side, frames=3, lookahead=1)
    want = side_loss(mask[..., 60:63], mono[..., 60:63], side[..., 60:63])
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    # a mask that is exact on those frames alone scores 0 there, not over the crop
    exact = mask.clone()
    exact[..., 60:63] = oracle_side_mask(mono, side)[..., 60:63]
    assert float(newest_frames_side_loss(exact, mono, side, 3, 1)) < 1e-8 < float(side_loss(exact, mono, side))
    for frames, lookahead in ((0, 1), (3, -1), (60, 5)):
        with pytest.raises(ValueError, match="frames \\+ lookahead <= T"):
            newest_frames_side_loss(mask, mono, side, frames, lookahead)


def test_newest_frames_level_difference_loss_scores_only_those_frames():
    """The term is the level-difference loss of the played frames: a mask exact on them (and
    wrong elsewhere) scores zero, and any change outside them leaves it unchanged."""
    g = torch.Generator().manual_seed(3)
    mono = torch.randn(2, 2, 257, 64, generator=g)
    side = 0.5 * torch.randn(2, 2, 257, 64, generator=g)
    mask = 0.3 * torch.randn(2, 2, 256, 64, generator=g)
    span = slice(60, 63)
    expected = level_difference_loss(mask[..., span], mono[..., span], side[..., span])
    assert float(newest_frames_level_difference_loss(mask, mono, side, 3, 1)) == pytest.approx(float(expected))
    changed = mask.clone()
    changed[..., :60] = 5.0
    changed[..., 63] = -5.0
    assert float(newest_frames_level_difference_loss(changed, mono, side, 3, 1)) == pytest.approx(float(expected))
    exact = changed.clone()
    exact[..., span] = oracle_side_mask(mono, side)[..., span]
    assert float(newest_frames_level_difference_loss(exact, mono, side, 3, 1)) < 1e-5
    assert float(level_difference_loss(exact, mono, side)) > 0.1
    with pytest.raises(ValueError, match="frames \\+ lookahead <= T"):
        newest_frames_level_difference_loss(mask, mono, side, 64, 1)


def test_the_squared_level_difference_error_squares_each_bands_difference():
    """With ``error="squared"`` the term is the mean square of the band differences whose mean
    absolute value the default scores: at least the default's square, zero for an exact mask, and
    passed on by the played frames' term."""
    g = torch.Generator().manual_seed(5)
    mono = torch.randn(2, 2, 257, 64, generator=g)
    side = 0.5 * torch.randn(2, 2, 257, 64, generator=g)
    mask = 0.3 * torch.randn(2, 2, 256, 64, generator=g)
    absolute = level_difference_loss(mask, mono, side)
    squared = level_difference_loss(mask, mono, side, error="squared")
    # mean(x^2) >= mean(|x|)^2, equal only when every band's error has the same size
    assert float(squared) >= float(absolute) ** 2 - 1e-6
    assert float(squared) != pytest.approx(float(absolute))
    exact = oracle_side_mask(mono, side)
    assert float(level_difference_loss(exact, mono, side, error="squared")) < 1e-8
    span = slice(60, 63)
    assert float(newest_frames_level_difference_loss(mask, mono, side, 3, 1, "squared")) == pytest.approx(
        float(level_difference_loss(mask[..., span], mono[..., span], side[..., span], error="squared")))
    with pytest.raises(ValueError, match="error must be one of"):
        level_difference_loss(mask, mono, side, error="huber")


def _tiny(**recipes):
    config = Config(recipe="mono2binaural")
    config.model.ngf = 4
    config.model.visual_size = (32, 64)
    config.train.stft_framing = "stream"
    for k, v in recipes.items():
        setattr(config.recipes, k, v)
    return config.validate()


def _run_step(config, expected_losses, seed):
    """The recipe's step on a random batch, in eval mode, and what it should have scored:
    ``(its outputs, the stream-framed mono and side spectrograms, the generator's side mask)``."""
    recipe = get_recipe(config.recipe)(config)
    assert recipe.loss_names == expected_losses
    torch.manual_seed(0)
    generator = build_generator(config)
    step = recipe.make_step_module(generator)
    g = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(2, 2, CROP, generator=g)
    frames = torch.randint(0, 255, (2, 32, 64, 3), dtype=torch.uint8, generator=g)
    step.eval()
    with torch.no_grad():
        out = step(audio, frames)
        mono, side = mono_side_specs(audio, config.audio, "stream")
        mask = generator.audio_outputs(mono, generator.feature_from_map(generator.trunk_map(frames)))["side"]
    centered_mono, _ = mono_side_specs(audio, config.audio)
    assert not torch.allclose(centered_mono[..., -1], mono[..., -1], atol=1e-3)
    return out, mono, side, mask


def test_the_step_scores_stream_framed_spectrograms_and_adds_the_newest_frames_term():
    config = _tiny(newest_frames_weight=2.0, newest_frames=2, newest_frames_lookahead=0)
    out, mono, side, mask = _run_step(config, ("side", "side_newest"), seed=2)
    assert float(out["side"]) == pytest.approx(float(side_loss(mask, mono, side)), rel=1e-5)
    assert float(out["side_newest"]) == pytest.approx(float(newest_frames_side_loss(mask, mono, side, 2, 0)), rel=1e-5)
    assert float(out["total"]) == pytest.approx(float(out["side"] + 2.0 * out["side_newest"]), rel=1e-6)
    assert "level_difference_newest" not in out


def test_the_step_adds_the_played_frames_level_difference_term():
    config = _tiny(newest_frames_level_difference_weight=0.5, newest_frames=3, newest_frames_lookahead=1)
    out, mono, side, mask = _run_step(config, ("side", "level_difference_newest"), seed=4)
    expected = newest_frames_level_difference_loss(mask, mono, side, 3, 1)
    assert float(out["side"]) == pytest.approx(float(side_loss(mask, mono, side)), rel=1e-5)
    assert float(out["level_difference_newest"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["total"]) == pytest.approx(float(out["side"] + 0.5 * expected), rel=1e-5)
    assert "side_newest" not in out
    config.recipes.level_difference_error = "squared"
    config.recipes.level_difference_weight = 0.3
    out, mono, side, mask = _run_step(config, ("side", "level_difference", "level_difference_newest"), seed=4)
    squared = newest_frames_level_difference_loss(mask, mono, side, 3, 1, "squared")
    assert float(out["level_difference_newest"]) == pytest.approx(float(squared), rel=1e-5)
    whole = level_difference_loss(mask, mono, side, error="squared")
    assert float(out["level_difference"]) == pytest.approx(float(whole), rel=1e-5)
    assert float(squared) != pytest.approx(float(expected), rel=1e-3)


def test_config_refuses_the_options_where_they_do_not_apply():
    with pytest.raises(ConfigError, match="train.stft_framing must be one of"):
        _tiny().train.__class__(stft_framing="causal").validate()
    config = Config(recipe="sagm")
    config.model.arch = "unet"
    config.train.stft_framing = "stream"
    with pytest.raises(ConfigError, match="stft_framing 'stream' is implemented for"):
        config.validate()
    config = Config(recipe="apnet")
    config.model.arch = "apnet"
    config.recipes.newest_frames_weight = 1.0
    with pytest.raises(ConfigError, match="newest_frames_weight > 0 is implemented for mono2binaural"):
        config.validate()
    config.recipes.newest_frames_weight = 0.0
    config.recipes.newest_frames_level_difference_weight = 1.0
    with pytest.raises(ConfigError, match="newest_frames_level_difference_weight > 0 is implemented for mono2binaural"):
        config.validate()
    with pytest.raises(ConfigError, match="must be <= audio.context_frames"):
        _tiny(newest_frames_level_difference_weight=1.0, newest_frames=64, newest_frames_lookahead=1)
    with pytest.raises(ConfigError, match="newest_frames_level_difference_weight must be"):
        _tiny(newest_frames_level_difference_weight=-1.0)
    with pytest.raises(ConfigError, match="must be <= audio.context_frames"):
        _tiny(newest_frames_weight=1.0, newest_frames=60, newest_frames_lookahead=5)
    with pytest.raises(ConfigError, match="recipes.level_difference_error must be one of"):
        _tiny(level_difference_error="l1")
    with pytest.raises(ConfigError, match="newest_frames must be"):
        _tiny(newest_frames=0)
