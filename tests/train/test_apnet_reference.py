"""APNet as Sep-Stereo's reference code builds it: the associative fusion and the pyramid against
a reference written from the paper's equations, the mask convention (masks on L + R, so hard- and
partly panned sources are representable, through every place that applies the masks), the
dilated ResNet-18 and the initialisation."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streambin.nets import APNet, AssociativeConv, BinauralGenerator, ResNet18Trunk, trunk_output_hw
from streambin.train.build import build_generator
from streambin.train.config import Config
from streambin.train.losses import left_right_loss, mono_side_specs

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- the reference

def reference_fusion(audio, visual, weight, bias):
    """Associative-Conv from the paper's equations: K = relu(W v_p + b) per visual position p,
    out[p] = sum_c K[p, c] a[c]. ``audio (B, C_a, H, W)``, ``visual (B, C_v, h, w)``,
    ``weight (C_a, C_v)``, ``bias (C_a,)`` -> ``(B, h*w, H, W)``."""
    kernels = torch.relu(torch.einsum("ac,bcp->bpa", weight, visual.flatten(2)) + bias)
    return torch.einsum("bpa,bahw->bphw", kernels, audio)


def reference_upconv(block, x):
    """ConvT k4 s2 p1 -> BN (running statistics) -> ReLU, with ``block``'s tensors."""
    conv, bn = block[0], block[1]
    y = F.conv_transpose2d(x, conv.weight, conv.bias, stride=2, padding=1)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    return torch.relu(y)


def reference_apnet(ap, decoder, visual):
    """The reference's APNet.forward: fusion of each scale concatenated BEFORE the pyramid so far;
    heads = ConvT + sigmoid, *2 - 1, masks on L + R. Returns (left, right)."""
    fuse = [reference_fusion(a, visual, m.to_kernels.weight[:, :, 0, 0], m.to_kernels.bias)
            for a, m in zip(decoder, ap.assoc)]
    x = reference_upconv(ap.up1, fuse[0])
    x = reference_upconv(ap.up2, torch.cat([fuse[1], x], 1))
    x = reference_upconv(ap.up3, torch.cat([fuse[2], x], 1))
    x = torch.cat([fuse[3], x], 1)
    heads = []
    for head in (ap.head_left, ap.head_right):
        conv = head[0]
        heads.append(torch.sigmoid(F.conv_transpose2d(x, conv.weight, conv.bias, stride=2, padding=1)) * 2 - 1)
    return heads


def decoder_maps(ngf, batch=2, t=64, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c * ngf, 256 // s, t // s, generator=g, dtype=dtype)
            for c, s in ((8, 16), (4, 8), (2, 4), (1, 2))]


def test_associative_conv_matches_the_paper_equations():
    torch.manual_seed(0)
    m = AssociativeConv(512, 32).double()
    audio = torch.randn(2, 32, 16, 4, dtype=torch.float64)
    visual = torch.randn(2, 512, 2, 3, dtype=torch.float64)
    pre = torch.einsum("ac,bcp->bpa", m.to_kernels.weight[:, :, 0, 0], visual.flatten(2)) + m.to_kernels.bias
    assert (pre < 0).float().mean() > 0.2  # the ReLU has work to do
    ours = m(audio, visual)
    ref = reference_fusion(audio, visual, m.to_kernels.weight[:, :, 0, 0], m.to_kernels.bias)
    assert ours.shape == (2, 6, 16, 4)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)
    # Without the ReLU (or with a 1/sqrt(C) scale) it would not match.
    no_relu = torch.einsum("bpa,bahw->bphw", pre, audio)
    assert (ours - no_relu).abs().max() > 1.0
    with pytest.raises(ValueError, match=r"\(B, 32, H, W\)"):
        m(audio[:, :16], visual)


