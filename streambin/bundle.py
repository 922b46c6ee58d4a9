"""The model bundle: a directory the runtime loads.

Layout::

    BUNDLE/
      config.json        everything the runtime needs (schema below, format_version 1)
      visual.onnx        frames (B, H_v, W_v, 3) uint8 RGB -> feature (B, *feature_shape) float32
      audio.onnx         spec (B, 2, n_fft//2+1, T) float32, feature -> mask (B, n_masks, 2, n_fft//2+1, K)
                         (K = output_frames: the masks of the context's last K frames)
      weights.pt         optional: checkpoint subset for the torch backend
      engines/<key>/     optional: TensorRT plans keyed by GPU, compute capability, TensorRT version

config.json (format_version 1)::

    {"format_version": 1, "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop": 160,
     "window": "hann_periodic", "context_frames": 64, "output_frames": 17 (optional, default
     context_frames), "shared_context": true (optional, default false), "input_rms": 0.1,
     "rms_floor": 1e-4,
     "mask_kind": "side" | "left_right", "n_masks": 1 | 2,
     "visual": {"height": H, "width": W, "mean": [3 floats], "std": [3 floats],
                "input_format": "NHWC_uint8_RGB", "feature_shape": [ints]},
                (mean/std: the ImageNet normalisation visual.onnx applies inside itself; a record,
                validated but not read by the runtime, which feeds the graph uint8 RGB)
     "recipe": str, "arch": str, "model": {...},
     "graphs": {"visual": "visual.onnx", "audio": "audio.onnx"},
     "engines": {KEY: {"visual": "engines/KEY/visual.plan", "audio": "engines/KEY/audio.plan",
                       "gpu": str, "compute_capability": "9.0", "tensorrt": "10.x.y",
                       "fp16": bool, "max_batch": int}},
     "export": {"opset": int, "max_abs_err_audio": float, "max_abs_err_visual": float,
                "fp16": bool},
     "versions": {"streambin": str, "torch": str, "onnx": str, "onnxruntime": str},
     "inference": {"mirror_average": bool, "side_gain": float},  (optional, each key optional)
     "side_renderer": {"graph": "localiser.onnx", "table": "side_renderer.npz",
                       "input": {"height": 96, "width": 192}, "peaks": 4, "power": 4.0,
                       "hfov_deg": 90.0, "weigh_peaks_by": "heat"}}   (optional; mask_kind "side" only;
                       "weigh_peaks_by" optional: "heat" or "sounding")

``output_frames`` K: the audio graph returns only the masks of the context's last K frames (what
a streaming run plays: the engine's block and lookahead must fit in them, ``block_frames +
lookahead_frames <= K``), computed from only what they need (``python -m export.to_onnx
--output-frames K``); without the key the graph returns the whole context's masks.
``shared_context`` true: the audio graph also takes ``spec`` of batch 1 with a feature of batch
B (one context under B features, encoded once; masks of batch B), which the engine's mirror
averaging uses; without it both batches must be equal.

The bundle is the trained artefact only: runtime settings (block size, lookahead, device,
threads) are not stored here. ``inference`` says how the model's prediction is formed from its
graphs: ``mirror_average`` true means the engine averages the output for each frame with the
ear-swapped output for its mirror image (streambin.signal_contract) unless the caller turns it
off. A graph exported with ``model.mirror_average`` does that averaging inside itself
(``Bundle.graph_mirror_average``; its feature then holds both frames' features).
``side_gain`` (default 1) scales the part of the masks that differs between the ears
(streambin.signal_contract): a model that under-predicts level differences can be exported with
a gain fitted on validation data (``python -m streambin.train.calibrate_side_gain``); callers
may override it.

``side_renderer`` (optional): a dense object localiser graph and an average head's filter table
whose rendered side the engine blends with the model's side mask (streambin.side_renderer holds
the files' layout; ``python -m export.add_side_renderer`` adds them to a bundle).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from streambin.signal_contract import check_side_gain

log = logging.getLogger("streambin")

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WINDOWS = ("hann_periodic",)
INPUT_FORMAT = "NHWC_uint8_RGB"
#: mask kind -> number of complex masks the audio graph emits
MASK_KINDS = {"side": 1, "left_right": 2}
#: graph name -> (input names, output names), the contract of docs/architecture.md
GRAPH_IO = {
    "visual": (("frames",), ("feature",)),
    "audio": (("spec", "feature"), ("mask",)),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PathLike = Union[str, os.PathLike]


class BundleError(ValueError):
    """A bundle directory or its config.json is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle (see the module docstring for the layout).

    STFT parameters are in samples at ``sample_rate`` (Hz); ``visual_size`` is (height, width)
    in pixels; ``feature_shape`` excludes the batch axis. ``graphs`` maps "visual"/"audio" to
    absolute ONNX paths; ``engines`` maps an engine key to its config entry with absolute plan
    paths (only entries whose plans exist); ``weights`` is the torch weights file or None.
    """

    path: Path
    config: Dict[str, Any]
    sample_rate: int
    n_fft: int
    win_length: int
    hop: int
    window: str
    context_frames: int
    output_frames: int
    input_rms: float
    rms_floor: float
    mask_kind: str
    n_masks: int
    visual_size: Tuple[int, int]
    feature_shape: Tuple[int, ...]
    recipe: str
    arch: str
    graphs: Dict[str, Path]
    engines: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    weights: Optional[Path] = None
    graph_mirror_average: bool = False
    shared_context: bool = False
    inference_mirror_average: bool = False
    inference_side_gain: float = 1.0
    #: the validated ``side_renderer`` section with ``graph`` and ``table`` as absolute paths, or None
    side_renderer: Optional[Dict[str, Any]] = None

    @property
    def n_bins(self) -> int:
        """Number of STFT bins, n_fft // 2 + 1 (257 for n_fft 512)."""
        return self.n_fft // 2 + 1

    @property
    def spec_shape(self) -> Tuple[int, int, int]:
        """Audio graph input shape without batch: (2, n_bins, context_frames)."""
        return (2, self.n_bins, self.context_frames)

    @property
    def frame_shape(self) -> Tuple[int, int, int]:
        """Visual graph input shape without batch: (height, width, 3) uint8 RGB."""
        return (self.visual_size[0], self.visual_size[1], 3)

    @property
    def mask_shape(self) -> Tuple[int, int, int, int]:
        """Audio graph output shape without batch: (n_masks, 2, n_bins, output_frames), the masks
        of the context's last ``output_frames`` frames."""
        return (self.n_masks, 2, self.n_bins, self.output_frames)

    def __repr__(self) -> str:
        return (f"Bundle({str(self.path)!r}, recipe={self.recipe!r}, arch={self.arch!r}, "
                f"mask_kind={self.mask_kind!r}, sample_rate={self.sample_rate})")


