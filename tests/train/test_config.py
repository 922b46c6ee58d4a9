"""streambin.train.config: OmegaConf-typed loading, its error messages, and old saved configs."""

import dataclasses
import json

import pytest
import yaml

from streambin.train.config import Config, ConfigError, apply_overrides, config_from_dict, load_config, save_config


def test_unknown_key_names_it_and_the_accepted_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key model\.ngff; accepted keys: \[.*'ngf'.*'visual_size'"):
        apply_overrides(Config(), ["model.ngff=16"])
    with pytest.raises(ConfigError, match=r"unknown config section 'optim'; expected one of \[.*'train'"):
        apply_overrides(Config(), ["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"unknown key model\.audio"):  # a section is not a key
        config_from_dict({"model": {"audio": {}}})
    (tmp_path / "c.yaml").write_text("train: {batch_size: 8, lr: 0.1}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key train\.lr; accepted keys: \[.*'lr_audio'"):
        load_config(str(tmp_path / "c.yaml"))


@pytest.mark.parametrize("override,message", [
    ("model.ngf=zero", "model.ngf must be int, got 'zero'"),
    ("model.ngf=16.5", "model.ngf must be int, got 16.5"),
    ("train.lr_audio=fast", "train.lr_audio must be float, got 'fast'"),
    ("train.max_steps=[1]", r"train.max_steps must be int or null, got \[1\]"),
    ("model.visual_gate=3", "model.visual_gate must be true or false, got 3"),
    ("model.visual_size=5", "model.visual_size must be 2 ints, got 5"),
    ("model.ngf.x=1", r"model.ngf must be int, got \{'x': 1\}"),
    ("model=3", "config section 'model' must be a mapping, got int"),
])
def test_wrong_type_names_the_key_the_type_and_the_value(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [override])


def test_wrong_type_set_in_python_is_caught_by_validate():
    cfg = Config()
    cfg.train.batch_size = "big"
    with pytest.raises(ConfigError, match="train.batch_size must be int, got 'big'"):
        cfg.validate()


def test_override_values_and_tuple_fields():
    cfg = load_config(None, ["train.lr_audio=0.0005", "train.lr_visual=5e-4", "model.visual_gate=true",
                             "train.max_steps=null", "model.visual_size=[64, 128]",
                             "recipes.multitask_lambdas=[1, 2, 3]", "train.betas=[0.5, 0.9]", "data.root=/d"])
    assert cfg.train.lr_audio == cfg.train.lr_visual == 0.0005
    assert cfg.model.visual_gate is True and cfg.train.max_steps is None and cfg.data.root == "/d"
    assert cfg.model.visual_size == (64, 128) and cfg.train.betas == (0.5, 0.9)
    lambdas = cfg.recipes.multitask_lambdas
    assert lambdas == (1.0, 2.0, 3.0) and all(type(x) is float for x in lambdas)
    # The last override of a key wins; a list replaces the whole tuple.
    assert apply_overrides(cfg, ["model.visual_size=[32, 64]", "model.visual_size=[16, 32]"]).model.visual_size \
        == (16, 32)
    # Python-built configs come out of validate() with the same types.
    py = Config()
    py.model.visual_size, py.recipes.level_difference_weight = [32, 64], 1
    py.validate()
    assert py.model.visual_size == (32, 64) and type(py.recipes.level_difference_weight) is float


def test_results_are_plain_dataclasses():
    cfg = load_config(None, ["model.ngf=8"])
    assert type(cfg) is Config and dataclasses.is_dataclass(cfg.model)
    assert dataclasses.replace(cfg.model, ngf=4).ngf == 4 and dataclasses.asdict(cfg)["model"]["ngf"] == 8


def test_configs_saved_before_still_load(tmp_path):
    from streambin.train.checkpoint import config_from_checkpoint

    cfg = load_config(None, ["model.ngf=16", "model.visual_size=[112, 224]", "recipes.sagm_lambdas=[2, 0.5]"])
    # What checkpoints store (Config.to_dict(): plain lists, JSON-able) and dataclasses.asdict (tuples).
    stored = cfg.to_dict()
    assert type(stored["model"]["visual_size"]) is list and json.loads(json.dumps(stored)) == stored
    assert config_from_dict(stored) == cfg == config_from_dict(dataclasses.asdict(cfg))
    assert config_from_checkpoint({"config": stored}) == cfg
    # What save_config writes, read back as a plain dict.
    save_config(cfg, str(tmp_path / "c.yaml"))
    assert config_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text())) == cfg
    # A config from before later options existed: their defaults fill in.
    old = Config().to_dict()
    del old["model"]["nyquist_input"], old["recipes"]["level_difference_weight"], old["data"]["blank_prob"]
    loaded = config_from_dict(old)
    assert loaded == Config() and loaded.model.nyquist_input is False


def test_empty_yaml_section_keeps_the_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("recipe: apnet\nmodel: {arch: apnet}\ndata:\n")
    cfg = load_config(str(tmp_path / "c.yaml"))
    assert (cfg.recipe, cfg.model.arch, cfg.data) == ("apnet", "apnet", Config().data)
