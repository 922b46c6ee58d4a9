"""Training through mirror averaging (recipes.mirror_averaged_loss): the loss scores the masks the
engine plays when the bundle mirror-averages."""

import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from streambin.train.build import build_generator
from streambin.train.config import Config, ConfigError
from streambin.train.losses import level_difference_loss, mono_side_specs, side_loss
from streambin.train.recipes import get_recipe
from streambin.train.recipes.parts import mirror_averaged_outputs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VISUAL = (32, 64)


def _config(recipe="mono2binaural", **recipes):
    config = Config(recipe=recipe)
    config.model.ngf = 4
    config.model.visual_size = VISUAL
    config.model.arch = get_recipe(recipe).arch
    for key, value in recipes.items():
        setattr(config.recipes, key, value)
    return config.validate()


def _batch(seed=0, b=2, n=10080):
    g = torch.Generator().manual_seed(seed)
    mono = 0.1 * torch.randn(b, n, generator=g)
    gains = torch.rand(b, 2, 1, generator=g)
    audio = gains * mono[:, None]                              # (B, 2, n) panned, in phase
    frames = torch.randint(0, 255, (b, *VISUAL, 3), dtype=torch.uint8, generator=g)
    return audio, frames


def test_outputs_average_with_the_ears_swapped():
    own = {"side": torch.randn(2, 2, 8, 4), "left_right": torch.randn(2, 2, 2, 8, 4)}
    mirrored = {"side": torch.randn(2, 2, 8, 4), "left_right": torch.randn(2, 2, 2, 8, 4)}
    out = mirror_averaged_outputs(own, mirrored)
    assert torch.allclose(out["side"], 0.5 * (own["side"] - mirrored["side"]))
    assert torch.allclose(out["left_right"][:, 0], 0.5 * (own["left_right"][:, 0] + mirrored["left_right"][:, 1]))
    assert torch.allclose(out["left_right"][:, 1], 0.5 * (own["left_right"][:, 1] + mirrored["left_right"][:, 0]))
    # A network that is already mirror-consistent is left as it is.
    consistent = mirror_averaged_outputs(own, {"side": -own["side"], "left_right": own["left_right"].flip(1)})
    assert torch.allclose(consistent["side"], own["side"]) and torch.allclose(consistent["left_right"], own["left_right"])
    with pytest.raises(ValueError, match="no mirror-averaging rule"):
        mirror_averaged_outputs({"rir": torch.zeros(1)}, {"rir": torch.zeros(1)})
    with pytest.raises(ValueError, match="same keys"):
        mirror_averaged_outputs({"side": own["side"]}, mirrored)


def test_the_step_scores_the_masks_the_mirror_averaging_generator_exports():
    config = _config(mirror_averaged_loss=True, level_difference_weight=0.3)
    torch.manual_seed(0)
    step = get_recipe(config.recipe)(config).make_step_module(build_generator(config)).eval()
    exported_config = _config()
    exported_config.model.mirror_average = True
    exported = build_generator(exported_config.validate()).eval()
    exported.load_state_dict(step.generator.state_dict())
    audio, frames = _batch()
    mono, side = mono_side_specs(audio, config.audio)
    with torch.no_grad():
        losses = step(audio, frames)
        masks = exported.audio(mono, exported.visual(frames))[:, 0, :, :256]   # (B, 2, 256, T) side mask
        plain = step.generator.audio_outputs(mono, step.generator.visual(frames))["side"]
    assert torch.allclose(losses["side"], side_loss(masks, mono, side), rtol=1e-5, atol=1e-7)
    assert torch.allclose(losses["level_difference"], level_difference_loss(masks, mono, side), rtol=1e-5, atol=1e-7)
    # ... and not the plain network's masks (a random network is far from mirror-consistent).
    assert not torch.allclose(losses["side"], side_loss(plain, mono, side), rtol=1e-3)