# ----------------------------------------------------------------------------- validation

def _err(where: str, msg: str) -> BundleError:
    return BundleError(f"{where}: {msg}")


def _get(cfg: dict, key: str, types, where: str, what: str):
    """cfg[key] checked against ``types`` (bool is never accepted as a number)."""
    if key not in cfg:
        raise _err(where, f"missing required key '{key}' (expected {what})")
    val = cfg[key]
    if isinstance(val, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _err(where, f"key '{key}' must be {what}, got {val!r}")
    if not isinstance(val, types):
        raise _err(where, f"key '{key}' must be {what}, got {type(val).__name__} {val!r}")
    return val


def _positive_int(cfg: dict, key: str, where: str) -> int:
    val = _get(cfg, key, int, where, "a positive integer")
    if val <= 0:
        raise _err(where, f"key '{key}' must be a positive integer, got {val}")
    return val


def _positive_float(cfg: dict, key: str, where: str) -> float:
    val = float(_get(cfg, key, (int, float), where, "a positive number"))
    if not (math.isfinite(val) and val > 0):
        raise _err(where, f"key '{key}' must be a positive finite number, got {val}")
    return val


def _float3(cfg: dict, key: str, where: str, positive: bool) -> Tuple[float, float, float]:
    val = _get(cfg, key, list, where, "a list of 3 numbers (R, G, B)")
    if len(val) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in val):
        raise _err(where, f"key '{key}' must be a list of 3 numbers (R, G, B), got {val!r}")
    if positive and not all(v > 0 for v in val):
        raise _err(where, f"key '{key}' must hold 3 positive numbers, got {val!r}")
    return tuple(float(v) for v in val)


