"""Recover a trainable object localiser checkpoint from a bundle's ``localiser.onnx``.

Usage::

    python -m streambin.train.localiser_from_bundle --bundle streambin/models/default \\
        --out runs/localiser_default.pt

then ``python scripts/experiments/object_localiser.py train --init runs/localiser_default.pt ...``
to fine-tune the shipped localiser (its training checkpoints are not kept anywhere else).

The exporter folds each BatchNorm into the convolution before it, so the graph holds anonymous
``Conv`` nodes with biases: one per conv-BatchNorm block of the net, in execution order, and the
1 x 1 head last. Their count says which localiser wrote the graph (12 for the small
:class:`~streambin.nets.localiser.ObjectLocaliser`, 36 for the ImageNet-trunk
:class:`~streambin.nets.localiser.TrunkLocaliser`). Each folded pair is written back as the block's
``Conv2d`` with the folded weight and a BatchNorm that is the identity in eval mode plus the
folded bias (running mean 0, running variance ``1 - eps``, weight 1). The recovered net reproduces
the graph (checked; weights stored as float16 come back as float32 of the same values). Batch
statistics of such a net are not its running ones, so fine-tune it with the BatchNorms in eval
mode: the checkpoint says ``"batchnorm_frozen": True`` and ``object_localiser.py train`` honours it
(with ``--trunk`` as the checkpoint's ``"trunk"``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

import numpy as np
import torch
from torch import nn

from streambin.nets.localiser import (INPUT_H, INPUT_W, N_MAPS, SOUNDING_MAP, TrunkLocaliser,
                                      build_localiser)

GRAPH_NAME = "localiser.onnx"
TRUNKS = ("own", TrunkLocaliser.TRUNK)   # the localisers a graph can be recovered into


class LocaliserRecoveryError(ValueError):
    """The graph is not an object localiser this net can hold."""


def _conv_bn_blocks(net: nn.Module) -> List[nn.Sequential]:
    """The net's conv-BatchNorm blocks (an ``nn.Sequential`` of a ``Conv2d``, its ``BatchNorm2d``
    and maybe an activation) in the order a forward pass runs them, as the graph holds them."""
    blocks = [m for m in net.modules() if isinstance(m, nn.Sequential) and len(m) >= 2
              and isinstance(m[0], nn.Conv2d) and isinstance(m[1], nn.BatchNorm2d)]
    order: List[nn.Sequential] = []
    hooks = [b[0].register_forward_hook(lambda *_, b=b: order.append(b)) for b in blocks]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, INPUT_H, INPUT_W))
    finally:
        for h in hooks:
            h.remove()
    if len(order) != len(blocks) or len({id(b) for b in order}) != len(blocks):
        raise RuntimeError(f"{type(net).__name__}: each conv-BatchNorm block must run once per forward pass")
    return order


def recover_localiser(graph_path: Path) -> nn.Module:
    """An eval-mode localiser (:class:`~streambin.nets.localiser.ObjectLocaliser` or
    :class:`~streambin.nets.localiser.TrunkLocaliser`, whichever wrote the graph) with the weights
    of ``graph_path`` (an exported localiser graph: ``frames (B, 96, 192, 3) uint8 -> maps (B, 6 or
    7, 24, 48)``)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(graph_path))
    except Exception as e:
        raise LocaliserRecoveryError(f"{graph_path}: not a readable ONNX graph ({type(e).__name__}: {e})") from None
    inits = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in model.graph.initializer}
    # Weights stored as float16 reach their Conv through a Cast node: follow it back.
    cast_from = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}

    def weight(name: str) -> np.ndarray:
        name = cast_from.get(name, name)
        if name not in inits:
            raise LocaliserRecoveryError(f"{graph_path}: a Conv input {name!r} is not a stored weight")
        return inits[name]

    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    head_w = weight(convs[-1].input[1]) if convs else None
    if head_w is None or head_w.shape[0] not in (N_MAPS, SOUNDING_MAP + 1) or head_w.shape[2:] != (1, 1):
        raise LocaliserRecoveryError(f"{graph_path}: the last Conv must be the 1 x 1 head of {N_MAPS} or "
                                     f"{SOUNDING_MAP + 1} maps, got {None if head_w is None else head_w.shape}")
    width, sounding_map = int(head_w.shape[1]), head_w.shape[0] == SOUNDING_MAP + 1
    candidates = {trunk: build_localiser(width, sounding_map, trunk) for trunk in TRUNKS}
    blocks_of = {trunk: _conv_bn_blocks(net) for trunk, net in candidates.items()}
    matching = [trunk for trunk in TRUNKS if len(blocks_of[trunk]) + 1 == len(convs)]
    if not matching:
        expected = ", ".join(f"{len(b) + 1} ({t})" for t, b in blocks_of.items())
        raise LocaliserRecoveryError(f"{graph_path}: {len(convs)} Conv nodes, expected a localiser's blocks and "
                                     f"its head: {expected}")
    net, blocks = candidates[matching[0]], blocks_of[matching[0]]
    with torch.no_grad():
        for node, block in zip(convs[:-1], blocks):
            conv, bn = block[0], block[1]
            w = weight(node.input[1])
            b = weight(node.input[2]) if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            if w.shape != tuple(conv.weight.shape):
                raise LocaliserRecoveryError(f"{graph_path}: a Conv of shape {w.shape} where the net has "
                                             f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)   # (x - 0) / sqrt(1 - eps + eps) = x
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b))
        net.head.weight.copy_(torch.from_numpy(head_w))
        net.head.bias.copy_(torch.from_numpy(weight(convs[-1].input[2])))
    return net.eval()


def check_parity(net: nn.Module, graph_path: Path) -> float:
    """Max abs difference of the net's maps from the graph's on probe frames."""
    import onnxruntime as ort

    from streambin.nets.generator import IMAGENET_MEAN, IMAGENET_STD

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, INPUT_H, INPUT_W, 3), dtype=np.uint8)
    frames[0] = 128
    got = ort.InferenceSession(str(graph_path), providers=["CPUExecutionProvider"]).run(None, {"frames": frames})[0]
    x = torch.from_numpy(frames).float().div(255.0)
    x = ((x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).permute(0, 3, 1, 2)
    with torch.no_grad():
        want = net(x).numpy()
    return float(np.abs(got - want).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True, help="a bundle directory with a side renderer")
    p.add_argument("--out", required=True, help="checkpoint to write (object_localiser.py's format)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs difference of the maps from the graph's")
    a = p.parse_args(argv)
    graph = Path(a.bundle) / GRAPH_NAME
    if not graph.is_file():
        print(f"error: {graph} does not exist (a bundle without a side renderer has no localiser)", file=sys.stderr)
        return 2
    try:
        net = recover_localiser(graph)
    except LocaliserRecoveryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    diff = check_parity(net, graph)
    trunk = TrunkLocaliser.TRUNK if isinstance(net, TrunkLocaliser) else "own"
    print(f"recovered {sum(p.numel() for p in net.parameters()):,} weights ({trunk!r} trunk); "
          f"maps differ from the graph's by at most {diff:.2e}")
    if not diff <= a.tolerance:
        print(f"error: that is more than --tolerance {a.tolerance}", file=sys.stderr)
        return 1
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"net": net.state_dict(), "width": net.head.weight.shape[1], "sounding_map": net.sounding_map,
                "trunk": trunk, "batchnorm_frozen": True, "recovered_from": str(graph)}, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
