"""int8 storage of a graph's largest weights, float32 compute (``export.add_side_renderer
--visual-int8``).

A bundle written with ``--weights-fp16`` stores each large weight ``X`` as ``X__fp16`` behind a
Cast to float32. :func:`store_weights_int8` stores the largest of those as int8 with one float32
scale per output channel (symmetric, ``scale = max |w| / 127``) behind ``Cast`` and ``Mul`` back to
float32. Both inputs of those nodes are constants, so ONNX Runtime folds them into a float32
weight when it creates the session: the graph still computes in float32, and only the coarser
rounding of those weights changes its outputs (the caller checks by how much).
:func:`fold_int8_weights` undoes the storage (float32 weights of the same values) for runtimes
that should not see the int8 tensors, such as TensorRT's ONNX parser (``export.to_trt``).
"""

from __future__ import annotations

from typing import List

import numpy as np

FP16_SUFFIX = "__fp16"


def store_weights_int8(model, count: int) -> List[str]:
    """Re-store the ``count`` largest float16-stored weights of ``model`` (onnx.ModelProto,
    changed in place) as per-output-channel int8. Returns the weights' names, largest first."""
    import onnx
    from onnx import helper, numpy_helper

    if not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    graph = model.graph
    casts = {n.input[0]: n for n in graph.node if n.op_type == "Cast" and n.input[0].endswith(FP16_SUFFIX)}
    halves = [t for t in graph.initializer if t.name in casts and t.data_type == onnx.TensorProto.FLOAT16
              and len(t.dims) >= 2]
    halves.sort(key=lambda t: -int(np.prod(t.dims)))
    if count > len(halves):
        raise ValueError(f"the graph stores {len(halves)} weights as float16 (export with --weights-fp16); "
                         f"cannot re-store {count} as int8")
    done = []
    for init in halves[:count]:
        w = numpy_helper.to_array(init).astype(np.float32)
        scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32).reshape((-1,) + (1,) * (w.ndim - 1))
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        base = init.name[:-len(FP16_SUFFIX)]
        cast = casts[init.name]
        out_name = cast.output[0]
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, base + "__int8"),
                                  numpy_helper.from_array(scale, base + "__int8_scale")])
        at = list(graph.node).index(cast)
        graph.node.remove(cast)
        graph.node.insert(at, helper.make_node("Mul", [base + "__int8_float", base + "__int8_scale"], [out_name],
                                               name=base + "__int8_to_fp32"))
        graph.node.insert(at, helper.make_node("Cast", [base + "__int8"], [base + "__int8_float"],
                                               to=onnx.TensorProto.FLOAT, name=base + "__int8_cast"))
        done.append(base)
    return done


def fold_int8_weights(model) -> int:
    """Replace every weight :func:`store_weights_int8` stored (int8, scale, Cast, Mul) in ``model``
    (changed in place) by the float32 initializer ONNX Runtime would fold it to. Returns how many."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    folded = 0
    for mul in [n for n in graph.node if n.op_type == "Mul" and n.name.endswith("__int8_to_fp32")]:
        base = mul.name[:-len("__int8_to_fp32")]
        cast = next((n for n in graph.node if n.name == base + "__int8_cast"), None)
        q, scale = inits.get(base + "__int8"), inits.get(base + "__int8_scale")
        if cast is None or q is None or scale is None:
            raise ValueError(f"int8 weight {base!r} is incomplete (needs its int8 tensor, scale and Cast)")
        w = numpy_helper.to_array(q).astype(np.float32) * numpy_helper.to_array(scale)
        graph.node.remove(cast)
        graph.node.remove(mul)
        graph.initializer.remove(q)
        graph.initializer.remove(scale)
        graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), mul.output[0]))
        folded += 1
    return folded
