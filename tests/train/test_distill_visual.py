"""The compact visual trunk and its distillation from a ResNet-18 generator
(streambin.nets.visual.CompactTrunk, streambin.train.distill_visual)."""

import csv
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streambin.nets import BinauralGenerator  # noqa: E402
from streambin.nets.resnet import ResNet18Trunk, trunk_output_hw  # noqa: E402
from streambin.nets.visual import CompactTrunk  # noqa: E402
from streambin.train import distill_visual as D  # noqa: E402
from streambin.train.checkpoint import load_generator  # noqa: E402
from streambin.train.config import ConfigError, load_config  # noqa: E402


@pytest.mark.parametrize("hw", [(64, 128), (32, 64), (45, 97), (224, 448)])
def test_compact_trunk_has_the_resnet_map_shape(hw):
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        out = CompactTrunk().eval()(x)
        ref = ResNet18Trunk().eval()(x)
    assert tuple(out.shape) == tuple(ref.shape) == (2, 512, *trunk_output_hw(*hw))
    assert float(out.min()) >= 0.0  # ends in a ReLU, like the ResNet's map


def test_compact_trunk_is_much_smaller_than_the_resnet():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(CompactTrunk()) * 8 < count(ResNet18Trunk())


def test_compact_trunk_refuses_a_wrong_input():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        CompactTrunk()(torch.zeros(1, 4, 8, 8))


def test_config_accepts_compact_and_refuses_imagenet_weights_for_it():
    cfg = load_config(None, ["model.visual_net=compact", "model.visual_size=[32,64]", "model.ngf=4"])
    gen = BinauralGenerator(arch="unet", ngf=4, visual_size=(32, 64), visual_net=cfg.model.visual_net)
    assert isinstance(gen.trunk, CompactTrunk)
    with pytest.raises(ConfigError, match="imagenet_weights"):
        load_config(None, ["model.visual_net=compact", "model.imagenet_weights=x.pth"])


def test_distill_loss_counts_only_what_the_relu_lets_through():
    t = torch.tensor([[1.0, -1.0, -2.0, 0.5]])
    s = torch.tensor([[0.0, -3.0, 1.0, 0.5]])
    # (0-1)^2 where t > 0; relu(-3)^2 = 0 and relu(1)^2 = 1 where t <= 0; 0 where equal.
    assert D.distill_loss(s, t).item() == pytest.approx((1.0 + 0.0 + 1.0 + 0.0) / 4)
    assert D.distill_loss(t, t).item() == 0.0
    with pytest.raises(ValueError, match="shape"):
        D.distill_loss(s, t[:, :3])


def test_student_keeps_the_teachers_reducer_and_audio_net_frozen(tiny_unet):
    _, ckpt = tiny_unet
    teacher, cfg = load_generator(str(ckpt))
    student, student_cfg = D.make_student(teacher, cfg, "compact")
    assert student_cfg.model.visual_net == "compact" and cfg.model.visual_net != "compact"
    t_state, s_state = teacher.state_dict(), student.state_dict()
    shared = [k for k in s_state if not k.startswith("trunk.")]
    assert shared and all(torch.equal(s_state[k], t_state[k]) for k in shared)
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("trunk.") for n in trainable)
    with pytest.raises(ValueError, match="trunk must be one of"):
        D.make_student(teacher, cfg, "resnet18")


@pytest.fixture(scope="module")
def sim_root(make_tiny_sim):
    return make_tiny_sim("simbin_distill", seconds=1.2, rooms=False)


