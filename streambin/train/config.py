"""Training configuration: dataclasses with the papers' hyper-parameters as defaults, YAML I/O.

A :class:`Config` is a tree of small dataclasses (``audio``, ``model``, ``train``, ``data``,
``recipes``: the options of the recipes, each key prefixed by its recipe's name).
Defaults are the numbers of Mono2Binaural (Gao & Grauman 2019) and Sep-Stereo (Zhou et al.
2020); CPU-sized overrides live in ``configs/cpu_small.yaml``.

The dataclasses are also OmegaConf structured-config schemas: OmegaConf reads the YAML files and
``--set`` overrides and converts every value to its field's type (``16`` to ``16.0`` for a float,
``5e-4`` to a float, ``[112, 224]`` to a tuple). A value it cannot convert, or an unknown key,
raises :class:`ConfigError` naming the key (with the expected type and the value, or the accepted
keys), so a typo in a YAML file or a ``--set`` override never passes silently. The ``validate()``
methods hold streambin's own rules on top: ranges, choices and checks across fields. Callers get
plain dataclass instances::

    cfg = load_config("configs/cpu_small.yaml", overrides=["model.ngf=16", "train.lr_audio=5e-4"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from streambin.signal_contract import INPUT_RMS, RMS_FLOOR, STFT_FRAMINGS

# how losses.level_difference_loss scores an error (recipes.level_difference_error)
LEVEL_DIFFERENCE_ERRORS = ("absolute", "squared")

RECIPES = ("mono2binaural", "apnet", "multitask", "sagm", "avconsistency", "geometry", "sepstereo")
ARCHS = ("unet", "apnet")
VISUAL_NETS = ("auto", "resnet18", "resnet18_dilated", "c3d", "compact")
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
    repeats its one frame over time) or "compact" (a CPU-sized trunk with the ResNet-18's map
    shape, trained by distillation: ``python -m streambin.train.distill_visual``).
    ``visual_gate``: a sigmoid attention gate on the trunk map inside ``visual`` (the
    generation-task gate of the multitask recipe). Default off = the papers' generators.
    ``nyquist_input``: feed the U-Net all 257 bins, as the reference does, instead of the 256
    below Nyquist (default false, the behaviour of every bundle and checkpoint made before the
    option existed; docs/architecture.md "The Nyquist bin").
    ``mirror_average``: the exported model averages its output with its ear-swapped output for
    the mirrored frame (``streambin.nets.generator``: mirror-equivariant by construction, twice
    the compute); usually switched on at export (``python -m export.to_onnx --mirror-average``).
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
    mirror_average: bool = False

    def validate(self) -> None:
        _choice(self, "model", "arch", ARCHS)
        _choice(self, "model", "visual_net", VISUAL_NETS)
        _positive_int(self, "model", ("ngf", "visual_reduced_channels", "visual_frames"))
        if self.visual_frames % 4 != 0:
            raise ConfigError(f"model.visual_frames must be a multiple of 4 (the c3d trunk halves time "
                              f"twice), got {self.visual_frames}")
        if self.visual_net in ("c3d", "compact") and self.imagenet_weights is not None:
            raise ConfigError("model.imagenet_weights is a ResNet-18 state_dict: it needs a ResNet-18 "
                              f"model.visual_net ('auto', 'resnet18', 'resnet18_dilated'), got {self.visual_net!r}")
        vs = self.visual_size
        if len(vs) != 2 or min(vs) < 1:
            raise ConfigError(f"model.visual_size must be [height, width] of positive ints, got {vs!r}")


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
    # How the training losses frame each crop's spectrograms (streambin.signal_contract.stft_torch):
    # "centered" (torch's center=True, the papers') or "stream" (the engine's causal frames, so the
    # newest frames, the ones the engine plays, hold real samples instead of padding). The
    # network sees the same framing it is scored on. mono2binaural and apnet only.
    stft_framing: str = "centered"
    log: str = "csv"

    def validate(self) -> None:
        _positive_float(self, "train", ("lr_audio", "lr_visual", "lr_decay"))
        _non_negative(self, "train", ("weight_decay", "num_workers", "seed"))
        b = self.betas
        if len(b) != 2 or not all(0.0 <= x < 1.0 for x in b):
            raise ConfigError(f"train.betas must be two floats in [0, 1), got {b!r}")
        _positive_int(self, "train", ("lr_decay_every_epochs", "batch_size", "epochs", "val_every_steps",
                                      "checkpoint_every_steps", "log_every_steps"))
        if self.max_steps is not None:
            _positive_int(self, "train", ("max_steps",))
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ConfigError(f"train.flip_prob must be in [0, 1], got {self.flip_prob!r}")
        _choice(self, "train", "log", LOG_KINDS)
        _choice(self, "train", "stft_framing", STFT_FRAMINGS)


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
        if not 0.0 <= self.blank_prob <= 1.0:
            raise ConfigError(f"data.blank_prob must be a number in [0, 1], got {self.blank_prob!r}")
        for name in ("train_split", "val_split"):
            if not getattr(self, name):
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
    # False: the supervised control of a semi-supervised run: the unlabelled clips are left out
    # of training, so what the consistency loss gains from them can be measured.
    avc_unlabelled_clips: bool = True
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
    # mono2binaural / apnet: weight of a refinement of that loss: where in its column each
    # source's box centre lies (L1 on a per-column offset in [0, 1], read from the feature the
    # audio net receives). The column loss alone says which quarter of the picture holds a
    # source; the audio net needs finer azimuths (a linear probe on the shipped default's feature
    # misses unseen pictures' azimuths by 10 degrees on average: streambin.train.position_probe,
    # docs/results.md). It did not improve that in fine-tuning, so it is off by default.
    # Needs localisation_weight > 0.
    localisation_offset_weight: float = 0.0
    # mono2binaural / apnet: leave items whose picture shows silent distractors out of those
    # localisation losses (their audio loss stays). There the picture alone cannot say which
    # object sounds, and a visual read-out trained on such scenes read clear unseen ones worse
    # (docs/results.md, "what limits the azimuth on unseen pictures"). Needs
    # localisation_weight > 0 and sidecars that mark distractors ("silent").
    localisation_skip_distractor_scenes: bool = False
    # mono2binaural: weight of a training-only loss on the left/right level difference per band
    # (losses.level_difference_loss). 0 = the paper's loss. Ours: the MSE alone lets predicted
    # level differences shrink where the picture is ambiguous.
    level_difference_weight: float = 0.0
    # mono2binaural: how both level-difference terms (this one and newest_frames_level_difference_weight's)
    # score an error: "absolute" (least at the median of the possible level differences) or
    # "squared" (least at their mean). Ours: both compress the level differences alike where the
    # picture leaves the side open (docs/results.md, "Training framed as the engine frames").
    level_difference_error: str = "absolute"
    # mono2binaural / apnet: score the mirror-averaged output (the frame's masks averaged with the
    # mirrored frame's, ears swapped: model.mirror_average, what the shipped engine plays) instead
    # of the plain output. Ours: averaging a network that is not mirror-consistent shrinks its
    # level differences; trained through the average, the network learns to make up for it.
    # Each step then runs the trunk and the audio net twice.
    mirror_averaged_loss: bool = False
    # mono2binaural: weight of a second side loss on the frames the engine plays, added to the one
    # over the whole crop: newest_frames frames ending newest_frames_lookahead frames before the
    # crop's newest (the engine's block_frames and lookahead_frames). Ours: the engine plays only
    # the newest frames of each context, the loss over the crop weighs every frame alike. Best
    # with train.stft_framing "stream", where those frames hold what the engine's hold.
    newest_frames_weight: float = 0.0
    # mono2binaural: weight of the level-difference loss on those same frames. Ours: the side
    # loss weighs loud frames most and lets quiet ones' level differences go wide; the metric
    # of per-frame level error (SPL) weighs every frame alike.
    newest_frames_level_difference_weight: float = 0.0
    newest_frames: int = 3
    newest_frames_lookahead: int = 1

    def validate(self) -> None:
        for name, n in (("multitask_lambdas", 3), ("sagm_lambdas", 2), ("avc_lambdas", 2),
                        ("geometry_lambdas", 4)):
            v = getattr(self, name)
            if len(v) != n or not all(math.isfinite(x) and x >= 0 for x in v):
                raise ConfigError(f"recipes.{name} must be {n} finite numbers >= 0, got {v!r}")
        f = self.avc_labelled_fraction
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"recipes.avc_labelled_fraction must be in [0, 1], got {f!r}")
        _positive_float(self, "recipes", ("avc_ramp_width", "avc_ild_scale_db", "avc_temperature",
                                          "geometry_frame_gap_s"))
        _non_negative(self, "recipes", ("geometry_margin", "geometry_rt60_weight", "sepstereo_lambda_sep",
                                        "localisation_weight", "localisation_offset_weight",
                                        "level_difference_weight", "newest_frames_weight",
                                        "newest_frames_level_difference_weight", "newest_frames_lookahead"))
        _positive_int(self, "recipes", ("geometry_rir_samples", "newest_frames"))
        _choice(self, "recipes", "level_difference_error", LEVEL_DIFFERENCE_ERRORS)


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
        """Check every field; raises :class:`ConfigError`. Returns self.

        The types first, through OmegaConf, converting in place (ints to floats, lists to tuples),
        so a Config built or changed in Python is checked as a loaded one is; then the rules of
        the sections' ``validate()``.
        """
        typed = _typed(Config(), dataclasses.asdict(self))
        self.recipe = typed.recipe
        for name in _SECTIONS:
            vars(getattr(self, name)).update(vars(getattr(typed, name)))
        return self._check_rules()

    def _check_rules(self) -> "Config":
        from streambin.train.recipes import available_recipes
        from streambin.train.recipes.parts import LocalisationRecipeMixin

        recipes = available_recipes()
        if self.recipe not in recipes:
            raise ConfigError(f"recipe must be one of {sorted(recipes)}, got {self.recipe!r}")
        for section in (self.audio, self.model, self.train, self.data, self.recipes):
            section.validate()
        # The step modules of the LocalisationRecipeMixin recipes are the ones that can average
        # and the ones with the localisation losses.
        localised = sorted(name for name, cls in recipes.items() if issubclass(cls, LocalisationRecipeMixin))
        if self.recipes.mirror_averaged_loss and self.recipe not in localised:
            raise ConfigError(f"recipes.mirror_averaged_loss is implemented for {localised}, not {self.recipe!r}")
        if self.train.stft_framing != "centered" and self.recipe not in localised:
            raise ConfigError(f"train.stft_framing {self.train.stft_framing!r} is implemented for {localised}, "
                              f"not {self.recipe!r} (use 'centered')")
        r = self.recipes
        for name in ("newest_frames_weight", "newest_frames_level_difference_weight"):
            if getattr(r, name) > 0 and self.recipe != "mono2binaural":
                raise ConfigError(f"recipes.{name} > 0 is implemented for mono2binaural, not {self.recipe!r}")
        if r.newest_frames_weight > 0 or r.newest_frames_level_difference_weight > 0:
            if r.newest_frames + r.newest_frames_lookahead > self.audio.context_frames:
                raise ConfigError(f"recipes.newest_frames + recipes.newest_frames_lookahead "
                                  f"({r.newest_frames} + {r.newest_frames_lookahead}) must be <= "
                                  f"audio.context_frames ({self.audio.context_frames})")
        # options that refine the localisation loss: (name, as set, why they need that loss)
        refinements = (("localisation_offset_weight", "localisation_offset_weight > 0",
                        "it refines the column loss and uses its source positions"),
                       ("localisation_skip_distractor_scenes", "localisation_skip_distractor_scenes",
                        "it chooses which items that loss counts"))
        for name, as_set, why in refinements:
            if not getattr(self.recipes, name):
                continue
            if self.recipe not in localised:
                raise ConfigError(f"recipes.{name} is implemented for {localised}, not {self.recipe!r}")
            if self.recipes.localisation_weight <= 0:
                raise ConfigError(f"recipes.{as_set} needs recipes.localisation_weight > 0 ({why})")
        return self

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (tuples become lists) suitable for YAML/JSON/torch.save."""
        # By hand: omegaconf 2.4's to_container keeps tuples (2.3 gives lists), and checkpoints
        # and bundles have always stored lists.
        return _plain(dataclasses.asdict(self))