def validate_config(cfg: Any, where: str = CONFIG_NAME) -> Dict[str, Any]:
    """Check a config dict against format_version 1; returns the typed fields.

    Raises BundleError naming ``where``, the key and what was expected. Checks types, ranges
    and STFT consistency: ``n_fft`` even, ``win_length <= n_fft``, ``hop <= win_length``,
    ``(n_fft - win_length)`` even (the window is centred in the FFT frame).
    """
    if not isinstance(cfg, dict):
        raise _err(where, f"must hold a JSON object, got {type(cfg).__name__}")
    version = _get(cfg, "format_version", int, where, f"the integer {FORMAT_VERSION}")
    if version != FORMAT_VERSION:
        raise _err(where, f"format_version {version} is not supported (expected {FORMAT_VERSION}); "
                          "re-export the bundle with this streambin version")
    out: Dict[str, Any] = {}
    for key in ("sample_rate", "n_fft", "win_length", "hop", "context_frames"):
        out[key] = _positive_int(cfg, key, where)
    n_fft, win, hop = out["n_fft"], out["win_length"], out["hop"]
    if n_fft % 2:
        raise _err(where, f"n_fft must be even, got {n_fft}")
    if win > n_fft:
        raise _err(where, f"win_length ({win}) must be <= n_fft ({n_fft})")
    if hop > win:
        raise _err(where, f"hop ({hop}) must be <= win_length ({win}) or samples are skipped")
    if (n_fft - win) % 2:
        raise _err(where, f"n_fft - win_length must be even to centre the window "
                          f"(n_fft {n_fft}, win_length {win})")
    window = _get(cfg, "window", str, where, f"one of {list(WINDOWS)}")
    if window not in WINDOWS:
        raise _err(where, f"window must be one of {list(WINDOWS)}, got {window!r}")
    out["window"] = window
    out["output_frames"] = out["context_frames"]
    if "output_frames" in cfg:
        k = _positive_int(cfg, "output_frames", where)
        if k > out["context_frames"]:
            raise _err(where, f"output_frames ({k}) must be <= context_frames ({out['context_frames']}): the "
                              "audio graph returns masks of the context's last output_frames frames")
        out["output_frames"] = k
    out["input_rms"] = _positive_float(cfg, "input_rms", where)
    out["rms_floor"] = _positive_float(cfg, "rms_floor", where)
    mask_kind = _get(cfg, "mask_kind", str, where, f"one of {sorted(MASK_KINDS)}")
    if mask_kind not in MASK_KINDS:
        raise _err(where, f"mask_kind must be one of {sorted(MASK_KINDS)}, got {mask_kind!r}")
    out["mask_kind"] = mask_kind
    n_masks = _positive_int(cfg, "n_masks", where)
    if n_masks != MASK_KINDS[mask_kind]:
        raise _err(where, f"n_masks must be {MASK_KINDS[mask_kind]} for mask_kind "
                          f"{mask_kind!r}, got {n_masks}")
    out["n_masks"] = n_masks

    vis = _get(cfg, "visual", dict, where, "an object with height, width, mean, std, "
                                          "input_format, feature_shape")
    vwhere = f"{where} ['visual']"
    out["visual_size"] = (_positive_int(vis, "height", vwhere), _positive_int(vis, "width", vwhere))
    # mean/std record the normalisation the visual graph applies inside itself (it takes uint8
    # RGB); the runtime never applies them, so they are checked here but not carried into Bundle.
    _float3(vis, "mean", vwhere, positive=False)
    _float3(vis, "std", vwhere, positive=True)
    fmt = _get(vis, "input_format", str, vwhere, repr(INPUT_FORMAT))
    if fmt != INPUT_FORMAT:
        raise _err(vwhere, f"input_format must be {INPUT_FORMAT!r}, got {fmt!r}")
    fshape = _get(vis, "feature_shape", list, vwhere, "a non-empty list of positive integers")
    if not fshape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                             for d in fshape):
        raise _err(vwhere, f"feature_shape must be a non-empty list of positive integers, "
                           f"got {fshape!r}")
    out["feature_shape"] = tuple(fshape)

    out["recipe"] = _get(cfg, "recipe", str, where, "the recipe name (string)")
    out["arch"] = _get(cfg, "arch", str, where, "the architecture name (string)")
    _get(cfg, "model", dict, where, "an object of model hyper-parameters")
    graphs = _get(cfg, "graphs", dict, where, '{"visual": "visual.onnx", "audio": "audio.onnx"}')
    for name in GRAPH_IO:
        rel = _get(graphs, name, str, f"{where} ['graphs']", "a file name relative to the bundle")
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise _err(f"{where} ['graphs']", f"'{name}' must be a path inside the bundle, "
                                              f"got {rel!r}")
    engines = cfg.get("engines", {})
    if not isinstance(engines, dict):
        raise _err(where, f"key 'engines' must be an object keyed by engine key, got {engines!r}")
    for key, ent in engines.items():
        ewhere = f"{where} ['engines']['{key}']"
        if not isinstance(ent, dict):
            raise _err(ewhere, f"must be an object, got {ent!r}")
        for name in GRAPH_IO:
            _get(ent, name, str, ewhere, "a plan file path relative to the bundle")
        for k in ("gpu", "compute_capability", "tensorrt"):
            _get(ent, k, str, ewhere, "a string")
    if "export" in cfg and not isinstance(cfg["export"], dict):
        raise _err(where, f"key 'export' must be an object, got {cfg['export']!r}")
    if "versions" in cfg and not isinstance(cfg["versions"], dict):
        raise _err(where, f"key 'versions' must be an object, got {cfg['versions']!r}")
    graph_mirror = cfg["model"].get("mirror_average", False)
    if not isinstance(graph_mirror, bool):
        raise _err(f"{where} ['model']", f"'mirror_average' must be true or false, got {graph_mirror!r}")
    if graph_mirror and (len(out["feature_shape"]) < 2 or out["feature_shape"][0] != 2):
        raise _err(vwhere, f"a graph with model.mirror_average holds two frames' features: feature_shape "
                           f"must start with 2, got {list(out['feature_shape'])}")
    out["graph_mirror_average"] = graph_mirror
    shared = cfg.get("shared_context", False)
    if not isinstance(shared, bool):
        raise _err(where, f"key 'shared_context' must be true or false, got {shared!r}")
    out["shared_context"] = shared
    inference = cfg.get("inference", {})
    if not isinstance(inference, dict) or not isinstance(inference.get("mirror_average", False), bool):
        raise _err(where, f"key 'inference' must be an object like {{\"mirror_average\": true}}, got {inference!r}")
    out["inference_mirror_average"] = inference.get("mirror_average", False)
    try:
        out["inference_side_gain"] = check_side_gain(inference.get("side_gain", 1.0))
    except ValueError as e:
        raise _err(f"{where} ['inference']", str(e)) from None
    if "side_renderer" in cfg:
        out["side_renderer"] = _side_renderer_section(cfg["side_renderer"], out, f"{where} ['side_renderer']")
    return out