def test_distillation_fits_the_teacher_and_resumes(tiny_unet, sim_root, tmp_path):
    _, ckpt = tiny_unet
    out = tmp_path / "distil"
    kwargs = dict(splits=["train"], frames_per_clip=4, batch_size=8, lr=3e-3, val_every=10,
                  checkpoint_every=10, val_clips=None, workers=0, progress=False)
    first = D.run(str(ckpt), str(sim_root), str(out), steps=10, **kwargs)
    assert first["step"] == 10
    with pytest.raises(FileExistsError, match="--resume"):
        D.run(str(ckpt), str(sim_root), str(out), steps=40, **kwargs)
    result = D.run(str(ckpt), str(sim_root), str(out), steps=40, resume=True, **kwargs)
    assert result["step"] == 40
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))  # the resumed run appends
    # The first run's cosine ended at 0; resumed with more steps, the rate follows the cosine
    # over the new total from where the run stands.
    assert float(rows[9]["lr"]) == 0.0
    assert float(rows[10]["lr"]) == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * 11 / 40)), rel=1e-2)
    val = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(val) == 4 and val[-1] < val[0], val

    # best.pt is an ordinary generator checkpoint with the compact trunk; the audio net is the
    # teacher's, untouched, and the student's features are closer to the teacher's than a fresh
    # compact trunk's.
    student, cfg = load_generator(str(out / "best.pt"))
    teacher, _ = load_generator(str(ckpt))
    assert cfg.model.visual_net == "compact" and isinstance(student.trunk, CompactTrunk)
    assert torch.equal(student.state_dict()["unet.up1.0.weight"], teacher.state_dict()["unet.up1.0.weight"])
    fresh, _ = D.make_student(teacher, load_generator(str(ckpt))[1], "compact")
    frames = torch.stack([D.DistillFrames(D._clip_frames(sim_root, ["val", "test"], 4), (32, 64),
                                          augment=False)[i] for i in range(8)])
    with torch.no_grad():
        t = D.feature_preactivation(teacher, frames)
        err = D.distill_loss(D.feature_preactivation(student, frames), t).item()
        err_fresh = D.distill_loss(D.feature_preactivation(fresh.eval(), frames), t).item()
    assert err < err_fresh, (err, err_fresh)


def test_augmented_frames_are_deterministic_and_well_formed(sim_root):
    paths = D._clip_frames(sim_root, ["train"], 3)
    ds = D.DistillFrames(paths, (32, 64), augment=True, blank_prob=0.5, seed=1)
    items = [ds[i].numpy() for i in range(len(ds))]
    assert all(x.shape == (32, 64, 3) and x.dtype == np.uint8 for x in items)
    assert any((x == x[0, 0]).all() for x in items)              # some blank frames
    np.testing.assert_array_equal(ds[2].numpy(), items[2])        # same epoch -> same draw
    ds.set_epoch(1)
    assert any(not np.array_equal(ds[i].numpy(), items[i]) for i in range(len(ds)))


def test_bad_arguments_are_refused(tiny_unet, sim_root, tmp_path):
    _, ckpt = tiny_unet
    with pytest.raises(ValueError, match=">= 1"):
        D.run(str(ckpt), str(sim_root), str(tmp_path / "a"), steps=0, progress=False)
    with pytest.raises(FileNotFoundError, match="no split 'nope'"):
        D.run(str(ckpt), str(sim_root), str(tmp_path / "b"), steps=1, splits=["nope"], progress=False)
    with pytest.raises(FileNotFoundError, match="--resume"):
        D.run(str(ckpt), str(sim_root), str(tmp_path / "c"), steps=1, resume=True, progress=False)
    assert D.main(["--teacher", str(ckpt), "--data", str(sim_root), "--out", str(tmp_path / "d"),
                   "--steps", "1", "--splits", "nope"]) == 2


def test_a_compact_generator_exports_and_is_recovered(tiny_unet, tmp_path):
    """The exported compact bundle passes the exporter's parity check, and from_bundle rebuilds it."""
    from export.to_onnx import export_bundle
    from streambin.train.checkpoint import save_checkpoint
    from streambin.train.from_bundle import recover_generator, sample_specs

    _, ckpt = tiny_unet
    teacher, cfg = load_generator(str(ckpt))
    student, student_cfg = D.make_student(teacher, cfg, "compact")
    path = tmp_path / "compact.pt"
    save_checkpoint(str(path), config=student_cfg, model=student)
    bundle = export_bundle(str(path), tmp_path / "bundle", torch_weights=False)
    assert bundle.config["model"]["visual_net"] == "compact"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (16, 4, 8, 3)).repeat(8, 1).repeat(8, 2).astype(np.uint8)
    gen, err_v, err_a = recover_generator(str(bundle.path), student_cfg, frames,
                                          sample_specs(None, student_cfg, count=16, seed=0))
    assert isinstance(gen.trunk, CompactTrunk) and err_v < 1e-4 and err_a < 1e-4, (err_v, err_a)