@pytest.mark.parametrize("mirror_averaged", [True, False])
def test_mirroring_frame_ears_and_boxes_together_leaves_the_loss_unchanged_only_when_averaged(mirror_averaged):
    config = _config(mirror_averaged_loss=mirror_averaged, level_difference_weight=0.3, localisation_weight=1.0)
    torch.manual_seed(1)
    step = get_recipe(config.recipe)(config).make_step_module(build_generator(config)).train()
    audio, frames = _batch(seed=3, b=4)
    source_x = torch.tensor([[0.2, -1.0], [0.71, 0.33], [0.9, -1.0], [-1.0, -1.0]])
    mirrored_x = torch.where(source_x >= 0, 1.0 - source_x, source_x)
    with torch.no_grad():
        a = step(audio, frames, source_x)
        b = step(audio.flip(1), frames.flip(2), mirrored_x)
    for key in ("side", "level_difference", "localisation", "total"):
        same = torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-7)
        # Averaged: the batch of 2B holds the same (frame, target) pairs in the other order, so
        # even training-mode batch norm sees the same statistics. Plain: nothing makes it equal.
        assert same == mirror_averaged, (key, float(a[key]), float(b[key]))


def test_config_refuses_recipes_without_the_rule_and_non_booleans():
    with pytest.raises(ConfigError, match="mirror_averaged_loss is implemented for"):
        _config(recipe="sagm", mirror_averaged_loss=True)
    with pytest.raises(ConfigError, match="mirror_averaged_loss"):
        _config(mirror_averaged_loss="yes")
    assert _config(recipe="apnet", mirror_averaged_loss=True).recipes.mirror_averaged_loss is True


def test_apnet_step_trains_through_the_average():
    config = _config(recipe="apnet", mirror_averaged_loss=True)
    torch.manual_seed(2)
    step = get_recipe(config.recipe)(config).make_step_module(build_generator(config)).train()
    audio, frames = _batch(seed=4)
    losses = step(audio, frames)
    losses["total"].backward()
    grads = [p.grad for p in step.generator.trunk.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert math.isfinite(float(losses["total"].detach()))


@pytest.fixture(scope="module")
def sim_root(make_tiny_sim):
    return make_tiny_sim("simbin_mirror_loss", seconds=1.5, seed=5, rooms=False)


def test_cli_trains_and_validates_through_the_average(sim_root, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "streambin.train", "--recipe", "mono2binaural", "--data", str(sim_root),
                          "--out", str(out), "--max-steps", "2", "--no-progress", "--set", "model.ngf=4",
                          "--set", f"model.visual_size=[{VISUAL[0]}, {VISUAL[1]}]", "--set", "train.batch_size=4",
                          "--set", "train.num_workers=0", "--set", "train.log_every_steps=1",
                          "--set", "recipes.mirror_averaged_loss=true", "--set", "recipes.localisation_weight=1.0"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["phase"] for r in rows] == ["train", "train", "val"]
    assert all(math.isfinite(float(r["total"])) and math.isfinite(float(r["localisation"])) for r in rows)
    assert "mirror_averaged_loss: true" in (out / "config.yaml").read_text()
    # --validate-only on the saved state scores what the run's own validation logged.
    res = subprocess.run([sys.executable, "-m", "streambin.train", "--resume", str(out / "last.pt"), "--out", str(out),
                          "--validate-only", "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    scored = json.loads(res.stdout.strip().splitlines()[-1])
    assert scored["step"] == 2 and scored["split"] == "val" and scored["items"] > 0
    for key in ("total", "side", "localisation"):
        assert scored["val"][key] == pytest.approx(float(rows[-1][key]), rel=1e-5)
    assert len(list(csv.DictReader(open(out / "log.csv")))) == 3   # nothing trained, nothing logged


def test_validate_only_needs_weights():
    res = subprocess.run([sys.executable, "-m", "streambin.train", "--recipe", "mono2binaural", "--validate-only"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--validate-only needs the weights to score" in res.stderr
