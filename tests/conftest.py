"""Shared pytest fixtures: devices the DSP tests run on, deterministic RNG."""

import numpy as np
import pytest

from streambin import dsp


def dsp_devices():
    """'cpu' always; 'cuda' when the extension was built with CUDA and a GPU is visible."""
    devices = ["cpu"]
    cuda = pytest.param("cuda", marks=pytest.mark.skipif(
        dsp.cuda_device_count() == 0,
        reason="no CUDA GPU visible (streambin._C built_with_cuda=%s)" % dsp.has_cuda()))
    return devices + [cuda]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _export_tiny(tmp_path_factory, arch: str):
    """A tiny trained-shape model (random weights) exported to a real bundle."""
    torch = pytest.importorskip("torch")
    from export.to_onnx import export_bundle
    from streambin.train.build import build_generator
    from streambin.train.checkpoint import save_checkpoint
    from streambin.train.config import load_config

    root = tmp_path_factory.mktemp(f"tiny_{arch}")
    cfg = load_config(None, [f"model.arch={arch}", "model.ngf=4", "model.visual_size=[32,64]",
                             f"recipe={'apnet' if arch == 'apnet' else 'mono2binaural'}"])
    torch.manual_seed(0)
    model = build_generator(cfg)
    ckpt = root / "tiny.pt"
    save_checkpoint(str(ckpt), config=cfg, model=model)
    bundle = export_bundle(str(ckpt), str(root / "bundle"))
    return bundle.path, ckpt


@pytest.fixture(scope="session")
def tiny_unet(tmp_path_factory):
    """(bundle_dir, checkpoint) of a tiny U-Net (side mask) model."""
    return _export_tiny(tmp_path_factory, "unet")


@pytest.fixture(scope="session")
def tiny_apnet(tmp_path_factory):
    """(bundle_dir, checkpoint) of a tiny APNet (left/right masks) model."""
    return _export_tiny(tmp_path_factory, "apnet")
