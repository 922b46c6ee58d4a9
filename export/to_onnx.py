"""Export a training checkpoint to a streambin model bundle (config.json + ONNX graphs).

    python -m export.to_onnx --checkpoint CKPT --out BUNDLE_DIR [--opset 17] [--fp16]
                             [--simplify] [--data DIR] [--mirror-average | --no-mirror-average]
                             [--engine-mirror-average] [--side-gain G] [--output-frames K]

Writes ``visual.onnx`` (``model.visual``: frames (B, H_v, W_v, 3) uint8 -> feature) and
``audio.onnx`` (``model.audio``: spec (B, 2, 257, T), feature -> mask (B, n_masks, 2, 257, K)),
fixed streaming shapes with a dynamic batch axis, plus ``config.json`` and ``weights.pt``
(generator weights + config, for the torch backend).

Before anything is written, every graph passes ``onnx.checker`` and ONNX Runtime (CPU) is
compared with PyTorch on random inputs and on realistic inputs (a real clip and frame from
``--data``, else a synthetic tone mix and gradient frame) at batch 1 and 3. The export fails
(exit 1, nothing written) when the max abs error exceeds the tolerance:

- float32 graphs: ``TOL_FP32 = 1e-4`` per unit of mask range on masks (``1e-4 *
  model.mask_bound``: side masks lie in [-1, 1], left/right masks in [-2, 2]); on the visual
  feature ``1e-4 * max(1, max|feature|)`` (features are unbounded ReLU outputs).
- ``--fp16`` graphs: ``TOL_FP16 = 1e-2`` with the same scaling.

The audio graph is checked with PyTorch's feature as its input, so its error is its own.
Work happens in a temporary directory next to ``--out`` that is moved into place at the end.

``--fp16``: weights and compute in float16 except the input stem, the mask head and
normalisations (see :func:`export.fp16_graph.fp32_node_names`); inputs/outputs stay float32/uint8.
Needs onnxconverter-common. ``--simplify`` runs onnxsim when it is installed (skipped with a
warning otherwise).

``--mirror-average`` exports the model mirror-equivariant (``model.mirror_average``,
:mod:`streambin.nets.generator`): its output averaged with its ear-swapped output for the
mirrored frame, at twice the compute; ``--no-mirror-average`` exports without it. Default: as
the checkpoint's config says. The same weights serve both.

``--engine-mirror-average`` keeps the graphs as they are and writes ``"inference":
{"mirror_average": true}`` into config.json: the Spatializer then does the same averaging itself
(on the CPU runners) unless the caller passes ``mirror_average=False``, so one bundle serves
both. The shipped default is exported this way.

``--side-gain G`` writes ``"inference": {"side_gain": G}``: the Spatializer scales the part of
the masks that differs between the ears by G (streambin.signal_contract.scale_side) unless the
caller passes ``side_gain``. G is meant to be calibrated on validation data: ``python -m
streambin.train.calibrate_side_gain`` fits it (least squares on the side spectrogram).

``--output-frames K`` (arch "unet") exports an audio graph that returns only the masks of the
context's last K frames and computes only what they need (``model.audio(..., last_frames=K)``):
a streaming engine plays ``block_frames`` of them, ``lookahead_frames`` before the newest, so
any setting with ``block_frames + lookahead_frames <= K`` runs on it, with the same masks as the
whole-context graph and a fraction of its decoder's work. Default: the whole context (K = T).

Every U-Net audio graph (without ``--mirror-average``) also takes one context for several
features (``spec`` of batch 1, ``feature`` of batch B; checked against PyTorch like the rest) and
says so in config.json (``"shared_context": true``): the engine's mirror averaging then encodes
each context once for the frame's and the mirror image's features.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from export import fp16_graph, output
from export.parity import Graphs, compare_graphs
from streambin.bundle import (CONFIG_NAME, Bundle, BundleError, load_bundle, make_config,
                              write_config)
from streambin.cli_options import add_side_gain_option
from streambin.signal_contract import check_side_gain

log = logging.getLogger("streambin")

DEFAULT_OPSET = 17
TOL_FP32 = 1e-4
TOL_FP16 = 1e-2
VERIFY_BATCHES = (1, 3)


class ExportError(RuntimeError):
    """The export failed (parity check, checker, bad arguments); nothing was written."""


def _wrappers(model, output_frames: Optional[int] = None):
    """Two nn.Modules whose forward is ``model.visual`` / ``model.audio`` (in eval mode).

    They are put in eval mode explicitly: the TorchScript exporter restores the *wrapper's*
    training flag after tracing, which would otherwise switch the generator's BatchNorm layers
    to training mode.
    """
    import torch

    class Visual(torch.nn.Module):
        def __init__(self, gen):
            super().__init__()
            self.gen = gen

        def forward(self, frames):
            return self.gen.visual(frames)

    class Audio(torch.nn.Module):
        def __init__(self, gen):
            super().__init__()
            self.gen = gen

        def forward(self, spec, feature):
            return self.gen.audio(spec, feature, last_frames=output_frames)

    return Visual(model).eval(), Audio(model).eval()


def _torch_export(module, args, path: Path, input_names, output_names, opset: int) -> None:
    """torch.onnx.export with a dynamic batch axis on every input and output.

    Uses the TorchScript exporter (``dynamo=False``): it handles these convolutional graphs
    reliably and fast. Falls back to the dynamo exporter with ``dynamic_shapes`` where the
    TorchScript one is gone (future torch).
    """
    import torch

    names = list(input_names) + list(output_names)
    dyn_axes = {n: {0: "batch"} for n in names}
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is legacy, and tracing warns about the
        # generator's shape checks (they are constant for the traced shapes, as intended).
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=dyn_axes, do_constant_folding=True)
            return
        except TypeError as exc:  # dynamo=False no longer accepted
            log.warning("TorchScript ONNX exporter unavailable (%s); using the dynamo exporter", exc)
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(module, args, str(path), dynamo=True, opset_version=opset,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_shapes=tuple({0: batch} for _ in args), external_data=False)


def _declare_output_dims(graph, name: str, dims) -> None:
    """Give output ``name`` of ``graph`` the fixed sizes ``dims`` (all but the batch axis)
    where its recorded shape leaves them symbolic."""
    out = next(o for o in graph.graph.output if o.name == name)
    recorded = list(out.type.tensor_type.shape.dim)
    if len(recorded) != len(dims) + 1:
        raise ExportError(f"graph output {name!r} has rank {len(recorded)}, PyTorch's has {len(dims) + 1}")
    for dim, size in zip(recorded[1:], dims):
        if not dim.HasField("dim_value"):
            dim.dim_value = int(size)  # replaces the symbolic dim_param (a oneof)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _torch_graphs(model, output_frames: Optional[int] = None) -> Graphs:
    """``model.visual`` / ``model.audio`` (its last ``output_frames`` mask frames) on numpy
    arrays, in inference mode."""
    import torch

    def visual(frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.visual(torch.from_numpy(frames)).float().numpy()

    def audio(spec: np.ndarray, feature: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.audio(torch.from_numpy(spec), torch.from_numpy(feature), last_frames=output_frames).numpy()

    return Graphs("PyTorch", visual, audio)


def verify(model, visual_path: Path, audio_path: Path, fields: Dict, fp16: bool,
           data: Optional[str] = None, output_frames: Optional[int] = None) -> Dict[str, float]:
    """Compare ONNX Runtime with PyTorch; returns max abs errors and raises ExportError over
    tolerance (:func:`export.parity.compare_graphs`: random and realistic inputs at every batch
    size in VERIFY_BATCHES; mask tolerance per unit of ``model.mask_bound``)."""
    sv, sa = _session(visual_path), _session(audio_path)
    onnx_graphs = Graphs("ONNX Runtime",
                         lambda frames: sv.run(["feature"], {"frames": frames})[0],
                         lambda spec, feature: sa.run(["mask"], {"spec": spec,
                                                                 "feature": feature})[0],
                         label="{graph}.onnx")
    torch_graphs = _torch_graphs(model, output_frames)
    errs = compare_graphs(torch_graphs, onnx_graphs, fields, VERIFY_BATCHES,
                          TOL_FP16 if fp16 else TOL_FP32, fp16=fp16,
                          audio_scale=getattr(model, "mask_bound", 1.0), data=data,
                          error=ExportError)
    if model.shares_context:
        tol = (TOL_FP16 if fp16 else TOL_FP32) * getattr(model, "mask_bound", 1.0)
        errs["audio"] = max(errs["audio"], _check_shared_context(torch_graphs, onnx_graphs, fields, tol))
    return errs


def _check_shared_context(reference: Graphs, candidate: Graphs, fields: Dict, tol: float) -> float:
    """Max abs error of ``candidate``'s audio graph against ``reference``'s for one context
    (spec batch 1) under three features of random frames; ExportError over ``tol``."""
    rng = np.random.default_rng(7)
    h, w = fields["visual_size"]
    feature = reference.visual(rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8))
    spec = rng.standard_normal((1, 2, fields["n_fft"] // 2 + 1, fields["context_frames"])).astype(np.float32)
    want, got = reference.audio(spec, feature), candidate.audio(spec, feature)
    if got.shape != want.shape:
        raise ExportError(f"audio.onnx with one context for 3 features returned {got.shape}, PyTorch {want.shape}")
    err = float(np.max(np.abs(got - want)))
    if not err <= tol:
        raise ExportError(f"audio.onnx with one context for 3 features differs from PyTorch by {err:.3g} "
                          f"(tolerance {tol:.3g})")
    return err


def _weights_payload(checkpoint: str, model_section: dict):
    """The checkpoint reduced to what load_generator needs: generator weights + config (with
    the exported ``model_section``)."""
    from streambin.train.checkpoint import GENERATOR_PREFIX, read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if k.startswith(GENERATOR_PREFIX)}
    ckpt["optimizer"] = None
    ckpt["scheduler"] = None
    ckpt["config"]["model"] = dict(model_section)
    return ckpt


def export_bundle(checkpoint, out_dir, opset: int = DEFAULT_OPSET, fp16: bool = False,
                  simplify: bool = False, data: Optional[str] = None, weights_fp16: bool = False,
                  torch_weights: bool = True, mirror_average: Optional[bool] = None,
                  engine_mirror_average: bool = False, side_gain: float = 1.0,
                  output_frames: Optional[int] = None) -> Bundle:
    """Export ``checkpoint`` to the bundle directory ``out_dir``; returns the loaded Bundle.

    ``weights_fp16``: store the graphs' weights as float16 (computed in float32; half the size,
    parity checked at the fp16 tolerance). ``torch_weights``: also write weights.pt for the
    torch backend (leave it out to keep a shipped bundle small). ``mirror_average``: export
    the mirror-averaged model (True), the plain one (False), or as the checkpoint says (None).
    ``engine_mirror_average``: record ``"inference": {"mirror_average": true}`` in config.json
    (the engine averages by default; module docstring). ``side_gain``: record ``"side_gain"`` there
    when it is not 1 (module docstring). ``output_frames``: the audio graph returns the masks of
    the context's last ``output_frames`` frames only (module docstring); None: all of them.

    An existing bundle at ``out_dir`` is replaced (its TensorRT engines too: they belong to the
    old graphs); a non-empty directory that is not a bundle is refused. Raises ExportError,
    CheckpointError or BundleError; on any error nothing is written.
    """
    side_gain = check_side_gain(side_gain)  # before any work
    import onnx
    import torch
    from tqdm import tqdm

    from streambin.train.checkpoint import load_generator

    if not isinstance(opset, int) or not 13 <= opset <= 23:
        raise ExportError(f"opset must be an int in 13..23, got {opset!r}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / CONFIG_NAME).is_file())):
        raise ExportError(f"{out} exists and is not a streambin bundle; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)

    steps = tqdm(total=6, desc="export", unit="step", disable=None, file=sys.stderr)
    model, cfg = load_generator(str(checkpoint), mirror_average=mirror_average)
    model = model.float().eval()
    a = cfg.audio
    if output_frames is not None:
        try:
            model.check_last_frames(output_frames, a.context_frames)
        except ValueError as exc:
            raise ExportError(f"--output-frames: {exc}") from None
        output_frames = int(output_frames)
    fields = {"sample_rate": a.sample_rate, "n_fft": a.n_fft, "win_length": a.win_length,
              "hop": a.hop, "context_frames": a.context_frames, "input_rms": a.input_rms,
              "rms_floor": a.rms_floor, "visual_size": tuple(cfg.model.visual_size)}
    h, w = fields["visual_size"]
    frames = torch.zeros((1, h, w, 3), dtype=torch.uint8)
    spec = torch.zeros((1, 2, a.n_fft // 2 + 1, a.context_frames), dtype=torch.float32)
    with torch.inference_mode():
        feature = model.visual(frames).float()
    if tuple(feature.shape[1:]) != tuple(model.feature_shape):
        raise ExportError(f"model.visual returned {tuple(feature.shape)}, expected "
                          f"(1, {model.feature_shape}) (model.feature_shape)")
    steps.update()

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=str(out.parent)))
    try:
        visual_mod, audio_mod = _wrappers(model, output_frames)
        vpath, apath = tmp / "visual.onnx", tmp / "audio.onnx"
        log.info("exporting visual graph (opset %d)", opset)
        _torch_export(visual_mod, (frames,), vpath, ["frames"], ["feature"], opset)
        log.info("exporting audio graph (opset %d)", opset)
        _torch_export(audio_mod, (spec, feature.clone()), apath, ["spec", "feature"], ["mask"],
                      opset)
        model.eval()  # belt and braces: the exporter must not leave BatchNorm in training mode
        steps.update()

        with torch.inference_mode():
            mask_dims = tuple(model.audio(spec, feature, last_frames=output_frames).shape[1:])
        for path, out_name, dims in ((vpath, "feature", tuple(model.feature_shape)), (apath, "mask", mask_dims)):
            # Shape inference with data propagation: the tracer leaves the dims after a
            # batch-dependent Expand (one context for several features) symbolic, though
            # all but the batch are fixed; this records them, and what it cannot infer is
            # declared from PyTorch's output (the parity check below runs the graph).
            graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
            _declare_output_dims(graph, out_name, dims)
            if simplify:
                graph = _simplify(graph, path.name)
            if fp16:
                graph = fp16_graph.convert_fp16(graph)
            elif weights_fp16:
                n = fp16_graph.store_weights_fp16(graph)
                log.info("%s: %d weight tensors stored as float16", path.name, n)
            onnx.save(graph, str(path))
            try:
                onnx.checker.check_model(str(path), full_check=True)
            except Exception as exc:  # ValidationError / InferenceError
                raise ExportError(f"{path.name} fails onnx.checker: {exc}") from exc
        steps.update()

        errs = verify(model, vpath, apath, fields, fp16=fp16 or weights_fp16, data=data,
                      output_frames=output_frames)
        log.info("ONNX Runtime vs PyTorch: max abs error visual %.3g, audio %.3g",
                 errs["visual"], errs["audio"])
        steps.update()

        if torch_weights:
            torch.save(_weights_payload(str(checkpoint), cfg.to_dict()["model"]), str(tmp / "weights.pt"))
        config = make_config(
            sample_rate=a.sample_rate, n_fft=a.n_fft, win_length=a.win_length, hop=a.hop,
            context_frames=a.context_frames, input_rms=a.input_rms, rms_floor=a.rms_floor,
            mask_kind=model.mask_kind, visual_size=(h, w), feature_shape=model.feature_shape,
            recipe=cfg.recipe, arch=cfg.model.arch, model=cfg.to_dict()["model"],
            export={"opset": opset, "fp16": bool(fp16), "weights_fp16": bool(weights_fp16),
                    "simplified": bool(simplify),
                    "max_abs_err_visual": errs["visual"], "max_abs_err_audio": errs["audio"],
                    "tolerance": TOL_FP16 if (fp16 or weights_fp16) else TOL_FP32,
                    "checkpoint": os.path.basename(str(checkpoint))},
            versions=output.versions(),
            inference=_inference_section(engine_mirror_average, side_gain),
            output_frames=output_frames, shared_context=model.shares_context)
        write_config(tmp, config)
        load_bundle(tmp)  # the bundle must load before it replaces anything
        steps.update()
        output.replace_dir(tmp, out)
        steps.update()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        steps.close()
    log.info("wrote bundle %s", out)
    return load_bundle(out)


def _inference_section(engine_mirror_average: bool, side_gain: float):
    """config.json's ``"inference"`` object, or None when every setting is the default."""
    section = {}
    if engine_mirror_average:
        section["mirror_average"] = True
    if check_side_gain(side_gain) != 1.0:
        section["side_gain"] = float(side_gain)
    return section or None


