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
from streambin.train.losses import mono_side_specs, newest_frames_side_loss, side_loss
from streambin.train.recipes import get_recipe

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
    m = torch.complex(mono[:, 0, :256], mono[:, 1, :256])
    d = torch.complex(side[:, 0, :256], side[:, 1, :256])
    ratio = d / m
    exact[..., 60:63] = torch.stack([ratio.real, ratio.imag], dim=1)[..., 60:63]
    assert float(newest_frames_side_loss(exact, mono, side, 3, 1)) < 1e-8 < float(side_loss(exact, mono, side))
    for frames, lookahead in ((0, 1), (3, -1), (60, 5)):
        with pytest.raises(ValueError, match="frames \\+ lookahead <= T"):
            newest_frames_side_loss(mask, mono, side, frames, lookahead)


def _tiny(**recipes):
    config = Config(recipe="mono2binaural")
    config.model.ngf = 4
    config.model.visual_size = (32, 64)
    config.train.stft_framing = "stream"
    for k, v in recipes.items():
        setattr(config.recipes, k, v)
    return config.validate()


def test_the_step_scores_stream_framed_spectrograms_and_adds_the_newest_frames_term():
    config = _tiny(newest_frames_weight=2.0, newest_frames=2, newest_frames_lookahead=0)
    recipe = get_recipe(config.recipe)(config)
    assert recipe.loss_names == ("side", "side_newest")
    torch.manual_seed(0)
    generator = build_generator(config)
    step = recipe.make_step_module(generator)
    g = torch.Generator().manual_seed(2)
    audio = 0.1 * torch.randn(2, 2, CROP, generator=g)
    frames = torch.randint(0, 255, (2, 32, 64, 3), dtype=torch.uint8, generator=g)
    step.eval()
    with torch.no_grad():
        out = step(audio, frames)
        mono, side = mono_side_specs(audio, config.audio, "stream")
        mask = generator.audio_outputs(mono, generator.feature_from_map(generator.trunk_map(frames)))["side"]
    assert float(out["side"]) == pytest.approx(float(side_loss(mask, mono, side)), rel=1e-5)
    assert float(out["side_newest"]) == pytest.approx(float(newest_frames_side_loss(mask, mono, side, 2, 0)), rel=1e-5)
    assert float(out["total"]) == pytest.approx(float(out["side"] + 2.0 * out["side_newest"]), rel=1e-6)
    centered_mono, _ = mono_side_specs(audio, config.audio)
    assert not torch.allclose(centered_mono[..., -1], mono[..., -1], atol=1e-3)


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
    with pytest.raises(ConfigError, match="must be <= audio.context_frames"):
        _tiny(newest_frames_weight=1.0, newest_frames=60, newest_frames_lookahead=5)
    with pytest.raises(ConfigError, match="newest_frames must be"):
        _tiny(newest_frames=0)
