"""Recovering a trainable generator from an exported bundle (streambin.train.from_bundle)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streambin.train.checkpoint import load_generator  # noqa: E402
from streambin.train.config import load_config  # noqa: E402
from streambin.train.from_bundle import (BundleRecoveryError, main, recover_generator,  # noqa: E402
                                         sample_specs)

TINY = ["model.arch=unet", "model.ngf=4", "model.visual_size=[32,64]", "recipe=mono2binaural"]


def _inputs(cfg, n=24, seed=3):
    h, w = cfg.model.visual_size
    rng = np.random.default_rng(seed)
    # Smooth random pictures (not white noise) so the BatchNorm statistics are picture-like.
    frames = rng.integers(0, 256, (n, h // 8, w // 8, 3)).repeat(8, 1).repeat(8, 2).astype(np.uint8)
    return frames, sample_specs(None, cfg, count=n, seed=seed)


def test_recovered_generator_matches_the_original_in_eval_mode(tiny_unet):
    bundle, ckpt = tiny_unet
    cfg = load_config(None, TINY)
    frames, specs = _inputs(cfg)
    gen, err_v, err_a = recover_generator(str(bundle), cfg, frames, specs)
    assert err_v < 1e-4 and err_a < 1e-4, (err_v, err_a)

    original, _ = load_generator(str(ckpt))
    t_frames, t_specs = torch.from_numpy(frames), torch.from_numpy(specs)
    with torch.no_grad():
        f0, f1 = original.visual(t_frames), gen.visual(t_frames)
        np.testing.assert_allclose(f1.numpy(), f0.numpy(), atol=1e-4)
        np.testing.assert_allclose(gen.audio(t_specs, f0).numpy(), original.audio(t_specs, f0).numpy(), atol=1e-4)
    # Weights that kept their names come back unchanged.
    np.testing.assert_array_equal(gen.state_dict()["unet.up1.0.weight"].numpy(),
                                  original.state_dict()["unet.up1.0.weight"].numpy())


def test_a_mirror_averaged_bundle_is_recovered_with_the_option_on(tiny_unet, tmp_path):
    from export.to_onnx import export_bundle

    _, ckpt = tiny_unet
    bundle = export_bundle(str(ckpt), tmp_path / "mirror", mirror_average=True, torch_weights=False)
    cfg = load_config(None, TINY)  # says nothing about mirror averaging: the bundle decides
    frames, specs = _inputs(cfg)
    gen, err_v, err_a = recover_generator(str(bundle.path), cfg, frames, specs)
    assert gen.mirror_average and err_v < 1e-4 and err_a < 1e-4, (err_v, err_a)


def test_batchnorm_statistics_make_train_mode_agree_with_eval_mode(tiny_unet):
    """On the calibration batch, training-mode batch statistics equal the running ones, so a
    fine-tuning run starts from the bundle's function rather than a re-normalised one."""
    bundle, _ = tiny_unet
    cfg = load_config(None, TINY)
    frames, specs = _inputs(cfg)
    gen, _, _ = recover_generator(str(bundle), cfg, frames, specs)
    t_frames = torch.from_numpy(frames)
    with torch.no_grad():
        eval_feat = gen.eval().visual(t_frames)
        train_feat = gen.train().visual(t_frames)
    np.testing.assert_allclose(train_feat.numpy(), eval_feat.numpy(), atol=1e-3)


def test_mismatched_config_is_refused(tiny_unet):
    bundle, _ = tiny_unet
    cfg = load_config(None, ["model.arch=unet", "model.ngf=4", "model.visual_size=[64,128]"])
    frames, specs = _inputs(load_config(None, TINY))
    with pytest.raises(BundleRecoveryError, match="does not match"):
        recover_generator(str(bundle), cfg, frames, specs)


def test_cli_writes_a_checkpoint_that_loads(tiny_unet, tmp_path):
    bundle, _ = tiny_unet
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text("recipe: mono2binaural\nmodel: {arch: unet, ngf: 4, visual_size: [32, 64]}\n")
    out = tmp_path / "recovered.pt"
    assert main(["--bundle", str(bundle), "--config", str(cfg_path), "--out", str(out)]) == 0
    gen, cfg = load_generator(str(out))
    assert cfg.model.ngf == 4 and gen.arch == "unet"
