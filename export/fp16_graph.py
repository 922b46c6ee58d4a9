"""fp16 surgery on the exported ONNX graphs (``export.to_onnx --fp16`` / ``--weights-fp16``).

- :func:`convert_fp16`: mixed precision, float16 weights and compute except the nodes of
  :func:`fp32_node_names` (input stem, mask head, normalisations); I/O types kept.
- :func:`store_weights_fp16`: float16 storage of large weights, float32 compute.
- :func:`fp32_node_names` is also what ``export.to_trt`` pins to float32 on TensorRT 10.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Dict, Set

import numpy as np

log = logging.getLogger("streambin")

#: ops that do the heavy arithmetic; fp16 pays off there
COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
#: ops kept float32 wherever they are (FP16 overflow/NaN reports cluster there)
NORM_OPS = {"BatchNormalization", "InstanceNormalization", "LayerNormalization",
            "GroupNormalization", "LpNormalization", "MeanVarianceNormalization",
            "Softmax", "LogSoftmax", "ReduceMean", "Pow", "Sqrt", "Reciprocal"}


def fp32_node_names(model) -> Set[str]:
    """Names of the nodes of ``model`` (onnx.ModelProto) that must stay float32 under --fp16.

    - the mask head: walking back from each graph output, every node up to and including the
      first Conv/ConvTranspose/Gemm/MatMul on each path (final conv, sigmoid, scaling, Nyquist
      padding);
    - the input stem: walking forward from each graph input, every node before the first such
      compute op (uint8 -> float cast, /255, ImageNet normalisation, bin slicing);
    - every normalisation-like node (:data:`NORM_OPS`) anywhere.
    Nodes without a name are given one (``_sb_node_<i>``) so they can be listed.
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