def _side_renderer_section(sec: Any, fields: Dict[str, Any], where: str) -> Dict[str, Any]:
    """The ``side_renderer`` object checked (file names inside the bundle, ranges)."""
    if not isinstance(sec, dict):
        raise _err(where, f"must be an object (see streambin.bundle), got {sec!r}")
    if fields["mask_kind"] != "side":
        raise _err(where, f"a side renderer blends with a side mask: mask_kind must be 'side', "
                          f"got {fields['mask_kind']!r}")
    out = dict(sec)
    for key in ("graph", "table"):
        rel = _get(sec, key, str, where, "a file name relative to the bundle")
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise _err(where, f"'{key}' must be a path inside the bundle, got {rel!r}")
    size = _get(sec, "input", dict, where, '{"height": H, "width": W}')
    for key in ("height", "width"):
        if _positive_int(size, key, f"{where} ['input']") % 4:
            raise _err(f"{where} ['input']", f"'{key}' must be a multiple of 4 (the heat map's cell), "
                                              f"got {size[key]}")
    _positive_int(sec, "peaks", where)
    _positive_float(sec, "power", where)
    from streambin.side_renderer import WEIGH_PEAKS_BY

    if sec.get("weigh_peaks_by", "heat") not in WEIGH_PEAKS_BY:
        raise _err(where, f"'weigh_peaks_by' must be one of {WEIGH_PEAKS_BY} (by their heat or by the localiser's "
                          f"sounding map), got {sec['weigh_peaks_by']!r}")
    if not _positive_float(sec, "hfov_deg", where) < 180.0:
        raise _err(where, f"'hfov_deg' must be below 180 degrees, got {sec['hfov_deg']}")
    return out


def _onnx_dims(value_info) -> list:
    """Static dims of an ONNX ValueInfo; symbolic dims (the batch axis) become None."""
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else None)
    return dims