_SECTIONS = {"audio": AudioConfig, "model": ModelConfig, "train": TrainConfig, "data": DataConfig,
             "recipes": RecipesConfig}


def config_from_dict(d: Optional[Mapping[str, Any]], base: Optional[Config] = None) -> Config:
    """Build a validated :class:`Config` from a nested dict, on top of ``base`` (default: defaults).

    ``d`` may be a config saved by an older streambin (``Config.to_dict()``, a checkpoint's
    ``"config"``): keys it lacks keep their defaults. Unknown sections or keys raise
    :class:`ConfigError` listing the accepted ones.
    """
    if d is None:
        d = {}
    if OmegaConf.is_config(d):
        d = OmegaConf.to_container(d)  # interpolations stay unresolved until the merge
    if not isinstance(d, Mapping):
        raise ConfigError(f"config must be a mapping of sections, got {type(d).__name__}")
    return _typed(base if base is not None else Config(), d)._check_rules()


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML: ``16``, ``[112, 224]``, ``null``)."""
    layers = []
    for item in overrides:  # one at a time, so that a parse error names its override
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. model.ngf=16")
        try:
            layers.append(OmegaConf.from_dotlist([item]))
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
    return config_from_dict(OmegaConf.merge({}, *layers), base=cfg)


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (if given), then ``overrides``; validated."""
    cfg = Config()
    if path is not None:
        try:
            d = OmegaConf.load(path)
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
    OmegaConf.save(OmegaConf.structured(cfg), path)