def _simplify(graph, name: str):
    try:
        import onnxsim
    except ImportError:
        log.warning("--simplify: onnxsim is not installed (pip install onnxsim); %s left as is",
                    name)
        return graph
    simplified, ok = onnxsim.simplify(graph)
    if not ok:
        log.warning("--simplify: onnxsim could not validate the simplified %s; kept original",
                    name)
        return graph
    return simplified


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.to_onnx", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
    p.add_argument("--out", required=True, help="bundle directory to write (replaced if a bundle)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default 17)")
    p.add_argument("--fp16", action="store_true", help="mixed-precision graphs (fp32 head/norms)")
    p.add_argument("--weights-fp16", action="store_true",
                   help="store weights as float16, compute in float32 (half the file size)")
    p.add_argument("--no-torch-weights", action="store_true",
                   help="do not write weights.pt (the torch backend then cannot run the bundle)")
    p.add_argument("--simplify", action="store_true", help="run onnxsim if installed")
    p.add_argument("--data", default=None,
                   help="directory with a real audio clip and image for the parity check")
    mirror = p.add_mutually_exclusive_group()
    mirror.add_argument("--mirror-average", dest="mirror_average", action="store_const", const=True, default=None,
                        help="export the mirror-averaged model (mirror-equivariant output, twice the compute)")
    mirror.add_argument("--no-mirror-average", dest="mirror_average", action="store_const", const=False,
                        help="export without mirror averaging (default: as the checkpoint's config says)")
    p.add_argument("--engine-mirror-average", action="store_true",
                   help="keep the graphs plain and have the Spatializer mirror-average by default "
                        "(config.json \"inference\"; callers can pass mirror_average=False)")
    add_side_gain_option(p, help="have the Spatializer scale the masks' side by G by default, G in [0, 4] "
                                 "(config.json \"inference\"; calibrate it on validation data; default 1)")
    p.add_argument("--output-frames", type=int, default=None, metavar="K",
                   help="audio graph returns the masks of the context's last K frames only, computing only "
                        "what they need (arch unet; the engine then needs block + lookahead <= K; "
                        "default: the whole context)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    output.setup_logging(args.verbose)
    from streambin.train.checkpoint import CheckpointError

    try:
        bundle = export_bundle(args.checkpoint, args.out, opset=args.opset, fp16=args.fp16,
                               simplify=args.simplify, data=args.data, weights_fp16=args.weights_fp16,
                               torch_weights=not args.no_torch_weights, mirror_average=args.mirror_average,
                               engine_mirror_average=args.engine_mirror_average,
                               side_gain=1.0 if args.side_gain is None else args.side_gain,
                               output_frames=args.output_frames)
    except (ExportError, BundleError, CheckpointError, OSError, RuntimeError, ValueError) as exc:
        print(f"export.to_onnx: error: {exc}", file=sys.stderr)
        return 1
    e = bundle.config["export"]
    print(f"wrote {bundle.path} (recipe {bundle.recipe}, arch {bundle.arch}, mask_kind "
          f"{bundle.mask_kind}); ONNX Runtime vs PyTorch max abs error: visual "
          f"{e['max_abs_err_visual']:.3g}, audio {e['max_abs_err_audio']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
