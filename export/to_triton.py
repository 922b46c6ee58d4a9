"""Write a Triton Inference Server model repository from a streambin bundle.

    python -m export.to_triton --bundle DIR --out REPO_DIR [--max-batch 8] [--instances 1]
                               [--gpus 0,1 | --cpu] [--queue-delay-us 200]

Layout::

    REPO/streambin_visual/config.pbtxt
    REPO/streambin_visual/1/model.onnx
    REPO/streambin_audio/config.pbtxt
    REPO/streambin_audio/1/model.onnx
    REPO/streambin_audio/streambin_config.json   (the bundle's config.json: STFT, RMS, sizes)

Both models use Triton's ONNX Runtime backend (platform "onnxruntime_onnx") with dynamic
batching, so many streams' audio blocks are batched together on the server; dims are read from
the ONNX graphs (batch axis excluded, as Triton wants with max_batch_size > 0). See
docs/triton.md for how streambin's runtime would call the server.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from export import output
from streambin.bundle import BundleError, load_bundle

log = logging.getLogger("streambin")

MODEL_NAMES = {"visual": "streambin_visual", "audio": "streambin_audio"}
#: ONNX TensorProto element type -> Triton data type
ONNX_TO_TRITON = {1: "TYPE_FP32", 2: "TYPE_UINT8", 10: "TYPE_FP16", 6: "TYPE_INT32",
                  7: "TYPE_INT64", 11: "TYPE_FP64"}


def graph_io(onnx_path: Path) -> Dict[str, List[dict]]:
    """{"input": [{"name", "data_type", "dims"}], "output": [...]} of an ONNX graph; dims
    exclude the leading batch axis, which must be symbolic (dynamic)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    out: Dict[str, List[dict]] = {"input": [], "output": []}
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            if v.name in inits:
                continue
            tt = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if not dims or dims[0] != -1:
                raise BundleError(f"{onnx_path}: tensor '{v.name}' has no dynamic batch axis "
                                  f"(shape {dims}); re-export with python -m export.to_onnx")
            if any(d < 1 for d in dims[1:]):
                raise BundleError(f"{onnx_path}: tensor '{v.name}' has dynamic non-batch dims "
                                  f"{dims}; streambin graphs have fixed streaming shapes")
            if tt.elem_type not in ONNX_TO_TRITON:
                raise BundleError(f"{onnx_path}: tensor '{v.name}' has unsupported element "
                                  f"type {tt.elem_type}")
            out[kind].append({"name": v.name, "data_type": ONNX_TO_TRITON[tt.elem_type],
                              "dims": dims[1:]})
    return out


def preferred_batch_sizes(max_batch: int) -> List[int]:
    """Powers of two from 2 up to max_batch, plus max_batch itself (e.g. 8 -> [2, 4, 8])."""
    sizes, b = [], 2
    while b < max_batch:
        sizes.append(b)
        b *= 2
    if max_batch > 1:
        sizes.append(max_batch)
    return sizes


def config_pbtxt(name: str, io: Dict[str, List[dict]], max_batch: int, instances: int,
                 gpus: Optional[Sequence[int]], cpu: bool, queue_delay_us: int) -> str:
    """Text of a Triton config.pbtxt (protobuf text format, ModelConfig)."""
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch}"]
    for kind in ("input", "output"):
        lines.append(f"{kind} [")
        entries = []
        for t in io[kind]:
            entries.append("  {\n"
                           f'    name: "{t["name"]}"\n'
                           f"    data_type: {t['data_type']}\n"
                           f"    dims: [ {', '.join(str(d) for d in t['dims'])} ]\n"
                           "  }")
        lines.append(",\n".join(entries))
        lines.append("]")
    pref = preferred_batch_sizes(max_batch)
    lines.append("dynamic_batching {")
    if pref:
        lines.append(f"  preferred_batch_size: [ {', '.join(map(str, pref))} ]")
    lines.append(f"  max_queue_delay_microseconds: {queue_delay_us}")
    lines.append("}")
    lines.append("instance_group [")
    lines.append("  {")
    lines.append(f"    count: {instances}")
    lines.append(f"    kind: {'KIND_CPU' if cpu else 'KIND_GPU'}")
    if gpus and not cpu:
        lines.append(f"    gpus: [ {', '.join(str(g) for g in gpus)} ]")
    lines.append("  }")
    lines.append("]")
    return "\n".join(lines) + "\n"


