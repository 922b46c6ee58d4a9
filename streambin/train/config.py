"""Training configuration: dataclasses with the papers' hyper-parameters as defaults, YAML I/O.

A :class:`Config` is a tree of small dataclasses (``audio``, ``model``, ``train``, ``data``,
``recipes``: the options of the issue-5 recipes, each key prefixed by its recipe's name).
Defaults are the numbers of Mono2Binaural (Gao & Grauman 2019) and Sep-Stereo (Zhou et al.
2020); CPU-sized overrides live in ``configs/cpu_small.yaml``.

Loading validates every key and value and raises :class:`ConfigError` naming the offending key,
so a typo in a YAML file or a ``--set`` override never passes silently::

    cfg = load_config("configs/cpu_small.yaml", overrides=["model.ngf=16", "train.lr_audio=5e-4"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional, Tuple

import yaml

from streambin.signal_contract import INPUT_RMS, RMS_FLOOR

RECIPES = ("mono2binaural", "apnet", "multitask", "sagm", "avconsistency", "geometry", "sepstereo")
ARCHS = ("unet", "apnet")
VISUAL_NETS = ("auto", "resnet18", "resnet18_dilated", "c3d")
DATA_FORMATS = ("sim", "fairplay")
LOG_KINDS = ("csv", "none")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key."""


