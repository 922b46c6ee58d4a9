"""The auxiliary localisation loss (recipes.localisation_weight) and training from --init weights."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from streambin.train.data import SimBinauralDataset
from streambin.train.recipes.parts import LocalisationHead, PositionOffsetHead

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VISUAL = (32, 64)


@pytest.fixture(scope="module")
def sim_root(make_tiny_sim):
    return make_tiny_sim("simbin_loc", seconds=1.5, seed=1, rooms=False)


def test_source_positions_follow_the_sidecar_and_the_flip(sim_root):
    ds = SimBinauralDataset(sim_root, "train", visual_size=VISUAL, flip_prob=0.5, seed=2, with_positions=True)
    plain = SimBinauralDataset(sim_root, "train", visual_size=VISUAL, flip_prob=0.5, seed=2)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert torch.equal(item["frame"], plain[i]["frame"])  # the option draws no extra randomness
        meta = json.loads((sim_root / "meta" / f"{item['clip']}.json").read_text())
        xs = item["source_x"].numpy()
        assert xs.shape == (3,) and xs.dtype == np.float32
        sounding = [s for s in meta["sources"] if not s.get("silent", False)]  # distractors are not sources
        n = len(sounding)
        assert np.all(xs[n:] == -1)
        # The frame the crop uses is unknown here, so check each centre against that source's
        # per-frame boxes: one of them must match.
        for j, src in enumerate(sounding):
            centres = np.array([(b[0] + b[2]) / 2 / meta["frame_width"] for b in src["bbox"]])
            if item["flipped"]:
                centres = 1 - centres
            assert np.min(np.abs(centres - xs[j])) < 1e-5
        seen.add(item["flipped"])
    assert seen == {True, False}


def test_localisation_head_targets_the_source_columns():
    head = LocalisationHead(channels=4)
    fmap = torch.randn(2, 4, 3, 5)
    source_x = torch.tensor([[0.05, 0.95, -1.0], [0.5, 0.52, -1.0]])
    logits = head.conv(fmap).mean(dim=2)[:, 0]
    target = torch.tensor([[1, 0, 0, 0, 1], [0, 0, 1, 0, 0]], dtype=torch.float32)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(head(fmap, source_x), expected)
    # Item weights: an item of weight 0 drops out, and the rest is the mean over the others.
    only_second = torch.nn.functional.binary_cross_entropy_with_logits(logits[1], target[1])
    assert torch.allclose(head(fmap, source_x, torch.tensor([0.0, 1.0])), only_second)
    assert torch.allclose(head(fmap, source_x, torch.ones(2)), expected)
    assert head(fmap, source_x, torch.zeros(2)).item() == 0.0
    for bad in (torch.ones(3), torch.tensor([1.0, -1.0]), torch.tensor([1.0, float("nan")])):
        with pytest.raises(ValueError, match="item_weight"):
            head(fmap, source_x, bad)


def test_silent_distractor_flag_follows_the_sidecar(sim_root):
    ds = SimBinauralDataset(sim_root, "train", visual_size=VISUAL, seed=2, with_positions=True)
    flags = []
    for i in range(len(ds)):
        item = ds[i]
        meta = json.loads((sim_root / "meta" / f"{item['clip']}.json").read_text())
        assert item["silent_distractors"].dtype == torch.bool
        flags.append(bool(item["silent_distractors"]))
        assert flags[-1] == any(s.get("silent", False) for s in meta["sources"])
    assert set(flags) == {True, False}  # the tiny set has scenes of both kinds
    # A blank frame shows nothing, so it shows no distractor either.
    blank = SimBinauralDataset(sim_root, "train", visual_size=VISUAL, seed=2, with_positions=True, blank_prob=1.0)
    assert not any(bool(blank[i]["silent_distractors"]) for i in range(len(blank)))


def test_distractor_scenes_can_be_left_out_of_the_localisation_losses():
    """With recipes.localisation_skip_distractor_scenes the localisation loss counts only the
    items whose picture shows no silent distractor (mirrored copies included); the audio loss
    counts all. The config refuses the option without the localisation loss."""
    from streambin.train.build import build_generator
    from streambin.train.config import ConfigError, load_config
    from streambin.train.recipes import get_recipe

    overrides = ["model.ngf=4", f"model.visual_size=[{VISUAL[0]}, {VISUAL[1]}]", "recipes.localisation_weight=1.0",
                 "recipes.mirror_averaged_loss=true"]
    cfg = load_config(None, overrides + ["recipes.localisation_skip_distractor_scenes=true"])
    recipe = get_recipe(cfg.recipe)(cfg)
    step = recipe.make_step_module(build_generator(cfg))
    torch.manual_seed(0)
    audio = torch.randn(2, 2, cfg.audio.crop_samples) * 0.1
    frames = torch.randint(0, 255, (2, *VISUAL, 3), dtype=torch.uint8)
    source_x = torch.tensor([[0.3, -1.0, -1.0], [0.8, -1.0, -1.0]])
    batch = {"source_x": source_x, "silent_distractors": torch.tensor([True, False])}
    inputs = recipe.step_inputs(batch, torch.device("cpu"))
    assert inputs["localisation_item_weight"].tolist() == [0.0, 1.0]
    step.eval()  # batch norm from its running statistics: the batch of one item sees the same
    with torch.no_grad():
        skipped = step(audio, frames, **inputs)
        full = step(audio, frames, source_x)
        # the loss of the second item alone, from a batch that holds only it
        second = step(audio[1:], frames[1:], source_x[1:])
    assert torch.allclose(skipped["localisation"], second["localisation"], atol=1e-6)
    assert not torch.allclose(skipped["localisation"], full["localisation"])
    assert torch.allclose(skipped["side"], full["side"])
    with pytest.raises(ValueError, match="silent_distractors"):
        recipe.step_inputs({"source_x": source_x}, torch.device("cpu"))
    with pytest.raises(ConfigError, match="localisation_skip_distractor_scenes"):
        load_config(None, ["recipes.localisation_skip_distractor_scenes=true"])


def test_position_offset_head_reads_each_source_at_its_column():
    cols, offsets, present = PositionOffsetHead.column_offsets(4, torch.tensor([[0.3, 1.0, -1.0], [0.0, 0.62, 0.9]]))
    assert cols.tolist() == [[1, 3, 0], [0, 2, 3]]
    assert torch.allclose(offsets, torch.tensor([[0.2, 1.0, 0.0], [0.0, 0.48, 0.6]]), atol=1e-6)
    assert present.tolist() == [[1, 1, 0], [1, 1, 1]]

    head = PositionOffsetHead(channels=3)
    fmap = torch.randn(2, 3, 2, 4)
    source_x = torch.tensor([[0.3, -1.0, -1.0], [0.62, 0.9, -1.0]])
    pred = torch.sigmoid(head.conv(fmap).mean(dim=2)[:, 0])
    expected = ((pred[0, 1] - 0.2).abs() + (pred[1, 2] - 0.48).abs() + (pred[1, 3] - 0.6).abs()) / 3
    assert torch.allclose(head(fmap, source_x), expected, atol=1e-6)
    # No source anywhere (blank frames): nothing to place, loss 0 and no NaN.
    assert head(fmap, torch.full((2, 3), -1.0)).item() == 0.0
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        head(torch.randn(2, 5, 2, 4), source_x)
    with pytest.raises(ValueError, match="source_x must be"):
        head(fmap, source_x[:1])
    # Weighted items: the second item's two sources alone.
    expected_second = ((pred[1, 2] - 0.48).abs() + (pred[1, 3] - 0.6).abs()) / 2
    assert torch.allclose(head(fmap, source_x, torch.tensor([0.0, 1.0])), expected_second, atol=1e-6)


def test_position_offset_loss_trains_the_feature_the_audio_net_receives():
    """The offset head reads the reduced feature (not the trunk map), so its gradient reaches the
    reduction the audio net sees; the config refuses it without the column loss."""
    from streambin.train.build import build_generator
    from streambin.train.config import ConfigError, load_config
    from streambin.train.recipes import get_recipe

    cfg = load_config(None, ["model.ngf=4", f"model.visual_size=[{VISUAL[0]}, {VISUAL[1]}]",
                             "recipes.localisation_weight=1.0", "recipes.localisation_offset_weight=0.5"])
    recipe = get_recipe(cfg.recipe)(cfg)
    assert recipe.loss_names[-2:] == ("localisation", "localisation_offset")
    step = recipe.make_step_module(build_generator(cfg))
    assert step.position_offset.conv.in_channels == cfg.model.visual_reduced_channels
    torch.manual_seed(0)
    audio = torch.randn(2, 2, cfg.audio.crop_samples) * 0.1
    frames = torch.randint(0, 255, (2, *VISUAL, 3), dtype=torch.uint8)
    source_x = torch.tensor([[0.3, -1.0, -1.0], [0.8, -1.0, -1.0]])
    losses = step(audio, frames, source_x)
    assert torch.allclose(losses["total"], losses["side"] + losses["localisation"] + 0.5 * losses["localisation_offset"])
    losses["localisation_offset"].backward()
    assert step.generator.reduce[0].weight.grad.abs().sum() > 0
    for bad in (["recipes.localisation_offset_weight=0.5"], ["recipes.localisation_weight=1.0",
                                                             "recipes.localisation_offset_weight=-1"]):
        with pytest.raises(ConfigError, match="localisation_offset_weight"):
            load_config(None, bad)


def test_cli_with_localisation_then_init(sim_root, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    common = ["--data", str(sim_root), "--max-steps", "2", "--no-progress", "--set", "model.ngf=4",
              "--set", f"model.visual_size=[{VISUAL[0]}, {VISUAL[1]}]", "--set", "train.batch_size=4",
              "--set", "train.num_workers=0", "--set", "train.log_every_steps=1"]
    first = tmp_path / "loc"
    res = subprocess.run([sys.executable, "-m", "streambin.train", "--recipe", "mono2binaural", "--out", str(first),
                          "--set", "recipes.localisation_weight=1.0", *common],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(first / "log.csv")))
    assert all(math.isfinite(float(r["localisation"])) for r in rows)
    assert all(float(r["total"]) > float(r["side"]) for r in rows if r["phase"] == "train")
    # Weights only: the plain recipe starts from them at step 0 (the head is not part of it).
    second = tmp_path / "plain"
    res = subprocess.run([sys.executable, "-m", "streambin.train", "--recipe", "mono2binaural", "--out", str(second),
                          "--init", str(first / "last.pt"), *common],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    steps = [int(r["step"]) for r in csv.DictReader(open(second / "log.csv")) if r["phase"] == "train"]
    assert steps == [1, 2]
    # A checkpoint of another architecture is refused with the reason.
    res = subprocess.run([sys.executable, "-m", "streambin.train", "--recipe", "apnet", "--out", str(tmp_path / "x"),
                          "--init", str(first / "last.pt"), *common],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "cannot initialise" in res.stderr


def test_pretrain_visual_writes_a_trunk_that_recipes_load(sim_root, tmp_path, one_thread):
    """Visual pretraining: the loss falls on a batch it repeats, the summary holds a real column
    accuracy, and the written trunk is what model.imagenet_weights loads into a generator."""
    from streambin.train.build import build_generator
    from streambin.train.config import load_config
    from streambin.train.pretrain_visual import LocaliserNet, main, pretrain

    torch.manual_seed(0)
    ds = SimBinauralDataset(sim_root, "train", visual_size=VISUAL, seed=3, with_positions=True)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    net = LocaliserNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = net.loss(batch["frame"], batch["source_x"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    hits, cols, positive = net.column_hits(batch["frame"], batch["source_x"])
    assert cols == 4 * 2 and 0 <= hits <= cols and 1 <= positive <= cols  # (32, 64) frames -> 2 columns
    assert positive == int(net.head.column_targets(torch.zeros(4, 2), batch["source_x"]).sum())

    out = tmp_path / "pv"
    summary = pretrain(str(sim_root), str(out), steps=3, visual_size=VISUAL, batch_size=4, num_workers=0,
                       progress=False)
    assert summary["steps"] == 3 and 0.0 <= summary["val_column_accuracy"] <= 1.0
    assert 0.0 <= summary["val_empty_answer_accuracy"] < 1.0   # every clip has a source
    assert summary["val_items"] == len(SimBinauralDataset(sim_root, "val", visual_size=VISUAL))
    assert json.loads((out / "summary.json").read_text()) == summary
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [3] and math.isfinite(float(rows[0]["loss"]))
    cfg = load_config(None, ["model.ngf=4", f"model.visual_size=[{VISUAL[0]}, {VISUAL[1]}]",
                             f"model.imagenet_weights={out / 'resnet18.pth'}"])
    gen = build_generator(cfg)
    saved = torch.load(out / "resnet18.pth", weights_only=True)
    assert all(torch.equal(gen.trunk.state_dict()[k], v) for k, v in saved.items())
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"), "--steps", "1"]) == 2


def test_pretrain_visual_resumes_where_it_stopped(sim_root, tmp_path, one_thread):
    """3 steps, then --resume to 5, ends with the weights of one uninterrupted 5-step run."""
    from streambin.train.pretrain_visual import pretrain

    kw = dict(visual_size=VISUAL, batch_size=2, num_workers=0, progress=False)
    pretrain(str(sim_root), str(tmp_path / "a"), steps=3, **kw)
    resumed = pretrain(str(sim_root), str(tmp_path / "a"), steps=5, resume=True, ood_data=str(sim_root), **kw)
    pretrain(str(sim_root), str(tmp_path / "b"), steps=5, **kw)
    a = torch.load(tmp_path / "a" / "resnet18.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "resnet18.pth", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert [int(r["step"]) for r in csv.DictReader(open(tmp_path / "a" / "log.csv"))] == [3, 5]
    assert 0.0 <= resumed["ood_column_accuracy"] <= 1.0 and resumed["ood_items"] >= 1
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        pretrain(str(sim_root), str(tmp_path / "c"), steps=2, resume=True, **kw)
