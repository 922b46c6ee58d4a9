"""Recover a trainable checkpoint from an exported ONNX bundle (to fine-tune a shipped model).

Usage::

    python -m streambin.train.from_bundle --bundle streambin/models/default \\
        --config configs/default_cpu.yaml --frames-from /work/data/simdiv --out runs/default.pt

then ``python -m streambin.train ... --init runs/default.pt``.

What is exact and what is not:

- Transposed convolutions and their BatchNorms keep their parameter names (``gen.unet.up*``,
  ``gen.unet.head``): copied as is (fp16-stored weights come back as float32 of the same values).
- The exporter folds each BatchNorm that follows a ``Conv2d`` into it, so both graphs hold
  anonymous ``Conv`` nodes (the visual graph ResNet-18's 20 and the 1x1 reducer, the audio graph
  the U-Net's five down convolutions). They are matched to the generator's ``Conv2d`` modules
  in execution order (shapes checked). A folded
  pair ``BN(conv(x))`` is written back as ``conv`` with the folded weight and a BatchNorm whose
  running statistics are the mean/variance of that weight's output on real frames and audio, with weight
  and bias chosen so that the eval-mode function is unchanged. Training-mode batch statistics
  then start close to the running ones, so fine-tuning does not begin with a jolt.

The recovered generator reproduces the bundle's two graphs (checked, tolerance reported). The
bundle's engine settings (``"inference"``: mirror averaging, side gain) are not part of a
checkpoint: give them to the export again (``--engine-mirror-average``, and ``--side-gain`` from
``python -m streambin.train.calibrate_side_gain`` on the new weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from streambin.nets import BinauralGenerator
from streambin.signal_contract import input_scale
from streambin.train.build import generator_kwargs
from streambin.train.checkpoint import save_checkpoint
from streambin.train.config import Config, load_config

_BN_EPS_DEFAULT = 1e-5


class BundleRecoveryError(ValueError):
    """The bundle's graphs do not fit the configured generator."""


def _initializers(model) -> Dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init).astype(np.float32) for init in model.graph.initializer}


def _conv_params(model, inits: Dict[str, np.ndarray]) -> List[tuple]:
    """``[(weight, bias or None), ...]`` float32 of the graph's Conv nodes in node order."""
    # Weights reach a Conv through Cast (stored as fp16) or Identity (deduplicated constants).
    produced_by_cast = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type in ("Cast", "Identity")}
    constants = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            from onnx import numpy_helper

            constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).astype(np.float32)

    def value(name: str) -> np.ndarray:
        seen = name
        while seen not in inits and seen not in constants and seen in produced_by_cast:
            seen = produced_by_cast[seen]
        if seen in inits:
            return inits[seen]
        if seen in constants:
            return constants[seen]
        raise BundleRecoveryError(f"Conv input {name!r} is not a stored weight")

    convs = []
    for n in model.graph.node:
        if n.op_type == "Conv":
            convs.append((value(n.input[1]), value(n.input[2]) if len(n.input) > 2 and n.input[2] else None))
    return convs


def _conv_bn_pairs(gen: BinauralGenerator, run) -> List[tuple]:
    """``[(conv, bn)]``: the ``nn.Conv2d`` modules that ``run()`` executes, in execution order
    (the order the exporter wrote their ``Conv`` nodes), each with the BatchNorm after it."""
    order: List[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in gen.modules() if type(m) is nn.Conv2d]
    with torch.no_grad():
        gen.eval()
        run()
    for hk in hooks:
        hk.remove()
    bn_after: Dict[int, nn.BatchNorm2d] = {}
    for parent in gen.modules():
        children = list(parent.named_children())
        for (_, a), (_, b) in zip(children, children[1:]):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                bn_after[id(a)] = b
    pairs = []
    for conv in order:
        if id(conv) not in bn_after:
            raise BundleRecoveryError(f"conv {conv} has no BatchNorm after it")
        pairs.append((conv, bn_after[id(conv)]))
    return pairs