@dataclass
class AudioConfig:
    """Signal parameters shared with export and runtime (docs/architecture.md)."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop: int = 160
    context_frames: int = 64
    input_rms: float = INPUT_RMS     # streambin.signal_contract
    rms_floor: float = RMS_FLOOR

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def crop_samples(self) -> int:
        """Samples whose centred STFT gives exactly ``context_frames`` frames (10080 at T=64)."""
        return (self.context_frames - 1) * self.hop

    def validate(self) -> None:
        _positive_int(self, "audio", ("sample_rate", "n_fft", "win_length", "hop", "context_frames"))
        if self.win_length > self.n_fft:
            raise ConfigError(f"audio.win_length ({self.win_length}) must be <= audio.n_fft ({self.n_fft})")
        if self.n_fft != 512:
            # The U-Nets halve the 256 non-Nyquist bins 5 times; other sizes need other nets.
            raise ConfigError(f"audio.n_fft must be 512 (257 bins, 256 used by the U-Net), got {self.n_fft}")
        if self.context_frames % 32 != 0:
            raise ConfigError(f"audio.context_frames must be a multiple of 32 (5 stride-2 convs), "
                              f"got {self.context_frames}")
        _positive_float(self, "audio", ("input_rms", "rms_floor"))


@dataclass
class ModelConfig:
    """Architecture. ``visual_size`` is (height, width) of the frames the visual net sees.

    ``visual_net`` "auto" (default: the recipe's ``default_visual_net``, its paper's trunk: the
    dilated ResNet-18 for apnet and sepstereo, as Sep-Stereo's reference; the plain one for the
    other recipes), "resnet18", "resnet18_dilated"
    (dilated layer4 + 2x2 average pool; loads the same ImageNet weights) or "c3d"
    (spatio-temporal trunk over ``visual_frames`` frames, SAGM's option; the exported ``visual``
    repeats its one frame over time).
    ``visual_gate``: a sigmoid attention gate on the trunk map inside ``visual`` (the
    generation-task gate of the multitask recipe). Default off = the papers' generators.
    ``nyquist_input``: feed the U-Net all 257 bins, as the reference does, instead of the 256
    below Nyquist (default false, the behaviour of every bundle and checkpoint made before the
    option existed; docs/architecture.md "The Nyquist bin").
    """

    arch: str = "unet"
    ngf: int = 64
    visual_size: Tuple[int, int] = (224, 448)
    visual_reduced_channels: int = 8
    imagenet_weights: Optional[str] = None
    visual_net: str = "auto"
    visual_frames: int = 4
    visual_gate: bool = False
    nyquist_input: bool = False

    def validate(self) -> None:
        _choice(self, "model", "arch", ARCHS)
        _choice(self, "model", "visual_net", VISUAL_NETS)
        _positive_int(self, "model", ("ngf", "visual_reduced_channels", "visual_frames"))
        if self.visual_frames % 4 != 0:
            raise ConfigError(f"model.visual_frames must be a multiple of 4 (the c3d trunk halves time "
                              f"twice), got {self.visual_frames}")
        for name in ("visual_gate", "nyquist_input"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        if self.visual_net == "c3d" and self.imagenet_weights is not None:
            raise ConfigError("model.imagenet_weights is a ResNet-18 state_dict: it needs a ResNet-18 "
                              f"model.visual_net ('auto', 'resnet18', 'resnet18_dilated'), got 'c3d'")
        vs = self.visual_size
        if (not isinstance(vs, (tuple, list)) or len(vs) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in vs)):
            raise ConfigError(f"model.visual_size must be [height, width] of positive ints, got {vs!r}")
        self.visual_size = (int(vs[0]), int(vs[1]))
        if self.imagenet_weights is not None and not isinstance(self.imagenet_weights, str):
            raise ConfigError(f"model.imagenet_weights must be a path string or null, got {self.imagenet_weights!r}")


@dataclass
class TrainConfig:
    """Optimisation. ``batch_size`` is the GLOBAL batch (split over DDP processes)."""

    lr_audio: float = 1e-3
    lr_visual: float = 1e-4
    weight_decay: float = 5e-4
    betas: Tuple[float, float] = (0.9, 0.999)
    lr_decay: float = 0.94
    lr_decay_every_epochs: int = 10
    batch_size: int = 256
    epochs: int = 1000
    max_steps: Optional[int] = None
    num_workers: int = 2
    val_every_steps: int = 1000
    checkpoint_every_steps: int = 1000
    log_every_steps: int = 10
    seed: int = 0
    flip_prob: float = 0.0
    sync_batchnorm: bool = True
    freeze_trunk: bool = False
    log: str = "csv"

    def validate(self) -> None:
        _positive_float(self, "train", ("lr_audio", "lr_visual", "lr_decay"))
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ConfigError(f"train.weight_decay must be a float >= 0, got {self.weight_decay!r}")
        b = self.betas
        if (not isinstance(b, (tuple, list)) or len(b) != 2
                or not all(isinstance(x, (int, float)) and 0.0 <= x < 1.0 for x in b)):
            raise ConfigError(f"train.betas must be two floats in [0, 1), got {b!r}")
        self.betas = (float(b[0]), float(b[1]))
        _positive_int(self, "train", ("lr_decay_every_epochs", "batch_size", "epochs", "val_every_steps",
                                      "checkpoint_every_steps", "log_every_steps"))
        if self.max_steps is not None:
            _positive_int(self, "train", ("max_steps",))
        for name in ("num_workers", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"train.{name} must be an int >= 0, got {v!r}")
        if not isinstance(self.flip_prob, (int, float)) or not 0.0 <= self.flip_prob <= 1.0:
            raise ConfigError(f"train.flip_prob must be in [0, 1], got {self.flip_prob!r}")
        for name in ("sync_batchnorm", "freeze_trunk"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"train.{name} must be true or false, got {getattr(self, name)!r}")
        _choice(self, "train", "log", LOG_KINDS)


@dataclass
class DataConfig:
    """Where the data lives. ``format`` "sim" is streambin's synthetic set, "fairplay" FAIR-Play.

    ``blank_prob``: share of training items turned into "the picture says nothing" examples (a
    uniform frame, the mono mix as the target in both ears; streambin.train.data.blank_item).
    """

    root: Optional[str] = None
    format: str = "sim"
    fairplay_split_dir: Optional[str] = None
    train_split: str = "train"
    val_split: str = "val"
    blank_prob: float = 0.0

    def validate(self) -> None:
        _choice(self, "data", "format", DATA_FORMATS)
        if not (isinstance(self.blank_prob, (int, float)) and 0.0 <= self.blank_prob <= 1.0):
            raise ConfigError(f"data.blank_prob must be a number in [0, 1], got {self.blank_prob!r}")
        for name in ("root", "fairplay_split_dir"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ConfigError(f"data.{name} must be a path string or null, got {v!r}")
        for name in ("train_split", "val_split"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"data.{name} must be a non-empty string")


@dataclass
class RecipesConfig:
    """Options of the issue-5 recipes (streambin.train.recipes), one prefix per recipe.

    Loss weights are tuples in the order the recipe's docstring gives. Where a paper states a
    value it is the default (multitask (44, 44, 1); geometry (10, 1, 0.01, 1)); the others are
    ours and say so in the recipe's docstring.
    """

    # multitask: (lambda1 L_D backbone side, lambda2 L_C left/right heads, lambda3 L_cls)
    multitask_lambdas: Tuple[float, float, float] = (44.0, 44.0, 1.0)
    # sagm: (L1 on the side spectrogram, adversarial term of the generator)
    sagm_lambdas: Tuple[float, float] = (1.0, 0.01)
    # avconsistency: (side MSE on labelled clips, consistency BCE)
    avc_lambdas: Tuple[float, float] = (1.0, 0.01)
    avc_labelled_fraction: float = 1.0
    avc_ramp_width: float = 0.1          # sigmoid ramp width, fraction of the image width
    avc_ild_scale_db: float = 3.0        # ILD (dB) giving a target of sigmoid(1) = 0.73
    avc_temperature: float = 0.1         # softmax temperature of the cosine co-attention
    # geometry: (binaural, spatial coherence, geometric consistency, RIR prediction)
    geometry_lambdas: Tuple[float, float, float, float] = (10.0, 1.0, 0.01, 1.0)
    geometry_margin: float = 0.1         # alpha: allowed squared distance of unit features
    geometry_frame_gap_s: float = 1.0    # time between the two frames of the consistency loss
    geometry_rir_samples: int = 10080    # RIR length compared (0.63 s at 16 kHz -> 64 STFT frames)
    geometry_rt60_weight: float = 1.0    # weight of the RT60 term inside the RIR loss
    # sepstereo: weight of the separative loss added to the stereophonic loss
    sepstereo_lambda_sep: float = 1.0
    # mono2binaural / apnet: weight of an auxiliary, training-only localisation loss that teaches
    # the visual trunk where the sources are (BCE on which trunk-map columns hold a source, from
    # the simulator's boxes). 0 = the papers' loss. Not in the papers: ours, for training the
    # visual net from scratch on a CPU budget (see docs/results.md).
    localisation_weight: float = 0.0
    # mono2binaural: weight of a training-only loss on the left/right level difference per band
    # (losses.level_difference_loss). 0 = the paper's loss. Ours: the MSE alone lets predicted
    # level differences shrink where the picture is ambiguous.
    level_difference_weight: float = 0.0

    def validate(self) -> None:
        for name, n in (("multitask_lambdas", 3), ("sagm_lambdas", 2), ("avc_lambdas", 2),
                        ("geometry_lambdas", 4)):
            v = getattr(self, name)
            if (not isinstance(v, (tuple, list)) or len(v) != n or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
                    for x in v)):
                raise ConfigError(f"recipes.{name} must be {n} finite numbers >= 0, got {v!r}")
            setattr(self, name, tuple(float(x) for x in v))
        f = self.avc_labelled_fraction
        if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0.0 <= f <= 1.0:
            raise ConfigError(f"recipes.avc_labelled_fraction must be in [0, 1], got {f!r}")
        _positive_float(self, "recipes", ("avc_ramp_width", "avc_ild_scale_db", "avc_temperature",
                                          "geometry_frame_gap_s"))
        for name in ("geometry_margin", "geometry_rt60_weight", "sepstereo_lambda_sep",
                     "localisation_weight", "level_difference_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"recipes.{name} must be a finite number >= 0, got {v!r}")
        _positive_int(self, "recipes", ("geometry_rir_samples",))


@dataclass
class Config:
    """The whole configuration. ``recipe`` names a registered recipe (streambin.train.recipes)."""

    recipe: str = "mono2binaural"
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    recipes: RecipesConfig = field(default_factory=RecipesConfig)

    def validate(self) -> "Config":
        """Check every field; raises :class:`ConfigError`. Returns self."""
        from streambin.train.recipes import available_recipes

        if self.recipe not in available_recipes():
            raise ConfigError(f"recipe must be one of {sorted(available_recipes())}, got {self.recipe!r}")
        for section in (self.audio, self.model, self.train, self.data, self.recipes):
            section.validate()
        return self

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (tuples become lists) suitable for YAML/JSON/torch.save."""
        return _plain(dataclasses.asdict(self))


