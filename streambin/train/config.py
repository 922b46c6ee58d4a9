"""Training configuration: dataclasses with the papers' hyper-parameters as defaults, YAML I/O.

A :class:`Config` is a tree of small dataclasses (``audio``, ``model``, ``train``, ``data``).
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

RECIPES = ("mono2binaural", "apnet")
ARCHS = ("unet", "apnet")
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
    input_rms: float = 0.1
    rms_floor: float = 1e-4

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
    """Architecture. ``visual_size`` is (height, width) of the frames the visual net sees."""

    arch: str = "unet"
    ngf: int = 64
    visual_size: Tuple[int, int] = (224, 448)
    visual_reduced_channels: int = 8
    imagenet_weights: Optional[str] = None

    def validate(self) -> None:
        _choice(self, "model", "arch", ARCHS)
        _positive_int(self, "model", ("ngf", "visual_reduced_channels"))
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
    """Where the data lives. ``format`` "sim" is streambin's synthetic set, "fairplay" FAIR-Play."""

    root: Optional[str] = None
    format: str = "sim"
    fairplay_split_dir: Optional[str] = None
    train_split: str = "train"
    val_split: str = "val"

    def validate(self) -> None:
        _choice(self, "data", "format", DATA_FORMATS)
        for name in ("root", "fairplay_split_dir"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ConfigError(f"data.{name} must be a path string or null, got {v!r}")
        for name in ("train_split", "val_split"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"data.{name} must be a non-empty string")


@dataclass
class Config:
    """The whole configuration. ``recipe`` names a registered recipe (streambin.train.recipes)."""

    recipe: str = "mono2binaural"
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> "Config":
        """Check every field; raises :class:`ConfigError`. Returns self."""
        from streambin.train.recipes import available_recipes

        if self.recipe not in available_recipes():
            raise ConfigError(f"recipe must be one of {sorted(available_recipes())}, got {self.recipe!r}")
        for section in (self.audio, self.model, self.train, self.data):
            section.validate()
        return self

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (tuples become lists) suitable for YAML/JSON/torch.save."""
        return _plain(dataclasses.asdict(self))


_SECTIONS = {"audio": AudioConfig, "model": ModelConfig, "train": TrainConfig, "data": DataConfig}


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