def _check_graph(path: Path, name: str, fields: Dict[str, Any]) -> None:
    """Parse an ONNX graph and check its I/O names and shapes against the config.

    Uses the ``onnx`` package when installed (it is not a runtime dependency); without it,
    only existence and size are checked here and ONNX Runtime reports corruption later.
    """
    if not path.is_file():
        raise BundleError(f"{path}: {name} graph file is missing (listed in {CONFIG_NAME} "
                          f"['graphs']['{name}'])")
    if path.stat().st_size == 0:
        raise BundleError(f"{path}: {name} graph file is empty (0 bytes); re-export the bundle")
    try:
        import onnx
    except ImportError:  # runtime installs need only onnxruntime
        return
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise BundleError(f"{path}: {name} graph is corrupt: not a readable ONNX model "
                          f"({type(exc).__name__}: {exc}); re-export the bundle") from exc
    if len(model.graph.node) == 0:
        raise BundleError(f"{path}: {name} graph is corrupt: it has no nodes; re-export the bundle")
    ins = {v.name: v for v in model.graph.input}
    initializers = {t.name for t in model.graph.initializer}
    real_inputs = [n for n in ins if n not in initializers]
    outs = {v.name: v for v in model.graph.output}
    want_in, want_out = GRAPH_IO[name]
    if sorted(real_inputs) != sorted(want_in) or sorted(outs) != sorted(want_out):
        raise BundleError(f"{path}: {name} graph has inputs {real_inputs} and outputs "
                          f"{list(outs)}; expected inputs {list(want_in)} and outputs "
                          f"{list(want_out)}")
    h, w = fields["visual_size"]
    n_bins = fields["n_fft"] // 2 + 1
    t = fields["context_frames"]
    fs = list(fields["feature_shape"])
    expect = {
        ("visual", "frames"): [h, w, 3],
        ("visual", "feature"): fs,
        ("audio", "spec"): [2, n_bins, t],
        ("audio", "feature"): fs,
        ("audio", "mask"): [fields["n_masks"], 2, n_bins, fields["output_frames"]],
    }
    for (g, tensor), dims in expect.items():
        if g != name:
            continue
        vi = ins.get(tensor) or outs.get(tensor)
        want_type = 2 if tensor == "frames" else 1  # onnx.TensorProto.UINT8 / FLOAT
        got_type = vi.type.tensor_type.elem_type
        if got_type != want_type:
            raise BundleError(f"{path}: tensor '{tensor}' has ONNX element type "
                              f"{onnx.TensorProto.DataType.Name(got_type)}, expected "
                              f"{'UINT8' if want_type == 2 else 'FLOAT'}")
        got = _onnx_dims(vi)
        if not got:  # shape not recorded in the graph: nothing to compare
            continue
        if got[1:] != dims:
            raise BundleError(f"{path}: tensor '{tensor}' has shape [batch, "
                              f"{', '.join(str(d) for d in got[1:])}] but {CONFIG_NAME} implies "
                              f"[batch, {', '.join(str(d) for d in dims)}]")


# ----------------------------------------------------------------------------- public API

def default_bundle_path() -> Path:
    """Directory of the default model shipped with the package: streambin/models/default.

    Raises BundleError if it is not there (e.g. a source checkout before the default model
    was exported).
    """
    path = Path(__file__).resolve().parent / "models" / "default"
    if not (path / CONFIG_NAME).is_file():
        raise BundleError(f"{path}: the default model bundle is not installed (no {CONFIG_NAME}); "
                          "export one with `python -m export.to_onnx --checkpoint CKPT --out "
                          f"{path}` or pass the path of a bundle")
    return path


def read_config(path: PathLike) -> Dict[str, Any]:
    """Read and JSON-parse BUNDLE/config.json (no schema check); BundleError when unreadable."""
    cfg_path = Path(path) / CONFIG_NAME
    if not cfg_path.is_file():
        raise BundleError(f"{cfg_path}: {CONFIG_NAME} is missing; {Path(path)} is not a "
                          "streambin model bundle")
    try:
        with open(cfg_path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{cfg_path}: not valid JSON ({exc}); the file is corrupt, "
                          "re-export the bundle") from exc