def _load_named(gen: BinauralGenerator, inits: Dict[str, np.ndarray]) -> set:
    """Copy the initializers that kept their parameter name (``gen.<key>[__fp16]``); returns the keys."""
    state = gen.state_dict()
    keys = set()
    for name, arr in inits.items():
        if not name.startswith("gen."):
            continue
        key = name[len("gen."):].removesuffix("__fp16")
        if key not in state or tuple(state[key].shape) != arr.shape:
            raise BundleRecoveryError(f"graph weight {name} {arr.shape} does not fit the generator")
        state[key] = torch.from_numpy(arr.copy())
        keys.add(key)
    gen.load_state_dict(state)
    return keys


def _load_folded(graph, inits: Dict[str, np.ndarray], pairs: List[tuple], what: str) -> None:
    """Write the graph's anonymous Conv nodes (BatchNorm folded in) into ``pairs`` in order,
    each BatchNorm set to the identity in eval mode plus the folded bias."""
    convs = _conv_params(graph, inits)
    if len(convs) != len(pairs):
        raise BundleRecoveryError(f"{what} graph has {len(convs)} folded convolutions, the generator {len(pairs)}")
    with torch.no_grad():
        for (w, b), (conv, bn) in zip(convs, pairs):
            if tuple(conv.weight.shape) != w.shape:
                raise BundleRecoveryError(f"{what} conv weight {w.shape} does not fit {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            if conv.bias is not None:
                conv.bias.zero_()
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b if b is not None else np.zeros(w.shape[0], np.float32)))


def _calibrate_batchnorm(pairs: List[tuple], run) -> None:
    """Rewrite each identity BatchNorm as (running stats = its conv output's statistics over
    ``run()``) with weight/bias that keep the eval-mode function identical."""
    stats: Dict[int, tuple] = {}

    def hook(mod, _inp, out):
        x = out.detach().double()
        stats[id(mod)] = (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False))

    hooks = [conv.register_forward_hook(hook) for conv, _ in pairs]
    with torch.no_grad():
        run()
    for hk in hooks:
        hk.remove()
    with torch.no_grad():
        for conv, bn in pairs:
            mean, var = stats[id(conv)]
            var = var.clamp_min(1e-6)
            std = torch.sqrt(var + bn.eps)
            # eval: (y - mean) / std * std + (b + mean) = y + b, as before.
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.bias.add_(mean.float())
            bn.weight.copy_(std.float())