_SECTIONS = {"audio": AudioConfig, "model": ModelConfig, "train": TrainConfig, "data": DataConfig,
             "recipes": RecipesConfig}


def config_from_dict(d: Dict[str, Any], base: Optional[Config] = None) -> Config:
    """Build a validated :class:`Config` from a nested dict, on top of ``base`` (default: defaults).

    Unknown sections or keys raise :class:`ConfigError` listing the accepted ones.
    """
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(d).__name__}")
    cfg = _copy(base) if base is not None else Config()
    for key, value in d.items():
        if key == "recipe":
            cfg.recipe = value
            continue
        if key not in _SECTIONS:
            raise ConfigError(f"unknown config section {key!r}; expected one of {['recipe', *_SECTIONS]}")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"config section {key!r} must be a mapping, got {type(value).__name__}")
        section = getattr(cfg, key)
        names = {f.name for f in dataclasses.fields(section)}
        for k, v in value.items():
            if k not in names:
                raise ConfigError(f"unknown key {key}.{k}; accepted keys: {sorted(names)}")
            setattr(section, k, _coerce(section, k, v, f"{key}.{k}"))
    return cfg.validate()


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML: ``16``, ``[112, 224]``, ``null``)."""
    nested: Dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. model.ngf=16")
        path, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        parts = path.strip().split(".")
        if parts == ["recipe"]:
            nested["recipe"] = value
        elif len(parts) == 2:
            nested.setdefault(parts[0], {})[parts[1]] = value
        else:
            raise ConfigError(f"override key {path!r} must be 'recipe' or 'section.key'")
    return config_from_dict(nested, base=cfg)


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (if given), then ``overrides``; validated."""
    cfg = Config()
    if path is not None:
        try:
            with open(path, "r", encoding="utf-8") as f:
                d = yaml.safe_load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        try:
            cfg = config_from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(cfg, overrides)


