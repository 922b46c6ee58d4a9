"""Helpers shared by export.to_onnx, export.to_trt and export.to_triton.

- :func:`fp32_node_names`: which ONNX nodes stay float32 in a mixed-precision graph.
- :func:`realistic_inputs` / :func:`random_inputs`: test inputs for the parity checks.
- :func:`versions`, :func:`setup_logging`, :func:`replace_dir`.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
from collections import deque
from pathlib import Path
from typing import Dict, Iterable, Optional, Set, Tuple

import numpy as np

from streambin.signal_contract import input_scale

log = logging.getLogger("streambin")

#: ops that do the heavy arithmetic; fp16 pays off there
COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
#: ops kept float32 wherever they are (FP16 overflow/NaN reports cluster there)
NORM_OPS = {"BatchNormalization", "InstanceNormalization", "LayerNormalization",
            "GroupNormalization", "LpNormalization", "MeanVarianceNormalization",
            "Softmax", "LogSoftmax", "ReduceMean", "Pow", "Sqrt", "Reciprocal"}

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def setup_logging(verbose: bool = False) -> None:
    """Log 'streambin' messages to stderr (INFO, or DEBUG when verbose) for the CLIs."""
    logger = logging.getLogger("streambin")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def versions() -> Dict[str, str]:
    """Versions of the packages that produced a bundle (absent ones are left out)."""
    from streambin import __version__

    out = {"streambin": __version__}
    for mod in ("torch", "onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def fp32_node_names(model) -> Set[str]:
    """Names of the nodes of ``model`` (onnx.ModelProto) that must stay float32 under --fp16.

    - the mask head: walking back from each graph output, every node up to and including the
      first Conv/ConvTranspose/Gemm/MatMul on each path (final conv, sigmoid, scaling, Nyquist
      padding);
    - the input stem: walking forward from each graph input, every node before the first such
      compute op (uint8 -> float cast, /255, ImageNet normalisation, bin slicing);
    - every normalisation-like node (:data:`NORM_OPS`) anywhere.
    Nodes without a name are given one (``_sb_fp32_<i>``) so they can be listed.
    """
    g = model.graph
    for i, node in enumerate(g.node):
        if not node.name:
            node.name = f"_sb_node_{i}"
    producer = {}
    consumers: Dict[str, list] = {}
    for node in g.node:
        for out in node.output:
            producer[out] = node
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    keep: Set[str] = {n.name for n in g.node if n.op_type in NORM_OPS}

    seen: Set[str] = set()
    queue = deque(producer[o.name] for o in g.output if o.name in producer)
    while queue:  # mask head: backwards from the outputs
        node = queue.popleft()
        if node.name in seen:
            continue
        seen.add(node.name)
        keep.add(node.name)
        if node.op_type in COMPUTE_OPS:
            continue
        queue.extend(producer[i] for i in node.input if i in producer)

    seen = set()
    queue = deque(n for i in g.input for n in consumers.get(i.name, []))
    while queue:  # input stem: forwards from the inputs
        node = queue.popleft()
        if node.name in seen or node.op_type in COMPUTE_OPS:
            continue
        seen.add(node.name)
        keep.add(node.name)
        queue.extend(n for o in node.output for n in consumers.get(o, []))
    return keep


def _unshare_initializers(model) -> None:
    """Give every node its own copy of each initializer it reads, in place.

    The TorchScript exporter deduplicates equal constants (e.g. identical conv biases) and
    reads them through Identity nodes; when one user is kept float32 and another converted to
    float16 the shared tensor can only have one type. Identity-of-initializer nodes are
    replaced by a copy of the initializer, then initializers read by several nodes are copied.
    """
    import onnx

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    keep_nodes = []
    for node in g.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            g.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep_nodes.append(node)
    del g.node[:]
    g.node.extend(keep_nodes)
    graph_outputs = {o.name for o in g.output}
    seen: Set[str] = set()
    for node in g.node:
        for idx, name in enumerate(node.input):
            if name not in inits or name in graph_outputs:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name or idx}_{len(g.initializer)}"
                g.initializer.append(copy)
                node.input[idx] = copy.name
            else:
                seen.add(name)
    used = {i for n in g.node for i in n.input} | graph_outputs
    unused = [t for t in g.initializer if t.name not in used]
    for t in unused:
        g.initializer.remove(t)


def convert_fp16(model):
    """Mixed-precision copy of ``model``: float16 weights/compute except :func:`fp32_node_names`.

    Graph inputs and outputs keep their types (uint8 frames, float32 spec/feature/mask). Needs
    onnxconverter-common (pip install onnxconverter-common).
    """
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise RuntimeError("--fp16 needs onnxconverter-common: pip install onnxconverter-common") \
            from exc
    out_types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    _unshare_initializers(model)
    block_nodes = sorted(fp32_node_names(model))
    block_ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | NORM_OPS)
    log.info("fp16: %d of %d nodes kept float32 (mask head, input stem, normalisations)",
             len(block_nodes), len(model.graph.node))
    # Stale value_info (intermediate types recorded by the exporter) would contradict the new
    # float16 types: drop it before and after, and let shape inference recompute it.
    del model.graph.value_info[:]
    import warnings

    with warnings.catch_warnings():
        # it warns once per tiny weight clamped to +-1e-7: expected, and not actionable
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True,
                                                     op_block_list=block_ops,
                                                     node_block_list=block_nodes)
    _restore_output_types(converted, out_types)
    del converted.graph.value_info[:]
    log.debug("fp16: removed %d float32->float16->float32 cast pairs",
              _drop_cast_round_trips(converted))
    del converted.graph.value_info[:]
    import onnx

    return onnx.shape_inference.infer_shapes(converted)


def _drop_cast_round_trips(model) -> int:
    """Remove float32 -> float16 -> float32 Cast pairs, in place; returns how many.

    onnxconverter-common wraps every blocked node in casts, so two consecutive float32 nodes
    (e.g. sigmoid -> scale -> concat of the mask head) still pass their data through float16.
    Dropping such a pair makes the float32 regions really float32 (it never loses precision).
    """
    import onnx

    g = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    producer = {o: n for n in g.node for o in n.output}
    graph_outputs = {o.name for o in g.output}

    def cast_to(node):
        return next((a.i for a in node.attribute if a.name == "to"), None)

    rename: Dict[str, str] = {}
    dropped = 0
    for node in g.node:
        if node.op_type != "Cast" or cast_to(node) != onnx.TensorProto.FLOAT:
            continue
        src = producer.get(node.input[0])
        if (src is None or src.op_type != "Cast" or cast_to(src) != onnx.TensorProto.FLOAT16
                or types.get(src.input[0]) != onnx.TensorProto.FLOAT):
            continue
        if node.output[0] in graph_outputs:
            node.input[0] = src.input[0]  # float32 -> float32 Cast: an identity, kept as the output
        else:
            rename[node.output[0]] = src.input[0]
        dropped += 1
    for node in g.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    # Remove nodes whose outputs nobody reads any more (the orphaned casts), to a fixed point.
    while True:
        used = {i for n in g.node for i in n.input} | graph_outputs
        dead = [n for n in g.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    return dropped


def _restore_output_types(model, out_types: Dict[str, int]) -> None:
    """Make graph outputs float32 again where the fp16 conversion left them float16.

    onnxconverter-common casts the output of a *blocked* (float32) last node down to float16
    even with keep_io_types; that Cast is turned back into a cast to float32 (no precision is
    lost), otherwise a Cast to float32 is appended.
    """
    from onnx import helper

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    for out in g.output:
        want = out_types.get(out.name)
        have = out.type.tensor_type.elem_type
        if want is None or want == have:
            continue
        node = producer.get(out.name)
        if node is not None and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = want
        else:
            inner = out.name + "_sb_lowp"
            for n in g.node:
                n.output[:] = [inner if o == out.name else o for o in n.output]
                n.input[:] = [inner if i == out.name else i for i in n.input]
            g.node.append(helper.make_node("Cast", [inner], [out.name], to=want,
                                           name=f"{out.name}_sb_cast_out"))
        out.type.tensor_type.elem_type = want



# ----------------------------------------------------------------------------- test inputs

def _find(root: Path, exts: Iterable[str]) -> Optional[Path]:
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in exts and path.is_file():
            return path
    return None


def synthetic_audio(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A realistic-ish mono test signal (n,) float32: a decaying harmonic note sequence plus a
    noise burst and a chirp, so the spectrogram has speech/music-like structure."""
    rng = np.random.default_rng(seed)
    n = int(round(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    note_len = 0.25
    for k, f0 in enumerate((220.0, 277.2, 329.6, 440.0, 392.0, 293.7)):
        start = int(k * note_len * sample_rate) % max(n, 1)
        seg = t[: max(0, min(n - start, int(note_len * 2 * sample_rate)))]
        env = np.exp(-seg * 6.0)
        note = sum(np.sin(2 * np.pi * f0 * h * seg) / h for h in range(1, 8) if f0 * h < sample_rate / 2)
        x[start:start + len(seg)] += 0.3 * env * note
    burst = rng.standard_normal(n) * np.exp(-((t - seconds / 2) ** 2) / 0.002)
    chirp = 0.1 * np.sin(2 * np.pi * (200 * t + 1500 * t ** 2 / max(seconds, 1e-3)))
    x = x + 0.2 * burst + chirp
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.5).astype(np.float32)


def synthetic_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A test frame (height, width, 3) uint8 RGB: colour gradients with a bright disc and a
    dark rectangle (edges, flat areas and gradients, like a photo)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1),
                    1.0 - xx / max(width - 1, 1) * 0.5], axis=-1) * 200.0
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.2, 0.8) * width
    r = 0.2 * min(height, width)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (250.0, 220.0, 60.0)
    img[int(0.6 * height):int(0.9 * height), int(0.1 * width):int(0.3 * width)] = 30.0
    img += rng.normal(0.0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def spectrogram_context(mono: np.ndarray, bundle_fields: Dict, offset: int = 0) -> np.ndarray:
    """(2, n_fft//2+1, T) float32 normalised network input from mono (n,) at the model rate.

    Takes ``(T - 1) * hop`` samples from ``offset`` (zero-padded at the end if short), STFT with
    a periodic Hann window centred in the frame (center=True gives T frames), real/imag as two
    channels, scaled by ``input_rms / max(rms(crop), rms_floor)`` (docs/architecture.md).
    """
    import scipy.signal

    n_fft, win, hop = bundle_fields["n_fft"], bundle_fields["win_length"], bundle_fields["hop"]
    t_frames = bundle_fields["context_frames"]
    n = (t_frames - 1) * hop
    crop = np.zeros(n, np.float64)
    seg = mono[offset:offset + n]
    crop[:len(seg)] = seg
    window = np.zeros(n_fft)
    lo = (n_fft - win) // 2
    window[lo:lo + win] = scipy.signal.get_window("hann", win, fftbins=True)  # periodic
    padded = np.pad(crop, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:t_frames]
    spec = np.fft.rfft(frames * window, axis=-1).T  # (bins, T)
    scale = input_scale(crop, bundle_fields["input_rms"], bundle_fields["rms_floor"])
    return (np.stack([spec.real, spec.imag]) * scale).astype(np.float32)


def realistic_inputs(fields: Dict, batch: int, data: Optional[str] = None,
                     seed: int = 0) -> Tuple[np.ndarray, np.ndarray, str]:
    """(frames (B, H, W, 3) uint8, spec (B, 2, bins, T) float32, description).

    With ``data`` (a directory), the first audio file (wav/flac/ogg) and first image found under
    it (sorted, recursive) are used: B crops at different offsets, the image resized to the
    visual size. Without it, :func:`synthetic_audio` / :func:`synthetic_frame`.
    """
    h, w = fields["visual_size"]
    sr = fields["sample_rate"]
    need = (fields["context_frames"] - 1) * fields["hop"]
    if data is not None:
        import cv2
        import soundfile as sf

        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"--data {root}: not a directory")
        apath, ipath = _find(root, AUDIO_EXTS), _find(root, IMAGE_EXTS)
        if apath is None or ipath is None:
            raise FileNotFoundError(f"--data {root}: needs at least one audio file "
                                    f"{AUDIO_EXTS} and one image {IMAGE_EXTS}")
        audio, file_sr = sf.read(str(apath), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if file_sr != sr:
            import soxr

            mono = soxr.resample(mono, file_sr, sr).astype(np.float32)
        img = cv2.imread(str(ipath), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"--data: cannot read image {ipath}")
        img = cv2.cvtColor(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB)
        frames = np.stack([img if b == 0 else img[:, ::-1].copy() for b in range(batch)])
        desc = f"real clip {apath.name} + frame {ipath.name}"
    else:
        mono = synthetic_audio(sr, max(2.0, need / sr * (batch + 1)), seed)
        frames = np.stack([synthetic_frame(h, w, seed + b) for b in range(batch)])
        desc = "synthetic tone mix + gradient frame"
    step = max(1, (len(mono) - need) // max(batch, 1))
    spec = np.stack([spectrogram_context(mono, fields, offset=b * step) for b in range(batch)])
    return frames.astype(np.uint8), spec, desc


def random_inputs(fields: Dict, batch: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(frames uniform uint8 (B, H, W, 3), spec standard-normal * 0.5 float32 (B, 2, bins, T))."""
    rng = np.random.default_rng(seed)
    h, w = fields["visual_size"]
    frames = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    spec = (rng.standard_normal((batch, 2, fields["n_fft"] // 2 + 1, fields["context_frames"]))
            * 0.5).astype(np.float32)
    return frames, spec


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished directory ``src`` to ``dst``, replacing an existing ``dst`` with the
    smallest possible window (rename old away, rename new in, delete old)."""
    src, dst = Path(src), Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def store_weights_fp16(model, min_elements: int = 1024) -> int:
    """Store large float32 initializers as float16, each behind a Cast back to float32.

    Halves the file size while the graph still computes in float32: ONNX Runtime folds the
    Casts into float32 constants when it loads the session, so only the rounding of the
    weights to float16 changes the outputs. Returns the number of initializers converted.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    keep, casts, converted = [], [], 0
    input_names = {i.name for i in graph.input}
    for init in graph.initializer:
        n = int(np.prod(init.dims)) if init.dims else 1
        if init.data_type != onnx.TensorProto.FLOAT or n < min_elements or init.name in input_names:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__to_fp32"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # Casts first: the graph stays topologically sorted
    return converted
