"""Build TensorRT engines for a bundle's ONNX graphs and check them against ONNX Runtime.

    python -m export.to_trt --bundle DIR [--fp16] [--workspace-mb 1024] [--max-batch 8] [--force]

UNVERIFIED ON THE DEVELOPMENT MACHINE (it has no TensorRT and no GPU). The API names follow
TensorRT 10.x/11.x's Python documentation: ``Builder.create_network``,
``OnnxParser.parse``/``num_errors``/``get_error``, ``create_builder_config``,
``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``, ``create_optimization_profile`` +
``set_shape``, timing cache (``create_timing_cache``/``set_timing_cache``/``serialize``),
``build_serialized_network``; the run step is :class:`streambin.backends.tensorrt_backend.TrtRunner`.

Engines go to ``BUNDLE/engines/<key>/{visual,audio}.plan`` with ``key`` naming the GPU, its
compute capability and the TensorRT version (e.g. ``nvidia-h100-80gb-hbm3_sm90_trt10.13.0.35``)
and are recorded in config.json "engines". An engine for this key is rebuilt with --force;
engines for other keys are left for their machines and never loaded here.

Precision:
- bundle exported with ``--fp16`` (casts in the graph): built as a STRONGLY_TYPED network on
  any TensorRT version; the graph decides the precision.
- float32 bundle + ``--fp16`` on TensorRT 10.x: ``BuilderFlag.FP16`` with the input stem, mask
  head and normalisation layers pinned to float32 (``layer.precision`` +
  ``OBEY_PRECISION_CONSTRAINTS``).
- float32 bundle + ``--fp16`` on TensorRT >= 11 (no ``BuilderFlag.FP16``): refused; re-export
  the bundle with ``python -m export.to_onnx --fp16``.
- otherwise a float32 engine (TF32 allowed where the GPU has it).

The profile covers batch 1 to ``--max-batch``, optimised for the streaming case: batch 1, or 2
where the bundle asks the engine to mirror-average (``"inference": {"mirror_average": true}``: each
network runs on two inputs at once; ``--max-batch`` must then be at least 2). After building, each
engine runs on random and realistic inputs and is compared with ONNX Runtime (CPU); over
``TOL_FP32`` / ``TOL_FP16`` nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict

from export import output
from export.fp16_graph import fp32_node_names
from export.parity import Graphs, compare_graphs
from streambin.backends import BackendUnavailable
from streambin.backends import tensorrt_backend as trtb
from streambin.bundle import BundleError, load_bundle, read_config, write_config

log = logging.getLogger("streambin")

#: engine vs ONNX Runtime tolerance (max abs; visual scaled by max(1, max|feature|)).
#: float32 engines may use TF32 matmuls/convs, hence looser than the ONNX export's 1e-4.
TOL_FP32 = 5e-3
TOL_FP16 = 2e-2


class TrtBuildError(RuntimeError):
    """Parsing, building or verifying an engine failed."""


def _trt_major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def _pin_fp32_layers(trt, network, fp32_names) -> int:
    """TensorRT 10 weak typing: keep the stem/head/normalisation layers in float32.

    Layers are matched to ONNX nodes by name (the ONNX parser names layers after their node,
    sometimes with a suffix). Returns how many layers were pinned.
    """
    pinned = 0
    float_types = (trt.DataType.FLOAT, trt.DataType.HALF)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        by_name = layer.name in fp32_names or any(layer.name.startswith(n + "_") or
                                                  layer.name.startswith(n + " ")
                                                  for n in fp32_names)
        if not (by_name or layer.type == trt.LayerType.NORMALIZATION):
            continue
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not all(o.dtype in float_types for o in outs):
            continue  # shape/index tensors: nothing to pin
        layer.precision = trt.DataType.FLOAT
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.DataType.FLOAT)
        pinned += 1
    return pinned


def _parser_bytes(onnx_path: Path) -> bytes:
    """The graph as TensorRT's parser gets it: weights stored as int8 (export.int8_weights, to keep
    a bundle small) folded back to float32 first, the values ONNX Runtime computes with."""
    data = onnx_path.read_bytes()
    if b"__int8_to_fp32" not in data:
        return data
    import onnx

    from export.int8_weights import fold_int8_weights

    model = onnx.load_from_string(data)
    fold_int8_weights(model)
    return model.SerializeToString()


def build_engine(onnx_path: Path, shapes: Dict[str, tuple], max_batch: int, fp16: bool,
                 graph_fp16: bool, workspace_mb: int, timing_cache_path: Path, opt_batch: int = 1) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine (bytes).

    ``shapes``: input name -> shape without batch; the profile spans batch 1 to ``max_batch``,
    tuned for ``opt_batch``. ``fp16``: reduced precision requested;
    ``graph_fp16``: the ONNX graph already carries its fp16 casts (strongly typed build).
    The timing cache at ``timing_cache_path`` is read if present and written back.
    """
    trt = trtb.import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = _trt_major(trt)
    strongly_typed = graph_fp16 or major >= 11
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(_parser_bytes(onnx_path), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise TrtBuildError(f"{onnx_path}: TensorRT's ONNX parser failed:\n  " +
                            "\n  ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16 and not graph_fp16:
        if major >= 11 or not hasattr(trt.BuilderFlag, "FP16"):
            raise TrtBuildError(
                f"TensorRT {trt.__version__} has no BuilderFlag.FP16 (precision must be in the "
                "graph): re-export the bundle with python -m export.to_onnx --fp16")
        import onnx

        fp32_names = fp32_node_names(onnx.load(str(onnx_path)))
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("%s: FP16 with %d layers pinned to float32", onnx_path.name,
                 _pin_fp32_layers(trt, network, fp32_names))

    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        rest = tuple(shapes[name])
        profile.set_shape(name, (1,) + rest, (opt_batch,) + rest, (max_batch,) + rest)
    config.add_optimization_profile(profile)

    cache_bytes = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)

    log.info("building %s (TensorRT %s, max batch %d, %s)", onnx_path.name, trt.__version__,
             max_batch, "strongly typed" if strongly_typed else ("fp16" if fp16 else "fp32"))
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TrtBuildError(f"{onnx_path}: TensorRT failed to build the engine (see the "
                            "TensorRT messages above)")
    timing_cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def compare_with_ort(bundle, plans: Dict[str, Path], max_batch: int, tol: float,
                     fp16: bool = False) -> Dict[str, float]:
    """Run the engines and ONNX Runtime (CPU) on the same inputs; max abs errors per graph.

    :func:`export.parity.compare_graphs` at batch 1 and 3 (at most ``max_batch``); the mask
    tolerance is ``tol`` itself. Raises TrtBuildError over tolerance.
    """
    from streambin.backends.onnxruntime_backend import OnnxRuntimeBackend

    fields = {"sample_rate": bundle.sample_rate, "n_fft": bundle.n_fft,
              "win_length": bundle.win_length, "hop": bundle.hop,
              "context_frames": bundle.context_frames, "input_rms": bundle.input_rms,
              "rms_floor": bundle.rms_floor, "visual_size": bundle.visual_size}
    ort_b = OnnxRuntimeBackend(bundle, device="cpu")
    runners = {}
    try:
        for name, plan in plans.items():
            runners[name] = trtb.TrtRunner(plan, max_batch)
        engines = Graphs("TensorRT",
                         lambda frames: runners["visual"].run({"frames": frames})["feature"],
                         lambda spec, feature: runners["audio"].run(
                             {"spec": spec, "feature": feature})["mask"],
                         label="{graph} engine")
        return compare_graphs(Graphs("ONNX Runtime", ort_b.visual, ort_b.audio), engines, fields,
                              sorted({1, min(3, max_batch)}), tol, fp16=fp16,
                              error=TrtBuildError)
    finally:
        for r in runners.values():
            r.close()
        ort_b.close()


def build_bundle_engines(bundle_dir, fp16: bool = False, workspace_mb: int = 1024,
                         max_batch: int = 8, force: bool = False, device_id: int = 0) -> str:
    """Build, verify and record the engines of ``bundle_dir`` for this GPU; returns the key.

    Raises BackendUnavailable (TensorRT, cuda-python or GPU missing), BundleError or
    TrtBuildError. Nothing is written unless both engines build and pass the comparison.
    """
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"--max-batch must be a positive int, got {max_batch!r}")
    if not isinstance(workspace_mb, int) or workspace_mb < 16:
        raise ValueError(f"--workspace-mb must be an int >= 16, got {workspace_mb!r}")
    bundle = load_bundle(bundle_dir)
    opt_batch = 2 if bundle.inference_mirror_average and not bundle.graph_mirror_average else 1
    if max_batch < opt_batch:
        raise ValueError(f"--max-batch must be >= 2 for {bundle.path}: its config asks the engine to mirror-average, "
                         f"which runs each network on two inputs at once; got {max_batch}")
    trt = trtb.import_tensorrt()  # then the missing pieces, in one sentence
    info = trtb.gpu_info(device_id)
    key = trtb.engine_key(info["name"], info["major"], info["minor"], trt.__version__)
    if key in bundle.engines and not force:
        log.info("engine %s is already in the bundle (use --force to rebuild)", key)
        return key
    graph_fp16 = bool(bundle.config.get("export", {}).get("fp16", False))
    shapes = {"frames": bundle.frame_shape, "spec": bundle.spec_shape,
              "feature": bundle.feature_shape}

    engines_root = bundle.path / "engines"
    engines_root.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=str(engines_root)))
    try:
        cache = engines_root / "timing.cache"
        plans = {}
        for name in ("visual", "audio"):
            onnx_path = bundle.graphs[name]
            plan = build_engine(onnx_path, {k: shapes[k] for k in
                                            (("frames",) if name == "visual" else
                                             ("spec", "feature"))},
                                max_batch, fp16, graph_fp16, workspace_mb, cache, opt_batch=opt_batch)
            plans[name] = tmp / f"{name}.plan"
            plans[name].write_bytes(plan)
        tol = TOL_FP16 if (fp16 or graph_fp16) else TOL_FP32
        errs = compare_with_ort(bundle, plans, max_batch, tol, fp16=fp16 or graph_fp16)
        log.info("TensorRT vs ONNX Runtime: max abs error visual %.3g, audio %.3g",
                 errs["visual"], errs["audio"])
        output.replace_dir(tmp, engines_root / key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cfg = read_config(bundle.path)
    cfg.setdefault("engines", {})[key] = {
        "visual": f"engines/{key}/visual.plan", "audio": f"engines/{key}/audio.plan",
        "gpu": info["name"], "compute_capability": f"{info['major']}.{info['minor']}",
        "tensorrt": trt.__version__, "fp16": bool(fp16 or graph_fp16), "max_batch": max_batch,
        "max_abs_err_visual": errs["visual"], "max_abs_err_audio": errs["audio"]}
    write_config(bundle.path, cfg)
    return key


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.to_trt", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, help="bundle directory (from export.to_onnx)")
    p.add_argument("--fp16", action="store_true", help="reduced precision (see module doc)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace (MiB)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch in the profile")
    p.add_argument("--force", action="store_true", help="rebuild this GPU's engine if present")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    output.setup_logging(args.verbose)
    try:
        key = build_bundle_engines(args.bundle, fp16=args.fp16, workspace_mb=args.workspace_mb,
                                   max_batch=args.max_batch, force=args.force,
                                   device_id=args.device)
    except BackendUnavailable as exc:
        print(f"export.to_trt: {exc}", file=sys.stderr)
        return 2
    except (BundleError, TrtBuildError, ValueError, OSError, RuntimeError) as exc:
        print(f"export.to_trt: error: {exc}", file=sys.stderr)
        return 1
    entry = json.loads((Path(args.bundle) / "config.json").read_text())["engines"][key]
    print(f"engine {key}: {entry['visual']}, {entry['audio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
