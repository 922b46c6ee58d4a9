"""streambin.nets.weights: the inference reader of checkpoints (torch + streambin.nets only)
gives the generator training's load_generator gives, with the same clear errors."""

import pytest

torch = pytest.importorskip("torch")

from streambin.nets.weights import (FORMAT, GENERATOR_PREFIX, CheckpointError,  # noqa: E402
                                    load_generator_weights)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """(path, Config) of a tiny APNet checkpoint (random weights, visual_net "auto")."""
    from streambin.train.build import build_generator
    from streambin.train.checkpoint import save_checkpoint
    from streambin.train.config import load_config

    cfg = load_config(None, ["recipe=apnet", "model.arch=apnet", "model.ngf=4", "model.visual_size=[32,64]"])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("nets_weights") / "tiny.pt"
    save_checkpoint(str(path), config=cfg, model=build_generator(cfg))
    return path, cfg


def test_reads_what_training_writes_and_loads(tiny_checkpoint):
    from streambin.train.checkpoint import load_generator

    path, cfg = tiny_checkpoint
    gen, stored = load_generator_weights(str(path))
    ref, ref_cfg = load_generator(str(path))
    assert stored == cfg.to_dict() and ref_cfg == cfg
    assert not gen.training and gen.visual_net == "resnet18_dilated" and gen.mask_kind == "left_right"
    for (k, v), (k_ref, v_ref) in zip(gen.state_dict().items(), ref.state_dict().items()):
        assert k == k_ref and torch.equal(v, v_ref), k
    torch.manual_seed(1)
    frames = torch.randint(0, 256, (2, 32, 64, 3), dtype=torch.uint8)
    spec = torch.randn(2, 2, 257, 64)
    with torch.no_grad():
        torch.testing.assert_close(gen(spec, frames), ref(spec, frames), rtol=0, atol=0)


@pytest.mark.parametrize("reader", ["nets", "train"])
def test_file_errors_are_clear_in_both_readers(reader, tmp_path):
    # The runtime's reader and training's load_generator share the checks and the messages.
    from streambin.train.checkpoint import CheckpointError as TrainCheckpointError
    from streambin.train.checkpoint import load_generator

    assert TrainCheckpointError is CheckpointError
    load = load_generator_weights if reader == "nets" else load_generator
    with pytest.raises(CheckpointError, match="not found"):
        load(str(tmp_path / "nope.pt"))
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load(str(tmp_path / "corrupt.pt"))
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a streambin checkpoint"):
        load(str(tmp_path / "other.pt"))


def test_stored_config_errors_are_clear(tiny_checkpoint, tmp_path):
    path, _cfg = tiny_checkpoint
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["format"] == FORMAT and all(k.startswith(GENERATOR_PREFIX) for k in ckpt["model"])
    del ckpt["recipe"]
    torch.save(ckpt, tmp_path / "no_recipe.pt")
    with pytest.raises(CheckpointError, match=r"lacks entries \['recipe'\]"):
        load_generator_weights(str(tmp_path / "no_recipe.pt"))

    ckpt = torch.load(path, weights_only=False)
    ckpt["config"]["model"]["ngf"] = 8                    # weights are for ngf 4
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="weights do not match the stored config"):
        load_generator_weights(str(tmp_path / "mismatch.pt"))

    ckpt = torch.load(path, weights_only=False)
    ckpt["config"]["model"]["arch"] = "transformer"
    torch.save(ckpt, tmp_path / "bad_arch.pt")
    with pytest.raises(CheckpointError, match="stored config is invalid: arch must be"):
        load_generator_weights(str(tmp_path / "bad_arch.pt"))

    ckpt = torch.load(path, weights_only=False)
    del ckpt["config"]["model"]
    torch.save(ckpt, tmp_path / "no_model.pt")
    with pytest.raises(CheckpointError, match="no model section"):
        load_generator_weights(str(tmp_path / "no_model.pt"))


def test_nets_import_neither_training_nor_omegaconf():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, streambin.nets, streambin.nets.weights; "
            "print(sorted(m for m in sys.modules if m.startswith('streambin.train') or m.startswith('omegaconf')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"