def _ort_outputs(path: Path, feeds: Dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def sample_frames(root: Optional[str], height: int, width: int, count: int = 128, seed: int = 0) -> np.ndarray:
    """``(count, height, width, 3) uint8`` RGB frames for BatchNorm statistics: PNG/JPEG files
    found under ``root`` (evenly spread over the sorted list, loaded as training loads them), or
    seeded noise without one."""
    from streambin.train.data import load_frame

    if root is None:
        return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise FileNotFoundError(f"no PNG/JPEG frames under {root}")
    picks = [files[i] for i in np.linspace(0, len(files) - 1, min(count, len(files))).astype(int)]
    return np.stack([load_frame(p, (height, width)) for p in picks])


def sample_specs(root: Optional[str], cfg: Config, count: int = 64, seed: int = 0) -> np.ndarray:
    """``(count, 2, 257, context_frames)`` float32 network inputs (RMS-normalised spectrograms of
    the mono mix) from WAV/FLAC files under ``root`` (spread over the sorted list), or from seeded
    noise without one."""
    import soundfile as sf

    from streambin.train.losses import spectrogram

    a = cfg.audio
    n = (a.context_frames - 1) * a.hop
    rng = np.random.default_rng(seed)
    crops = []
    files = [] if root is None else sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    if root is not None and not files:
        raise FileNotFoundError(f"no WAV/FLAC files under {root}")
    for i in range(count):
        if files:
            audio, _ = sf.read(str(files[int(i * len(files) / count)]), dtype="float32", always_2d=True)
            mono = audio.mean(axis=1)
            start = int(rng.integers(0, max(1, len(mono) - n)))
            crop = np.zeros(n, np.float32)
            seg = mono[start:start + n]
            crop[:len(seg)] = seg
        else:
            crop = rng.standard_normal(n).astype(np.float32)
        crops.append(crop * input_scale(crop.astype(np.float64), a.input_rms, a.rms_floor))
    return spectrogram(torch.from_numpy(np.stack(crops)), a).numpy()


def recover_generator(bundle: str, cfg: Config, frames: np.ndarray, specs: np.ndarray) -> tuple:
    """``(generator in eval mode, max abs error features, max abs error masks)`` rebuilt from
    ``bundle``.

    ``cfg``: a config whose model section matches the bundle's (checked); ``frames``:
    ``(N, H_v, W_v, 3) uint8`` RGB and ``specs``: ``(N, 2, 257, T)`` float32 network inputs, for
    the BatchNorm statistics and the check against the bundle's graphs (ONNX Runtime).
    """
    import onnx

    root = Path(bundle)
    meta = json.loads((root / "config.json").read_text())
    stored = meta.get("model", {})
    # Mirror averaging adds no weights, only graph nodes: follow the bundle.
    cfg.model.mirror_average = bool(stored.get("mirror_average", False))
    gen = BinauralGenerator(**generator_kwargs(cfg))
    if meta.get("arch") != gen.arch or stored.get("ngf") != cfg.model.ngf \
            or list(stored.get("visual_size", [])) != list(gen.visual_size) \
            or stored.get("visual_net") not in ("auto", gen.visual_net) \
            or tuple(meta["visual"]["feature_shape"]) != tuple(gen.feature_shape):
        raise BundleRecoveryError(f"bundle {bundle} (arch {meta.get('arch')}, {meta['model']}) does not "
                                  f"match the config's generator ({gen.arch}, {gen.visual_net}, {gen.feature_shape})")
    if gen.visual_net == "c3d" or gen.arch != "unet":
        raise BundleRecoveryError("only U-Net generators with 2-D trunks can be recovered "
                                  f"(got {gen.arch}, {gen.visual_net})")
    t_frames = torch.from_numpy(np.ascontiguousarray(frames))
    t_specs = torch.from_numpy(np.ascontiguousarray(specs))
    graph_path = {k: root / meta["graphs"][k] for k in ("visual", "audio")}
    feats_ref = _ort_outputs(graph_path["visual"], {"frames": frames})
    t_feats = torch.from_numpy(feats_ref)
    n = min(len(frames), len(specs))

    def run_visual():
        gen.visual(t_frames)

    def run_audio():
        gen.audio(t_specs[:n], t_feats[:n])

    for what, run in (("visual", run_visual), ("audio", run_audio)):
        graph = onnx.load(str(graph_path[what]))
        inits = _initializers(graph)
        _load_named(gen, inits)
        pairs = _conv_bn_pairs(gen, run)
        _load_folded(graph, inits, pairs, what)
        gen.eval()
        _calibrate_batchnorm(pairs, run)
    gen.eval()

    with torch.no_grad():
        feats = gen.visual(t_frames[:n]).numpy()
        # The graph returns the masks of the context's last output_frames frames (all without the key).
        masks = gen.audio(t_specs[:n], t_feats[:n], last_frames=meta.get("output_frames")).numpy()
    masks_ref = _ort_outputs(graph_path["audio"], {"spec": specs[:n], "feature": feats_ref[:n]})
    return gen, float(np.max(np.abs(feats - feats_ref[:n]))), float(np.max(np.abs(masks - masks_ref)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.from_bundle",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="exported bundle directory (config.json + ONNX graphs)")
    p.add_argument("--config", required=True, help="training YAML whose model section matches the bundle")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--frames-from", default=None,
                   help="directory with PNG/JPEG frames for BatchNorm statistics (default: noise)")
    p.add_argument("--audio-from", default=None,
                   help="directory with WAV/FLAC clips for BatchNorm statistics (default: noise)")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--tolerance", type=float, default=1e-2,
                   help="largest allowed |recovered - bundle| on the features and masks")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    h, w = cfg.model.visual_size
    frames = sample_frames(args.frames_from, h, w)
    specs = sample_specs(args.audio_from, cfg, count=len(frames))
    gen, err_v, err_a = recover_generator(args.bundle, cfg, frames, specs)
    print(f"recovered {args.bundle}: max |diff| features {err_v:.2e}, masks {err_a:.2e}")
    if max(err_v, err_a) > args.tolerance:
        print(f"error: the recovered generator differs from the bundle by more than {args.tolerance}",
              file=sys.stderr)
        return 1
    save_checkpoint(args.out, config=cfg, model=gen)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