# ----------------------------------------------------------------------------- helpers

def _typed(base: Config, d: Mapping[str, Any]) -> Config:
    """``base`` (type-checked) with the sections and keys of ``d`` merged in by OmegaConf.

    One ``OmegaConf.update`` per key, not one ``OmegaConf.merge`` of ``d``: with omegaconf 2.4 a
    merge that fails on a tuple's length (``model.visual_size=[224]``) raises "TupleConfig length
    1 does not match type hint length 2" with no key in it, while here each failure knows its key.
    """
    try:
        node = OmegaConf.structured(base)
    except OmegaConfBaseException as exc:  # a base Config changed in Python to a wrong type
        raise ConfigError(f"{str(exc).splitlines()[0]} (key {exc.full_key})") from None
    for key, value in d.items():
        if key == "recipe":
            _assign(node, Config, key, value)
        elif key not in _SECTIONS:
            raise ConfigError(f"unknown config section {key!r}; expected one of {['recipe', *_SECTIONS]}")
        elif value is None:  # a section left empty in a YAML file
            continue
        elif not isinstance(value, Mapping):
            raise ConfigError(f"config section {key!r} must be a mapping, got {type(value).__name__}")
        else:
            for k, v in value.items():
                _assign(node, _SECTIONS[key], f"{key}.{k}", v)
    try:
        cfg = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:  # e.g. a ${...} interpolation that does not resolve
        raise ConfigError(str(exc).splitlines()[0]) from None
    for name, cls in _SECTIONS.items():  # omegaconf 2.3 gives lists for tuple fields, 2.4 tuples
        section = getattr(cfg, name)
        for f, hint in _field_types(cls).items():
            if typing.get_origin(hint) is tuple:
                setattr(section, f, tuple(getattr(section, f)))
    return cfg