def test_apnet_matches_the_reference_pyramid_float32():
    torch.manual_seed(1)
    ap = APNet(ngf=4, visual_channels=512, positions=6)
    for bn in [m for m in ap.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    ap.eval()
    decoder = decoder_maps(4, dtype=torch.float32)
    visual = torch.randn(2, 512, 2, 3)
    with torch.no_grad():
        out = ap(decoder, visual)
        left, right = reference_apnet(ap, decoder, visual)
    assert out.shape == (2, 2, 2, 256, 64)
    assert (out[:, 0] - left).abs().max() <= 1e-6 and (out[:, 1] - right).abs().max() <= 1e-6
    assert out.abs().max() <= 1.0 and out.std() > 1e-3  # masks on L + R in [-1, 1], not constant


# ----------------------------------------------------------------------------- the mask convention

PANS = [(1.0, 0.0), (0.8, 0.2), (0.5, 0.5), (0.3, 0.7), (0.0, 1.0)]


def oracle_generator(gain_left, gain_right, visual_size=(32, 64)):
    """An APNet generator whose heads output the oracle masks of a source with in-phase ear gains
    ``(gain_left, gain_right)``: on L + R, ``g_ear / (g_left + g_right)`` (+0j) at every bin."""
    torch.manual_seed(0)
    gen = BinauralGenerator("apnet", 4, visual_size).eval()
    for head, g in ((gen.apnet.head_left, gain_left), (gen.apnet.head_right, gain_right)):
        m = g / (gain_left + gain_right)           # in [0, 1]: sigmoid(b) * 2 - 1 = m
        p = (m + 1.0) / 2.0
        logit = 40.0 if p == 1.0 else math.log(p / (1.0 - p))  # sigmoid(40) is 1.0 in float32
        with torch.no_grad():
            head[0].weight.zero_()
            head[0].bias.copy_(torch.tensor([logit, 0.0]))
    return gen


def tones(n, sample_rate=16000):
    t = np.arange(n) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t + 1.0)).astype(np.float32)


@pytest.mark.parametrize("gains", PANS)
def test_oracle_masks_represent_panned_sources_exactly(gains):
    gl, gr = gains
    gen = oracle_generator(gl, gr)
    s = torch.from_numpy(tones(10080))[None]
    audio = torch.stack([gl * s, gr * s], dim=1)               # (1, 2, n): L = gl s, R = gr s
    mono, side = mono_side_specs(audio, Config().audio)
    with torch.no_grad():
        feature = gen.visual(torch.zeros(1, 32, 64, 3, dtype=torch.uint8))
        masks = gen.audio(mono, feature)                        # exported interface, on M
        out = gen.audio_outputs(mono, feature)
    assert masks.shape == (1, 2, 2, 257, 64)
    expected = torch.tensor([2 * gl / (gl + gr), 2 * gr / (gl + gr)])
    assert torch.allclose(masks[0, :, 0, :256], expected[:, None, None].expand(2, 256, 64), atol=1e-6)
    assert masks[0, :, 1].abs().max() <= 1e-6
    # The training loss is zero at the oracle: the heads can be trained towards it.
    assert float(left_right_loss(out["left_right"], mono, side)) <= 1e-10 * float(side.pow(2).mean() + mono.pow(2).mean())
    # The runtime's mask multiply (streambin.dsp "direct": ear = mask * M) gives L and R.
    from streambin import dsp
    spec = torch.complex(mono[0, 0], mono[0, 1]).T.numpy().astype(np.complex64)   # (T, 257)
    ears = dsp.apply_mask(spec, masks[0].numpy(), mode="direct")                   # (2, T, 257)
    target = [torch.complex(m[0, 0], m[0, 1]).T.numpy() for m in (mono + side, mono - side)]
    for ear in range(2):
        err = np.abs(ears[ear, :, :256] - target[ear][:, :256]).max()
        assert err <= 1e-5 * np.abs(target[0]).max(), (gains, ear, err)


def test_masks_on_mono_could_not_represent_a_partly_panned_source():
    # What the fix is for: masks in [-1, 1] on M = (L + R) / 2 cap each ear at the mono mix.
    # In-phase gains 0.8 / 0.2: L = 0.8 S, M = 0.5 S, the best capped mask gives 0.5 S.
    gl, gr = 0.8, 0.2
    best_on_mono = np.clip(gl / ((gl + gr) / 2), -1, 1) * (gl + gr) / 2
    assert abs(gl - best_on_mono) / gl == pytest.approx(0.375)
    on_sum = gl / (gl + gr)                                  # the reference's mask on L + R
    assert -1 <= on_sum <= 1 and on_sum * (gl + gr) == pytest.approx(gl)


@pytest.mark.parametrize("gains", [(1.0, 0.0), (0.8, 0.2)])
def test_panned_oracle_through_the_evaluation_protocol(gains):
    from streambin.train.evaluate import predict_clip

    gl, gr = gains
    gen = oracle_generator(gl, gr)
    s = tones(16000)
    frames = np.zeros((10, 32, 64, 3), np.uint8)
    pred = predict_clip(gen, 0.5 * (gl + gr) * s, frames, 10.0, Config().audio)
    assert pred.shape == (2, 16000)
    for ear, g in enumerate(gains):
        # Exact but for the Nyquist bin (passed through from the mono) and float32 rounding.
        err = np.abs(pred[ear] - g * s).max()
        assert err <= 1e-3 * np.abs(s).max(), (gains, ear, err)