def load_bundle(path: Union[PathLike, None] = "default", check_graphs: bool = True) -> Bundle:
    """Load and validate a bundle directory.

    ``path``: the bundle directory, or "default"/None for :func:`default_bundle_path`.
    ``check_graphs``: parse the ONNX graphs and compare their I/O with the config (needs the
    ``onnx`` package; skipped silently when it is absent).
    Raises BundleError naming the file/key at fault.
    """
    if path is None or (isinstance(path, str) and path == "default"):
        path = default_bundle_path()
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory does not exist")
    cfg = read_config(root)
    fields = validate_config(cfg, where=str(root / CONFIG_NAME))
    graphs = {name: root / cfg["graphs"][name] for name in GRAPH_IO}
    for name, gpath in graphs.items():
        if check_graphs:
            _check_graph(gpath, name, fields)
        elif not gpath.is_file() or gpath.stat().st_size == 0:
            raise BundleError(f"{gpath}: {name} graph file is missing or empty")
    engines = {}
    for key, ent in cfg.get("engines", {}).items():
        plans = {name: root / ent[name] for name in GRAPH_IO}
        missing = [str(p) for p in plans.values() if not p.is_file() or p.stat().st_size == 0]
        if missing:
            # Engines are caches: a missing plan is rebuilt by export.to_trt, never fatal.
            log.warning("bundle %s: TensorRT engine '%s' is listed but %s missing; ignoring it",
                        root, key, ", ".join(missing))
            continue
        engines[key] = {**ent, **{name: p for name, p in plans.items()}}
    if fields.get("side_renderer") is not None:
        sec = dict(fields["side_renderer"])
        for key in ("graph", "table"):
            sec[key] = root / sec[key]
            if not sec[key].is_file() or sec[key].stat().st_size == 0:
                raise BundleError(f"{sec[key]}: the side renderer's {key} file is missing or empty")
        fields["side_renderer"] = sec
    weights = root / "weights.pt"
    return Bundle(path=root, config=cfg, graphs=graphs, engines=engines,
                  weights=weights if weights.is_file() else None, **fields)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_config(bundle_dir: PathLike, config: Dict[str, Any]) -> Path:
    """Validate ``config`` and write it as BUNDLE/config.json atomically; returns the path.

    Raises BundleError (nothing written) when the config does not validate.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory does not exist")
    validate_config(config, where=f"config for {root / CONFIG_NAME}")
    path = root / CONFIG_NAME
    _atomic_write_text(path, json.dumps(config, indent=2, sort_keys=False) + "\n")
    return path


def make_config(*, sample_rate: int, n_fft: int, win_length: int, hop: int, context_frames: int,
                input_rms: float, rms_floor: float, mask_kind: str, visual_size: Tuple[int, int],
                feature_shape, recipe: str, arch: str, model: Dict[str, Any],
                export: Optional[Dict[str, Any]] = None,
                versions: Optional[Dict[str, str]] = None,
                visual_mean=IMAGENET_MEAN, visual_std=IMAGENET_STD,
                inference: Optional[Dict[str, Any]] = None,
                output_frames: Optional[int] = None, shared_context: bool = False) -> Dict[str, Any]:
    """Build a format_version 1 config dict from typed fields (validated before returning).

    ``visual_size`` is (height, width) in pixels; ``feature_shape`` excludes the batch axis;
    ``inference``: e.g. ``{"mirror_average": True}`` (module docstring), left out when None;
    ``output_frames``: the audio graph's mask frames (module docstring), left out when None
    (the whole context); ``shared_context``: the audio graph takes one context for several
    features (module docstring), left out when False.
    """
    if mask_kind not in MASK_KINDS:
        raise BundleError(f"mask_kind must be one of {sorted(MASK_KINDS)}, got {mask_kind!r}")
    cfg = {
        "format_version": FORMAT_VERSION,
        "sample_rate": int(sample_rate), "n_fft": int(n_fft), "win_length": int(win_length),
        "hop": int(hop), "window": "hann_periodic", "context_frames": int(context_frames),
        **({} if output_frames is None else {"output_frames": int(output_frames)}),
        **({"shared_context": True} if shared_context else {}),
        "input_rms": float(input_rms), "rms_floor": float(rms_floor),
        "mask_kind": mask_kind, "n_masks": MASK_KINDS[mask_kind],
        "visual": {"height": int(visual_size[0]), "width": int(visual_size[1]),
                   "mean": [float(v) for v in visual_mean], "std": [float(v) for v in visual_std],
                   "input_format": INPUT_FORMAT,
                   "feature_shape": [int(d) for d in feature_shape]},
        "recipe": recipe, "arch": arch, "model": dict(model),
        "graphs": {"visual": "visual.onnx", "audio": "audio.onnx"},
        "engines": {},
        "export": dict(export or {}),
        "versions": dict(versions or {}),
    }
    if inference is not None:
        cfg["inference"] = dict(inference)
    validate_config(cfg, where="config")
    return cfg
