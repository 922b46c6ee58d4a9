"""Trainer, config and checkpoints on a tiny generated data set (tests/train/synthetic.py)."""

import csv
import os

import pytest
import torch

from streambin.train.__main__ import build_config, main, parse_args
from streambin.train.checkpoint import load_generator, read_checkpoint
from streambin.train.config import Config, ConfigError, apply_overrides, config_from_dict, load_config, save_config
from streambin.train.trainer import Trainer
from tests.train.synthetic import PictureSideDataset, tiny_config


pytestmark = pytest.mark.usefixtures("one_thread")


class Mirrored(torch.utils.data.Dataset):
    """The same items with frames mirrored left-right but the audio NOT swapped (wrong picture)."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        item["frame"] = torch.flip(item["frame"], dims=[1])
        return item


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """150 steps of a tiny Mono2Binaural (ngf 4, 32x64 frames, trunk frozen for speed)."""
    torch.set_num_threads(1)
    out = str(tmp_path_factory.mktemp("run"))
    cfg = tiny_config("mono2binaural", max_steps=150, batch_size=8, lr_visual=1e-3, freeze_trunk=True)
    cfg.model.ngf = 4
    val = PictureSideDataset(16, seed=2)
    tr = Trainer(cfg, PictureSideDataset(64, seed=1), val, out_dir=out, progress=False)
    initial = tr.validate()["total"]
    summary = tr.fit()
    return {"trainer": tr, "out": out, "initial": initial, "summary": summary, "val": val, "cfg": cfg}


def test_loss_goes_down_and_uses_the_picture(trained):
    initial, final = trained["initial"], trained["summary"]["val"]["total"]
    # Without the picture the best constant mask is 0, i.e. the initial loss; the sign comes
    # only from the bright square, so a clear drop means the visual path is used.
    assert final < 0.3 * initial, (initial, final)
    tr = trained["trainer"]
    tr.val_loader = tr._loader(Mirrored(trained["val"]), shuffle=False)
    assert tr.validate()["total"] > initial  # the mirrored picture gives the wrong side


def test_log_and_checkpoint_files(trained):
    out = trained["out"]
    for name in ("last.pt", "best.pt", "config.yaml", "log.csv"):
        assert os.path.isfile(os.path.join(out, name)), name
    rows = list(csv.DictReader(open(os.path.join(out, "log.csv"))))
    assert [int(r["step"]) for r in rows if r["phase"] == "train"] == list(range(10, 151, 10))
    assert rows[-1]["phase"] == "val" and int(rows[-1]["step"]) == 150
    ckpt = read_checkpoint(os.path.join(out, "last.pt"))
    assert ckpt["step"] == 150 and ckpt["recipe"] == "mono2binaural"
    assert set(ckpt["versions"]) == {"streambin", "torch", "python"}
    assert ckpt["config"]["model"]["ngf"] == 4
    # lr decay x0.94 every 10 epochs: 64 items / batch 8 = 8 steps per epoch, 150 steps = 18 epochs.
    assert ckpt["epoch"] == 18
    assert ckpt["scheduler"]["_last_lr"] == pytest.approx([1e-3 * 0.94, 1e-3 * 0.94])


def test_checkpoint_round_trip_identical_outputs(trained):
    gen, cfg = load_generator(os.path.join(trained["out"], "last.pt"))
    assert not gen.training and cfg.model.ngf == 4 and cfg.recipe == "mono2binaural"
    ref = trained["trainer"].recipe.generator.eval()
    frames = torch.randint(0, 256, (3, 32, 64, 3), dtype=torch.uint8)
    spec = torch.randn(3, 2, 257, 64)
    with torch.no_grad():
        assert torch.equal(gen(spec, frames), ref(spec, frames))
    ref.train()


def test_resume_continues_step_count(trained, tmp_path):
    last = os.path.join(trained["out"], "last.pt")
    cfg = apply_overrides(trained["cfg"], ["train.max_steps=160"])  # one log row (every 10 steps)
    tr = Trainer(cfg, PictureSideDataset(64, seed=1), None, out_dir=str(tmp_path), resume=last, progress=False)
    assert tr.step == 150 and tr.epoch == 18
    saved = read_checkpoint(last)["model"]
    for k, v in tr.recipe.step_module.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert tr.optimizer.state_dict()["state"]  # Adam moments restored, not fresh
    summary = tr.fit()
    assert summary["step"] == 160
    resumed = read_checkpoint(str(tmp_path / "last.pt"))
    assert resumed["step"] == 160
    # the clock continues: the log's wall time and the checkpoint's include the first 150 steps
    before = read_checkpoint(last)["train_seconds"]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert before > 0 and float(rows[0]["elapsed_s"]) >= before
    assert resumed["train_seconds"] >= float(rows[0]["elapsed_s"])


def test_config_validation_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key model.ngff"):
        config_from_dict({"model": {"ngff": 3}})
    with pytest.raises(ConfigError, match="unknown config section"):
        config_from_dict({"optim": {}})
    with pytest.raises(ConfigError, match="model.arch must be one of"):
        config_from_dict({"model": {"arch": "transformer"}})
    with pytest.raises(ConfigError, match="train.lr_audio must be a positive"):
        config_from_dict({"train": {"lr_audio": -1}})
    with pytest.raises(ConfigError, match="model.visual_size"):
        config_from_dict({"model": {"visual_size": [224]}})
    with pytest.raises(ConfigError, match="context_frames must be a multiple of 32"):
        config_from_dict({"audio": {"context_frames": 50}})
    with pytest.raises(ConfigError, match="recipe must be one of"):
        config_from_dict({"recipe": "no_such_recipe"})
    with pytest.raises(ConfigError, match=r"data.blank_prob must be a number in \[0, 1\]"):
        config_from_dict({"data": {"blank_prob": 1.5}})
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(Config(), ["model.ngf"])
    with pytest.raises(ConfigError, match="train.batch_size must be a positive int"):
        apply_overrides(Config(), ["train.batch_size=0"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("model: {ngf: 16, bogus: 1}\n")
    with pytest.raises(ConfigError, match="bad.yaml.*model.bogus"):
        load_config(str(tmp_path / "bad.yaml"))


def test_config_yaml_round_trip_and_shipped_configs(tmp_path):
    cfg = load_config(None, ["model.ngf=16", "model.visual_size=[112, 224]", "train.betas=[0.5, 0.9]"])
    assert cfg.model.visual_size == (112, 224) and cfg.train.betas == (0.5, 0.9)
    save_config(cfg, str(tmp_path / "c.yaml"))
    assert load_config(str(tmp_path / "c.yaml")) == cfg
    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    paper = load_config(os.path.join(root, "mono2binaural_paper.yaml"))
    paper.train.num_workers = Config().train.num_workers  # the only non-default value there
    assert paper == Config()  # otherwise the paper file restates the defaults
    assert load_config(os.path.join(root, "apnet_paper.yaml")).model.arch == "apnet"
    assert load_config(os.path.join(root, "cpu_small.yaml")).model.ngf < 64


def test_cli_config_building(tmp_path):
    args = parse_args(["--recipe", "apnet", "--data", "/d", "--max-steps", "7", "--set", "model.ngf=8"])
    cfg = build_config(args)
    assert (cfg.recipe, cfg.model.arch, cfg.data.root, cfg.train.max_steps, cfg.model.ngf) == \
        ("apnet", "apnet", "/d", 7, 8)
    assert main(["--recipe", "mono2binaural", "--set", "model.ngf=zero"]) == 2


def test_tensorboard_scalars_equal_the_csv_log(trained):
    event_acc = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = trained["out"]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(out))
    acc = event_acc.EventAccumulator(out)
    acc.Reload()
    rows = list(csv.DictReader(open(os.path.join(out, "log.csv"))))
    for phase in ("train", "val"):
        mine = [r for r in rows if r["phase"] == phase]
        scalars = acc.Scalars(f"{phase}/total")
        assert mine and [s.step for s in scalars] == [int(r["step"]) for r in mine]
        assert [s.value for s in scalars] == pytest.approx([float(r["total"]) for r in mine], rel=1e-6)
    assert {"lr/visual", "lr/audio"} <= set(acc.Tags()["scalars"])


def test_plot_command_writes_the_curves(trained, tmp_path, capsys):
    from streambin.train import plot as train_plot

    out = trained["out"]
    assert train_plot.main([out, "-o", str(tmp_path / "curves.png")]) == 0
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    log = train_plot.read_log(out)
    assert list(log["val"]["step"]) == [150] and list(log["train"]["step"]) == list(range(10, 151, 10))
    # Several runs overlaid need an explicit output; a directory without a log is an error.
    assert train_plot.main([out, out, "-o", str(tmp_path / "two.png")]) == 0
    assert (tmp_path / "two.png").stat().st_size > 10000
    assert train_plot.main([str(tmp_path)]) == 2 and "no training log" in capsys.readouterr().err
