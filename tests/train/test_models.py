"""Shapes, parameter names and counts of the training models (streambin.nets)."""

import pytest
import torch

from streambin.nets import (APNet, AudioUNet, BinauralGenerator, ResNet18Trunk, load_imagenet_weights,
                            trunk_output_hw)
from streambin.train.build import build_generator
from streambin.train.config import Config
from streambin.train.recipes import get_recipe


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def small_cfg(arch, visual_size=(32, 64), ngf=8):
    cfg = Config(recipe="mono2binaural" if arch == "unet" else "apnet")
    cfg.model.arch, cfg.model.ngf, cfg.model.visual_size = arch, ngf, visual_size
    return cfg.validate()


def test_resnet_trunk_paper_shape():
    trunk = ResNet18Trunk().eval()
    with torch.no_grad():
        out = trunk(torch.randn(1, 3, 224, 448))
    assert out.shape == (1, 512, 7, 14)


@pytest.mark.parametrize("hw", [(32, 64), (33, 65), (112, 224), (17, 100)])
def test_trunk_output_hw_matches_forward(hw):
    trunk = ResNet18Trunk().eval()
    with torch.no_grad():
        out = trunk(torch.randn(1, 3, *hw))
    assert tuple(out.shape[2:]) == trunk_output_hw(*hw)


def test_torchvision_key_names():
    keys = set(ResNet18Trunk().state_dict())
    for k in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
              "layer3.1.conv2.weight", "layer4.0.downsample.1.weight", "layer4.1.bn2.num_batches_tracked"]:
        assert k in keys, k
    assert not any(k.startswith(("fc.", "avgpool")) for k in keys)
    assert "layer1.0.downsample.0.weight" not in keys  # no projection where shapes agree
    # torchvision's resnet18 state_dict has 122 entries, 2 of them fc.*
    assert len(keys) == 120


