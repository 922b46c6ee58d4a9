"""Weight-space interpolation of two checkpoints (streambin.train.average_checkpoints)."""

import pytest

torch = pytest.importorskip("torch")

from streambin.nets.weights import CheckpointError  # noqa: E402
from streambin.train.average_checkpoints import interpolate_checkpoints, interpolate_states, main  # noqa: E402
from streambin.train.build import build_generator  # noqa: E402
from streambin.train.checkpoint import load_generator, save_checkpoint  # noqa: E402
from streambin.train.config import load_config  # noqa: E402

TINY = ["model.arch=unet", "model.ngf=4", "model.visual_size=[32,64]"]


def _checkpoint(path, seed, overrides=()):
    cfg = load_config(None, TINY + list(overrides))
    torch.manual_seed(seed)
    model = build_generator(cfg)
    with torch.no_grad():  # distinct running statistics too, so they are interpolated visibly
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.num_batches_tracked.fill_(seed)
    save_checkpoint(str(path), config=cfg, model=model, step=seed)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("average")
    return _checkpoint(root / "base.pt", 1), _checkpoint(root / "tuned.pt", 2)


def _state(path):
    gen, _ = load_generator(str(path))
    return gen.state_dict()


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_every_float_entry_is_the_weighted_sum(pair, tmp_path, weight):
    base, tuned = pair
    out = tmp_path / "mid.pt"
    interpolate_checkpoints(str(base), str(tuned), weight, str(out))
    a, b, mid = _state(base), _state(tuned), _state(out)
    assert set(mid) == set(a)
    floats = [k for k in mid if mid[k].is_floating_point()]
    assert any("running_mean" in k for k in floats)
    for key in floats:
        expected = (1 - weight) * a[key].double() + weight * b[key].double()
        torch.testing.assert_close(mid[key].double(), expected, rtol=0, atol=1e-6)
    counters = [k for k in mid if k.endswith("num_batches_tracked")]
    assert counters and all(int(mid[k]) == 2 for k in counters)  # integers come from tuned
    if weight == 0.25:  # a real mixture, neither end
        key = floats[0]
        assert not torch.equal(mid[key], a[key]) and not torch.equal(mid[key], b[key])


def test_the_result_runs_and_keeps_the_tuned_config(pair, tmp_path):
    base, tuned = pair
    out = tmp_path / "mid.pt"
    assert main(["--base", str(base), "--tuned", str(tuned), "--weight", "0.5", "--out", str(out)]) == 0
    gen, cfg = load_generator(str(out))
    assert cfg.model.ngf == 4 and torch.load(out, weights_only=False)["step"] == 2
    assert torch.load(out, weights_only=False)["optimizer"] is None


def test_weight_outside_zero_one_is_refused(pair, tmp_path):
    base, tuned = pair
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\], got 1.5"):
        interpolate_checkpoints(str(base), str(tuned), 1.5, str(tmp_path / "x.pt"))
    with pytest.raises(SystemExit):
        main(["--base", str(base), "--tuned", str(tuned), "--weight", "-0.1", "--out", str(tmp_path / "x.pt")])
    assert not (tmp_path / "x.pt").exists()


def test_different_networks_are_refused(pair, tmp_path):
    base, _ = pair
    other = _checkpoint(tmp_path / "wide.pt", 3, ["model.ngf=8"])
    with pytest.raises(CheckpointError, match="different networks.*ngf"):
        interpolate_checkpoints(str(base), str(other), 0.5, str(tmp_path / "x.pt"))


def test_mismatched_states_name_the_entry():
    a = {"w": torch.zeros(2, 3)}
    with pytest.raises(ValueError, match="'w' has shape \\(2, 3\\) in base and \\(3, 2\\)"):
        interpolate_states(a, {"w": torch.zeros(3, 2)}, 0.5)
    with pytest.raises(ValueError, match="only in tuned \\['v'\\]"):
        interpolate_states(a, {"w": torch.zeros(2, 3), "v": torch.zeros(1)}, 0.5)


def test_a_corrupt_file_is_a_checkpoint_error(pair, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        interpolate_checkpoints(str(bad), str(pair[1]), 0.5, str(tmp_path / "x.pt"))