def write_repository(bundle_dir, out_dir, max_batch: int = 8, instances: int = 1,
                     gpus: Optional[Sequence[int]] = None, cpu: bool = False,
                     queue_delay_us: int = 200) -> Path:
    """Write the model repository for ``bundle_dir`` to ``out_dir`` (replaced if it exists and
    holds only streambin models); returns the repository path."""
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"--max-batch must be a positive int, got {max_batch!r}")
    if not isinstance(instances, int) or instances < 1:
        raise ValueError(f"--instances must be a positive int, got {instances!r}")
    if not isinstance(queue_delay_us, int) or queue_delay_us < 0:
        raise ValueError(f"--queue-delay-us must be an int >= 0, got {queue_delay_us!r}")
    if gpus is not None and (cpu or not all(isinstance(g, int) and g >= 0 for g in gpus)):
        raise ValueError(f"--gpus must be GPU indices >= 0 and cannot be combined with --cpu, "
                         f"got {gpus!r}")
    bundle = load_bundle(bundle_dir)
    out = Path(out_dir).expanduser().resolve()
    if out.exists():
        extra = [p.name for p in out.iterdir() if p.name not in MODEL_NAMES.values()]
        if extra:
            raise ValueError(f"{out} exists and holds other entries {extra[:5]}; choose an empty "
                             "or new directory (only streambin models are replaced)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=str(out.parent)))
    try:
        for graph, model_name in MODEL_NAMES.items():
            src = bundle.graphs[graph]
            io = graph_io(src)
            version_dir = tmp / model_name / "1"
            version_dir.mkdir(parents=True)
            shutil.copyfile(src, version_dir / "model.onnx")
            text = config_pbtxt(model_name, io, max_batch, instances, gpus, cpu, queue_delay_us)
            (tmp / model_name / "config.pbtxt").write_text(text)
        shutil.copyfile(bundle.path / "config.json",
                        tmp / MODEL_NAMES["audio"] / "streambin_config.json")
        output.replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote Triton repository %s (%s, %s)", out, *MODEL_NAMES.values())
    return out


def _parse_gpus(text: str) -> List[int]:
    try:
        gpus = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus must look like 0,1 (got {text!r})") from None
    if not gpus or any(g < 0 for g in gpus):
        raise argparse.ArgumentTypeError(f"--gpus must list GPU indices >= 0 (got {text!r})")
    return gpus


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.to_triton",
                                description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, help="bundle directory (from export.to_onnx)")
    p.add_argument("--out", required=True, help="model repository directory to write")
    p.add_argument("--max-batch", type=int, default=8, help="Triton max_batch_size")
    p.add_argument("--instances", type=int, default=1, help="instances per GPU (or on CPU)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--gpus", type=_parse_gpus, default=None, help="GPU indices, e.g. 0,1")
    group.add_argument("--cpu", action="store_true", help="KIND_CPU instances")
    p.add_argument("--queue-delay-us", type=int, default=200,
                   help="dynamic batching max queue delay (microseconds)")
    args = p.parse_args(argv)
    output.setup_logging()
    try:
        out = write_repository(args.bundle, args.out, max_batch=args.max_batch,
                               instances=args.instances, gpus=args.gpus, cpu=args.cpu,
                               queue_delay_us=args.queue_delay_us)
    except (BundleError, ValueError, OSError) as exc:
        print(f"export.to_triton: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote Triton model repository {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