def save_config(cfg: Config, path: str) -> None:
    """Write ``cfg`` as YAML (loadable by :func:`load_config`)."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)


# ----------------------------------------------------------------------------- helpers

def _copy(cfg: Config) -> Config:
    return Config(recipe=cfg.recipe, **{k: dataclasses.replace(getattr(cfg, k)) for k in _SECTIONS})


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _coerce(section, name: str, value, key: str):
    """Light type coercion: ints accepted for floats, lists for tuples; the rest checked in validate."""
    default = next(f for f in dataclasses.fields(section) if f.name == name).type
    if isinstance(value, int) and not isinstance(value, bool) and "float" in str(default) \
            and "int" not in str(default):
        return float(value)
    if isinstance(value, float) and "int" in str(default) and "float" not in str(default):
        if not math.isfinite(value) or value != int(value):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if isinstance(value, list) and "Tuple" in str(default):
        return tuple(value)
    return value


def _positive_int(obj, section: str, names) -> None:
    for name in names:
        v = getattr(obj, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{section}.{name} must be a positive int, got {v!r}")


def _positive_float(obj, section: str, names) -> None:
    for name in names:
        v = getattr(obj, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise ConfigError(f"{section}.{name} must be a positive finite number, got {v!r}")


def _choice(obj, section: str, name: str, choices) -> None:
    v = getattr(obj, name)
    if v not in choices:
        raise ConfigError(f"{section}.{name} must be one of {list(choices)}, got {v!r}")