def test_load_imagenet_weights(tmp_path):
    torch.manual_seed(1)
    src = ResNet18Trunk()
    state = {"module." + k: v for k, v in src.state_dict().items()}  # DataParallel-style prefix
    state["module.fc.weight"], state["module.fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    dst = ResNet18Trunk()
    load_imagenet_weights(dst, str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k

    bad = dict(state)
    del bad["module.layer3.0.conv1.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="layer3.0.conv1.weight"):
        load_imagenet_weights(ResNet18Trunk(), str(tmp_path / "bad.pth"))
    with pytest.raises(FileNotFoundError, match="resnet18"):
        load_imagenet_weights(ResNet18Trunk(), str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not read"):
        load_imagenet_weights(ResNet18Trunk(), str(tmp_path / "junk.pth"))


def test_paper_sizes_param_counts():
    # The sizes of the Mono2Binaural reference code (2.5D-Visual-Sound): 23.1 M audio U-Net
    # params + 11.2 M ResNet-18 trunk = 34.3 M.
    unet = AudioUNet(64, 8 * 7 * 14)
    assert abs(n_params(unet) - 23.1e6) < 0.05e6
    assert abs(n_params(ResNet18Trunk()) - 11.2e6) < 0.05e6
    gen = build_generator(Config())
    assert gen.feature_shape == (784,)
    assert abs(n_params(gen) - 34.3e6) < 0.05e6


def test_unet_shapes_and_range():
    unet = AudioUNet(4, 16)
    mask, dec = unet.forward_features(torch.randn(3, 2, 256, 64), torch.randn(3, 16))
    assert mask.shape == (3, 2, 256, 64)
    assert mask.abs().max() <= 1.0
    assert [tuple(d.shape) for d in dec] == [(3, 32, 16, 4), (3, 16, 32, 8), (3, 8, 64, 16), (3, 4, 128, 32)]


@pytest.mark.parametrize("arch,visual_size,feature_shape,n_masks,nyq", [
    ("unet", (32, 64), (16,), 1, (0.0, 0.0)),
    ("unet", (64, 96), (8 * 2 * 3,), 1, (0.0, 0.0)),
    ("apnet", (32, 64), (512, 1, 2), 2, (1.0, 0.0)),
    ("apnet", (64, 96), (512, 2, 3), 2, (1.0, 0.0)),
])
def test_generator_shapes(arch, visual_size, feature_shape, n_masks, nyq):
    torch.manual_seed(0)
    gen = build_generator(small_cfg(arch, visual_size)).eval()
    assert gen.feature_shape == feature_shape
    assert gen.mask_kind == ("side" if arch == "unet" else "left_right")
    frames = torch.randint(0, 256, (2, *visual_size, 3), dtype=torch.uint8)
    with torch.no_grad():
        feat = gen.visual(frames)
        assert feat.shape == (2, *feature_shape) and feat.dtype == torch.float32
        spec = torch.randn(2, 2, 257, 64)
        spec_before = spec.clone()
        mask = gen.audio(spec, feat)
        assert mask.shape == (2, n_masks, 2, 257, 64) and mask.dtype == torch.float32
        # Masks on M: side in [-1, 1]; left/right (APNet's masks on L + R, times 2) in [-2, 2].
        assert mask.abs().max() <= (1.0 if arch == "unet" else 2.0)
        assert torch.all(mask[:, :, 0, 256] == nyq[0]) and torch.all(mask[:, :, 1, 256] == nyq[1])
        assert torch.equal(gen(spec, frames), mask)
        # Batch items are independent in eval mode (no cross-batch mixing anywhere).
        assert torch.allclose(gen.audio(spec[:1], feat[:1]), mask[:1], atol=1e-6)
    assert torch.equal(spec, spec_before)  # input untouched (no in-place ops on inputs)


def test_trunk_map_at_stride_16_is_the_map_layer4_goes_on_from():
    gen = build_generator(small_cfg("unet")).eval()
    frames = torch.randint(0, 256, (2, 32, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        fine, coarse = gen.trunk_map(frames, stride=16), gen.trunk_map(frames)
        assert fine.shape == (2, 256, 2 * coarse.shape[2], 2 * coarse.shape[3])
        assert torch.equal(gen.trunk.layer4(fine), coarse)
    with pytest.raises(ValueError, match="stride must be 16 or 32"):
        gen.trunk_map(frames, stride=8)


def test_generator_input_errors():
    gen = build_generator(small_cfg("unet")).eval()
    with pytest.raises(ValueError, match=r"\(B, 32, 64, 3\) uint8"):
        gen.visual(torch.zeros(1, 32, 64, 3))  # float, not uint8
    with pytest.raises(ValueError, match=r"\(B, 32, 64, 3\)"):
        gen.visual(torch.zeros(1, 3, 32, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 2, 257, T\)"):
        gen.audio(torch.zeros(1, 2, 256, 64), torch.zeros(1, 16))
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        gen.audio(torch.zeros(1, 2, 257, 64), torch.zeros(1, 17))


@pytest.mark.parametrize("recipe", ["mono2binaural", "apnet"])
def test_every_parameter_gets_a_gradient(recipe):
    # DDP without find_unused_parameters requires this; also no leftover unused modules.
    from tests.train.synthetic import PictureSideDataset, tiny_config
    from torch.utils.data import default_collate

    cfg = tiny_config(recipe)
    cfg.model.ngf = 4
    r = get_recipe(recipe)(cfg)
    r.build()
    ds = PictureSideDataset(4)
    r.training_step(default_collate([ds[i] for i in range(4)]))["total"].backward()
    missing = [n for n, p in r.step_module.named_parameters() if p.grad is None]
    assert missing == []


def test_export_friendly_dynamic_batch():
    # torch.export with a dynamic batch dimension: no data-dependent control flow, fixed shapes.
    gen = build_generator(small_cfg("apnet")).eval()

    class Audio(torch.nn.Module):
        def __init__(self, g):
            super().__init__()
            self.g = g

        def forward(self, spec, feature):
            return self.g.audio(spec, feature)

    batch = torch.export.Dim("batch", min=1, max=64)
    spec, feat = torch.randn(2, 2, 257, 64), torch.randn(2, 512, 1, 2)
    ep = torch.export.export(Audio(gen), (spec, feat), dynamic_shapes=({0: batch}, {0: batch}))
    spec3, feat3 = torch.randn(3, 2, 257, 64), torch.randn(3, 512, 1, 2)
    with torch.no_grad():
        assert torch.allclose(ep.module()(spec3, feat3), gen.audio(spec3, feat3), atol=1e-5)


def test_apnet_positions_and_fusion():
    ap = APNet(ngf=4, visual_channels=512, positions=6)
    dec = [torch.randn(2, c, 16 * s, 4 * s) for c, s in ((32, 1), (16, 2), (8, 4), (4, 8))]
    out = ap(dec, torch.randn(2, 512, 2, 3))
    assert out.shape == (2, 2, 2, 256, 64)
    fused = ap.assoc[0](dec[0], torch.randn(2, 512, 2, 3))
    assert fused.shape == (2, 6, 16, 4)  # one channel per visual position
    assert isinstance(BinauralGenerator("apnet", 4, (32, 64)).apnet, APNet)


@pytest.mark.parametrize("arch", ["unet", "apnet"])
def test_nyquist_input_option(arch):
    # Default (every bundle and checkpoint made before the option): the U-Net never sees bin 256.
    # With nyquist_input (the reference's U-Net input) it does; the weights are the same tensors.
    torch.manual_seed(0)
    dropped = build_generator(small_cfg(arch)).eval()
    assert dropped.nyquist_input is False and Config().model.nyquist_input is False
    cfg = small_cfg(arch)
    cfg.model.nyquist_input = True
    fed = build_generator(cfg.validate()).eval()
    sd_dropped, sd_fed = dropped.state_dict(), fed.state_dict()
    assert [(k, v.shape) for k, v in sd_dropped.items()] == [(k, v.shape) for k, v in sd_fed.items()]
    fed.load_state_dict(sd_dropped)
    spec = torch.randn(2, 2, 257, 64)
    louder = spec.clone()
    louder[:, 0, 256] += 10.0                           # only the Nyquist bin differs
    with torch.no_grad():
        feat = dropped.visual(torch.randint(0, 256, (2, 32, 64, 3), dtype=torch.uint8))
        assert torch.equal(dropped.audio(spec, feat), dropped.audio(louder, feat))
        base, moved = fed.audio(spec, feat), fed.audio(louder, feat)
    assert (base - moved).abs().max() > 1e-4
    with pytest.raises(Exception, match="nyquist_input"):
        from streambin.train.config import apply_overrides
        apply_overrides(Config(), ["model.nyquist_input=3"])


def test_shipped_bundle_model_config_builds_the_same_generator():
    # The default bundle's stored model section, and the same section without the keys that
    # bundles made before visual_net "auto" and nyquist_input lack, must give the plain
    # ResNet-18 and the 256-bin U-Net, with the bundle's feature shape.
    import json

    from streambin.bundle import default_bundle_path
    from streambin.nets import generator_kwargs_from_model
    from streambin.train.build import generator_kwargs
    from streambin.train.config import config_from_dict

    bundle = json.loads((default_bundle_path() / "config.json").read_text())
    older = {k: v for k, v in bundle["model"].items() if k not in ("visual_net", "nyquist_input")}
    for model in (bundle["model"], older):
        cfg = config_from_dict({"recipe": bundle["recipe"], "model": model})
        assert cfg.model.nyquist_input is False and cfg.model.visual_net in ("resnet18", "auto")
        # The training Config and the runtime's plain-mapping reading give the same generator.
        for kwargs in (generator_kwargs(cfg), generator_kwargs_from_model(model, bundle["recipe"])):
            gen = BinauralGenerator(**kwargs)
            assert gen.visual_net == "resnet18" and not gen.trunk.dilated and gen.unet_input_bins == 256
            assert list(gen.feature_shape) == bundle["visual"]["feature_shape"]


def test_every_recipe_default_visual_net_comes_from_the_nets_table():
    # One owner: streambin.nets.generator.RECIPE_VISUAL_NETS. The recipes' attribute, training's
    # "auto" and the runtime's "auto" all agree with it.
    from streambin.nets import RECIPE_VISUAL_NETS, default_visual_net, generator_kwargs_from_model
    from streambin.train.build import generator_kwargs
    from streambin.train.recipes import available_recipes
    from streambin.train.recipes.base import Recipe, register_recipe

    recipes = available_recipes()
    assert set(RECIPE_VISUAL_NETS) <= set(recipes)
    assert {n for n in recipes if default_visual_net(n) == "resnet18_dilated"} == {"apnet", "sepstereo"}
    for name, cls in recipes.items():
        assert cls.default_visual_net == default_visual_net(name), name
        cfg = Config(recipe=name)
        cfg.model.arch = cls.arch
        cfg.validate()
        assert generator_kwargs(cfg)["visual_net"] == cls.default_visual_net, name
        model = {k: v for k, v in cfg.to_dict()["model"].items() if k != "visual_net"}  # older config
        assert generator_kwargs_from_model(model, name)["visual_net"] == cls.default_visual_net, name

    class Overrides(Recipe):
        name = "overrides_its_trunk"
        default_visual_net = "resnet18_dilated"

    with pytest.raises(ValueError, match="RECIPE_VISUAL_NETS"):
        register_recipe(Overrides)
    assert "overrides_its_trunk" not in available_recipes()


def test_generator_kwargs_from_model_matches_training_and_names_bad_keys():
    from streambin.nets import generator_kwargs_from_model
    from streambin.nets.generator import MODEL_KEYS
    from streambin.train.build import generator_kwargs
    from streambin.train.config import ModelConfig

    # Every key of the training config's model section is understood by the runtime.
    assert set(MODEL_KEYS) == set(vars(ModelConfig()))
    cfg = small_cfg("apnet")
    cfg.model.visual_gate, cfg.model.nyquist_input = True, True
    cfg.validate()
    assert generator_kwargs(cfg) == generator_kwargs_from_model(cfg.to_dict()["model"], "apnet")
    assert generator_kwargs(cfg)["visual_net"] == "resnet18_dilated"
    # A section that lacks the newer options builds what a Config with their defaults builds.
    bare = {"arch": "unet", "ngf": 4, "visual_size": [32, 64]}
    full = Config(recipe="mono2binaural")
    full.model.arch, full.model.ngf, full.model.visual_size = "unet", 4, (32, 64)
    a = BinauralGenerator(**generator_kwargs_from_model(bare, "mono2binaural"))
    b = BinauralGenerator(**generator_kwargs(full.validate()))
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    assert (a.visual_net, a.nyquist_input, a.gate, a.feature_shape) == (b.visual_net, b.nyquist_input, b.gate,
                                                                        b.feature_shape)
    with pytest.raises(ValueError, match=r"unknown model keys \['visual_depth'\]"):
        generator_kwargs_from_model(dict(bare, visual_depth=3), "mono2binaural")
    with pytest.raises(ValueError, match=r"lacks \['ngf'\]"):
        generator_kwargs_from_model({"arch": "unet", "visual_size": [32, 64]}, "mono2binaural")