def _assign(node, cls, key: str, value) -> None:
    """Set ``key`` ("recipe" or "section.name", a field of dataclass ``cls``) of ``node`` to
    ``value``, converted to the field's type by OmegaConf; a :class:`ConfigError` naming the key
    and the expected type if it cannot be."""
    types = _field_types(cls)
    name = key.split(".", 1)[-1]
    if name not in types:
        raise ConfigError(f"unknown key {key}; accepted keys: {sorted(types)}")
    wrong_type = ConfigError(f"{key} must be {_type_name(types[name])}, got {value!r}")
    # OmegaConf turns any int into a bool (model.visual_gate=3 gives True); a flag takes only
    # true or false here, so that a number given by mistake is refused.
    if types[name] is bool and not isinstance(value, bool):
        raise wrong_type
    try:
        OmegaConf.update(node, key, value, merge=False)
    except OmegaConfBaseException:
        raise wrong_type from None


@functools.cache
def _field_types(cls) -> Dict[str, Any]:
    """The fields of dataclass ``cls`` and their types (resolved from the string annotations)."""
    return typing.get_type_hints(cls)


def _type_name(hint) -> str:
    """What a field of type ``hint`` takes, for messages: ``int``, ``str or null``, ``2 ints``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return f"{len(args)} {args[0].__name__}s"
    if type(None) in args:
        return f"{_type_name(args[0])} or null"
    return "true or false" if hint is bool else hint.__name__


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _positive_int(obj, section: str, names) -> None:
    for name in names:
        v = getattr(obj, name)
        if v < 1:
            raise ConfigError(f"{section}.{name} must be a positive int, got {v!r}")


def _positive_float(obj, section: str, names) -> None:
    for name in names:
        v = getattr(obj, name)
        if not math.isfinite(v) or v <= 0:
            raise ConfigError(f"{section}.{name} must be a positive finite number, got {v!r}")


def _non_negative(obj, section: str, names) -> None:
    for name in names:
        v = getattr(obj, name)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"{section}.{name} must be a finite number >= 0, got {v!r}")


def _choice(obj, section: str, name: str, choices) -> None:
    v = getattr(obj, name)
    if v not in choices:
        raise ConfigError(f"{section}.{name} must be one of {list(choices)}, got {v!r}")
