"""Mirror averaging (model.mirror_average): the output averaged with the ear-swapped output for
the mirrored frame, in torch, through export, and through the streaming engine."""

import json

import numpy as np
import pytest
import torch

from export.to_onnx import TOL_FP32, export_bundle
from streambin.nets import BinauralGenerator
from tests.export.factory import make_checkpoint, perturb_weights


def _pair(arch):
    """The same random weights in a plain generator and a mirror-averaged one (eval mode)."""
    kw = dict(arch=arch, ngf=4, visual_size=(32, 64))
    plain = BinauralGenerator(**kw)
    perturb_weights(plain, seed=1)
    mirrored = BinauralGenerator(**kw, mirror_average=True)
    mirrored.load_state_dict(plain.state_dict())
    return plain.eval(), mirrored.eval()


# Batch-of-two and batch-of-one convolutions round differently in float32 with several threads.
ATOL = 2e-5


def _swap_ears(masks, kind):
    return -masks if kind == "side" else masks.flip(1)


@pytest.mark.parametrize("arch", ["unet", "apnet"])
def test_masks_are_the_average_with_the_mirrored_frame_ears_swapped(arch):
    plain, avg = _pair(arch)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 32, 64, 3), dtype=torch.uint8, generator=g)
    spec = torch.randn(3, 2, 257, 64, generator=g)
    with torch.inference_mode():
        feature = avg.visual(frames)
        assert tuple(feature.shape) == (3, 2) + plain.feature_shape and avg.feature_shape == (2,) + plain.feature_shape
        torch.testing.assert_close(feature[:, 0], plain.visual(frames))
        torch.testing.assert_close(feature[:, 1], plain.visual(frames.flip(2)))
        masks = avg.audio(spec, feature)
        own = plain.audio(spec, plain.visual(frames))
        other = plain.audio(spec, plain.visual(frames.flip(2)))
        torch.testing.assert_close(masks, 0.5 * (own + _swap_ears(other, plain.mask_kind)), atol=ATOL, rtol=0)
        assert (masks - own).abs().max() > 1e-3  # the averaging changes something
        # a mirrored picture swaps the ears exactly
        flipped = avg.audio(spec, avg.visual(frames.flip(2)))
        torch.testing.assert_close(flipped, _swap_ears(masks, plain.mask_kind), atol=ATOL, rtol=0)
        # a picture that is its own mirror image gives L = R
        grey = avg.audio(spec, avg.visual(torch.full((3, 32, 64, 3), 128, dtype=torch.uint8)))
        if plain.mask_kind == "side":
            assert grey.abs().max() < 1e-6
        else:
            torch.testing.assert_close(grey[:, 0], grey[:, 1], atol=ATOL, rtol=0)
        with pytest.raises(ValueError, match=r"mirror_average: the frame's and the mirrored frame's"):
            avg.audio(spec, feature[:, 0])


def test_sagm_refuses_to_train_a_mirror_averaged_generator():
    from streambin.train.config import Config
    from streambin.train.recipes.sagm import SAGMStep

    _, avg = _pair("unet")
    with pytest.raises(ValueError, match="switch it on at export"):
        SAGMStep(avg, Config())


def test_export_with_mirror_average_and_stream_a_mirrored_scene(tmp_path):
    from streambin import Spatializer

    ckpt = tmp_path / "unet.pt"
    make_checkpoint(ckpt, "unet", seed=0)
    bundle = export_bundle(str(ckpt), tmp_path / "mirror", mirror_average=True)
    config = json.loads((tmp_path / "mirror" / "config.json").read_text())
    assert config["model"]["mirror_average"] is True
    assert config["visual"]["feature_shape"][0] == 2
    assert config["export"]["max_abs_err_audio"] <= TOL_FP32
    plain = export_bundle(str(ckpt), tmp_path / "plain")  # the checkpoint's own setting: off
    assert plain.config["model"]["mirror_average"] is False and len(plain.feature_shape) == 1
    again = export_bundle(str(tmp_path / "mirror" / "weights.pt"), tmp_path / "again", mirror_average=False)
    assert again.config["model"]["mirror_average"] is False  # weights.pt carries the exported setting

    rng = np.random.default_rng(0)
    mono = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    frame = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)

    def stream(path, picture):
        sp = Spatializer(path, sample_rate=16000)
        out = [sp.process(mono[i:i + 1600], picture) for i in range(0, len(mono), 1600)]
        return np.concatenate(out, axis=1)  # (2, n)

    out = stream(bundle.path, frame)
    mirrored = stream(bundle.path, np.ascontiguousarray(frame[:, ::-1]))
    assert np.abs(out[0] - out[1]).max() > 1e-3
    np.testing.assert_allclose(mirrored, out[::-1], atol=1e-4)
    grey = stream(bundle.path, np.full((48, 96, 3), 128, np.uint8))
    np.testing.assert_allclose(grey[0], grey[1], atol=1e-5)
    plain_out, plain_mirrored = stream(plain.path, frame), stream(plain.path, np.ascontiguousarray(frame[:, ::-1]))
    assert np.abs(plain_mirrored - plain_out[::-1]).max() > 1e-3  # not so without the averaging
