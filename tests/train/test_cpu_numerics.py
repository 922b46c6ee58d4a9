"""Denormal floats are flushed to zero in training and evaluation processes."""

import pytest
import torch

from streambin.train.cpu_numerics import flush_denormals
from streambin.train.trainer import Trainer
from tests.train.synthetic import PictureSideDataset, tiny_config

DENORMAL = 1e-39  # below float32's smallest normal, 1.18e-38


def _denormal_survives() -> bool:
    """Whether a float32 denormal passes through a multiplication unchanged."""
    x = torch.tensor([DENORMAL], dtype=torch.float32)
    return float((x * 1.0).item()) != 0.0


@pytest.fixture
def denormals_kept():
    """Start from the CPU default (denormals computed) and restore it afterwards."""
    if not torch.set_flush_denormal(True):
        pytest.skip("torch cannot flush denormals on this CPU (not x86 with SSE3)")
    torch.set_flush_denormal(False)
    assert _denormal_survives()
    yield
    torch.set_flush_denormal(False)


def test_flush_denormals_zeroes_them_and_nothing_else(denormals_kept):
    assert flush_denormals() is True
    assert not _denormal_survives()
    normal = torch.tensor([1.2e-38, 1e-37, 1.0, -3.5e30], dtype=torch.float32)
    assert torch.equal(normal * 1.0, normal)


def test_a_cpu_trainer_flushes_denormals(denormals_kept, tmp_path):
    Trainer(tiny_config("mono2binaural", max_steps=1, batch_size=8), PictureSideDataset(8, seed=1), None,
            out_dir=str(tmp_path), device="cpu", progress=False)
    assert not _denormal_survives()


def test_the_evaluation_command_flushes_denormals(denormals_kept, tmp_path):
    from streambin.nets.weights import CheckpointError
    from streambin.train import evaluate

    # The checkpoint is missing, so it fails, but only after the switch (right after parsing).
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        evaluate.main(["--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path / "none")])
    assert not _denormal_survives()