def test_panned_oracle_through_export_and_the_streaming_engine(tmp_path):
    # The exported graph and the runtime apply the left/right masks the same way as training:
    # a source panned hard left comes out of the Spatializer in the left ear only, at 2 x mono.
    from export.to_onnx import export_bundle
    from streambin import Spatializer
    from streambin.train.checkpoint import save_checkpoint

    cfg = Config(recipe="apnet")
    cfg.model.arch, cfg.model.ngf, cfg.model.visual_size = "apnet", 4, (32, 64)
    cfg.validate()
    gen = oracle_generator(1.0, 0.0)
    save_checkpoint(str(tmp_path / "oracle.pt"), config=cfg, model=gen)
    bundle = export_bundle(tmp_path / "oracle.pt", tmp_path / "bundle")
    assert bundle.mask_kind == "left_right"

    mono = tones(16000)
    sp = Spatializer(str(tmp_path / "bundle"), backend="onnxruntime", device="cpu", sample_rate=16000,
                     block_frames=4, num_threads=1)
    frame = np.zeros((32, 64, 3), np.uint8)
    out = np.concatenate([sp.process(mono[i:i + 1600], frame) for i in range(0, len(mono), 1600)], axis=1)
    d = sp.latency_samples                       # out[:, t] belongs to mono[t - d]
    settled = slice(8000, 16000)                 # past the first context window
    expected_left = 2.0 * mono[settled.start - d:settled.stop - d]
    assert np.abs(out[0, settled] - expected_left).max() <= 1e-3 * np.abs(expected_left).max()
    assert np.abs(out[1, settled]).max() <= 1e-3 * np.abs(expected_left).max()


# ----------------------------------------------------------------------------- dilated ResNet-18

@pytest.mark.parametrize("size", [(224, 448), (64, 128), (32, 64), (72, 100), (96, 40)])
def test_dilated_trunk_output_shape(size):
    trunk = ResNet18Trunk(dilated=True).eval()
    with torch.no_grad():
        out = trunk(torch.randn(1, 3, *size))
    assert tuple(out.shape[2:]) == trunk_output_hw(*size, dilated=True)
    if size == (224, 448):
        assert out.shape == (1, 512, 7, 14)  # 14x28 after layer4, 2x2 average pool


def test_dilated_trunk_sizes_and_errors():
    assert trunk_output_hw(224, 448, dilated=True) == trunk_output_hw(224, 448) == (7, 14)
    assert trunk_output_hw(72, 100, dilated=True) == (2, 3) and trunk_output_hw(72, 100) == (3, 4)
    with pytest.raises(ValueError, match="too small for the dilated"):
        trunk_output_hw(16, 64, dilated=True)


def test_dilated_layer4_is_the_a_trous_form_of_the_plain_one():
    # Same weights; the dilated stride-1 layer4 evaluated at even positions equals the plain
    # stride-2 layer4 (the a trous identity), and the trunk ends with a 2x2 average pool.
    torch.manual_seed(0)
    plain, dilated = ResNet18Trunk().eval(), ResNet18Trunk(dilated=True).eval()
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == \
           [(k, v.shape) for k, v in dilated.state_dict().items()]
    dilated.load_state_dict(plain.state_dict())
    x = torch.randn(1, 256, 8, 14)  # a layer3 output
    with torch.no_grad():
        full = dilated.layer4(x)
        assert full.shape == (1, 512, 8, 14)
        torch.testing.assert_close(full[:, :, ::2, ::2], plain.layer4(x), atol=1e-5, rtol=1e-5)
        frames = torch.randn(1, 3, 128, 224)
        stem = dilated.layer3(dilated.layer2(dilated.layer1(dilated.maxpool(dilated.relu(dilated.bn1(dilated.conv1(frames)))))))
        torch.testing.assert_close(dilated(frames), F.avg_pool2d(dilated.layer4(stem), 2, 2))
    convs = {n: m for n, m in dilated.layer4.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert all(m.stride == (1, 1) for m in convs.values())
    assert convs["0.conv1"].dilation == (1, 1) and convs["0.conv2"].dilation == (2, 2)
    assert convs["1.conv1"].dilation == convs["1.conv2"].dilation == (2, 2)


@pytest.mark.parametrize("recipe,arch,expected", [
    ("apnet", "apnet", "resnet18_dilated"), ("sepstereo", "apnet", "resnet18_dilated"),
    ("mono2binaural", "unet", "resnet18"), ("multitask", "apnet", "resnet18"),
])
def test_sepstereo_recipes_default_to_the_dilated_trunk(recipe, arch, expected):
    cfg = Config(recipe=recipe)
    cfg.model.arch, cfg.model.ngf, cfg.model.visual_size = arch, 4, (64, 96)
    cfg.model.visual_gate = recipe == "multitask"
    cfg.validate()
    assert cfg.model.visual_net == "auto"
    gen = build_generator(cfg)
    assert gen.visual_net == expected and gen.trunk.dilated == (expected == "resnet18_dilated")
    cfg.model.visual_net = "resnet18"                      # the plain one stays available
    assert build_generator(cfg.validate()).trunk.dilated is False


def test_generator_takes_concrete_trunk_names():
    assert BinauralGenerator("apnet", 4, (64, 96)).visual_net == "resnet18"
    assert BinauralGenerator("apnet", 4, (64, 96), visual_net="resnet18_dilated").trunk.dilated
    with pytest.raises(ValueError, match="visual_net must be one of"):
        BinauralGenerator("apnet", 4, (64, 96), visual_net="auto")


# ----------------------------------------------------------------------------- initialisation

def _uniform_bound(m):
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
    return 1.0 / math.sqrt(fan_in)


def test_apnet_layers_keep_pytorch_default_init():
    torch.manual_seed(0)
    ap = APNet(ngf=16, visual_channels=512, positions=8)
    convs = [m for m in ap.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    for m in convs:  # kaiming_uniform(a=sqrt(5)) and the default bias: both within 1/sqrt(fan_in)
        b = _uniform_bound(m)
        assert m.weight.abs().max() <= b and m.bias.abs().max() <= b and m.bias.abs().max() > 0
    # N(0, 0.02) would put ~2% of the 8192 kernel-map weights beyond this bound (0.044).
    assert _uniform_bound(ap.assoc[0].to_kernels) < 3 * 0.02
    for bn in [m for m in ap.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_unet_init_follows_the_reference_weights_init():
    torch.manual_seed(0)
    gen = BinauralGenerator("unet", 16, (64, 128))
    convs = [m for m in gen.unet.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    for m in convs + [gen.reduce[0]]:  # conv biases: PyTorch's default, not zeros
        assert 0 < m.bias.abs().max() <= _uniform_bound(m)
    bn_w = torch.cat([m.weight.detach() for m in gen.unet.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(float(bn_w.mean()) - 1.0) < 0.005 and 0.015 < float(bn_w.std()) < 0.025


# ----------------------------------------------------------------------------- Sep-Stereo

def test_sepstereo_separation_goes_through_the_stereo_apnet():
    from torch.utils.data import default_collate

    from streambin.train.recipes import get_recipe
    from streambin.train.recipes.sepstereo import rearranged_map
    from tests.train.synthetic import PictureSideDataset

    # The reference's Rearrange: each row max-pooled over the width, a on column 0, b on the last.
    rows_a, rows_b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    m = rearranged_map(rows_a, rows_b, 5)
    assert m.shape == (2, 3, 4, 5)
    assert torch.equal(m[..., 0], rows_a) and torch.equal(m[..., -1], rows_b) and not m[..., 1:-1].any()
    with pytest.raises(ValueError, match=r"\(B, C, h\)"):
        rearranged_map(rows_a, rows_b[:, :2], 5)

    cfg = Config(recipe="sepstereo")
    cfg.model.arch, cfg.model.ngf, cfg.model.visual_size = "apnet", 4, (32, 64)
    cfg.train.batch_size = 4
    r = get_recipe("sepstereo")(cfg.validate())
    r.build()
    # One APNet for both tasks (no second set of parameters), every parameter trained.
    assert {id(p) for p in r.step_module.parameters()} == {id(p) for p in r.generator.parameters()}
    ds = PictureSideDataset(4)
    losses = r.training_step(default_collate([ds[i] for i in range(4)]))
    assert set(losses) == {"backbone", "heads", "sep_backbone", "sep_heads", "total"}
    expected = (losses["backbone"] + 0.5 * losses["heads"]
                + 0.25 * losses["sep_backbone"] + 0.5 * losses["sep_heads"])
    torch.testing.assert_close(losses["total"], expected)
    losses["total"].backward()
    assert [n for n, p in r.step_module.named_parameters() if p.grad is None] == []
