"""Interpolate two checkpoints of one generator in weight space (a fine-tune and its start).

Usage::

    python -m streambin.train.average_checkpoints --base runs/start.pt --tuned runs/finetuned.pt \\
        --weight 0.5 --out runs/between.pt

writes ``(1 - weight) * base + weight * tuned`` for every floating-point tensor of the generator
(weights, biases and BatchNorm running statistics alike); integer entries (BatchNorm's batch
counters) come from ``tuned``. ``weight`` 0 gives ``base``'s generator, 1 ``tuned``'s.

What it is for: a fine-tune on new scenes often gains on them and loses some of what its
starting point did well. When both lie in one basin (``tuned`` was trained from ``base``), a point
between them can keep part of each, at no training cost. Score the result like any candidate
(``python -m streambin.train.evaluate --checkpoint ...``); nothing here guarantees it is better.

The output holds the generator only (a recipe's extra heads, optimizer and scheduler states are
dropped), with ``tuned``'s config and step, so it evaluates, exports and serves as ``--init``,
but cannot be resumed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, Optional, Sequence

import torch

from streambin.nets import BinauralGenerator
from streambin.nets.weights import CheckpointError, generator_state, read_checkpoint
from streambin.train.build import generator_kwargs
from streambin.train.checkpoint import config_from_checkpoint, save_checkpoint

__all__ = ["interpolate_states", "interpolate_checkpoints", "main"]


def _checked_weight(weight: float) -> float:
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return weight


def interpolate_states(base: Dict[str, torch.Tensor], tuned: Dict[str, torch.Tensor],
                       weight: float) -> Dict[str, torch.Tensor]:
    """``(1 - weight) * base + weight * tuned`` per floating-point entry; others from ``tuned``.

    Both state dicts must have the same keys and shapes (:class:`ValueError` naming the first
    difference otherwise); ``weight`` in [0, 1]. The sum is formed in float64 and stored in each
    entry's own dtype.
    """
    weight = _checked_weight(weight)
    only_base, only_tuned = sorted(set(base) - set(tuned)), sorted(set(tuned) - set(base))
    if only_base or only_tuned:
        raise ValueError(f"the two generators differ in their entries: only in base {only_base[:5]}, "
                         f"only in tuned {only_tuned[:5]}")
    out = {}
    for key, t in tuned.items():
        b = base[key]
        if b.shape != t.shape:
            raise ValueError(f"entry {key!r} has shape {tuple(b.shape)} in base and {tuple(t.shape)} in tuned")
        if t.is_floating_point():
            out[key] = ((1.0 - weight) * b.double() + weight * t.double()).to(t.dtype)
        else:
            out[key] = t.clone()
    return out


def interpolate_checkpoints(base_path: str, tuned_path: str, weight: float, out_path: str) -> None:
    """Write the interpolated generator of two checkpoints to ``out_path`` (see the module doc).

    The two must build the same network (equal generator arguments, mirror averaging aside, as
    it adds no weights); :class:`CheckpointError` for unreadable files or differing networks,
    :class:`ValueError` for a bad ``weight``.
    """
    weight = _checked_weight(weight)
    base, tuned = read_checkpoint(base_path), read_checkpoint(tuned_path)
    base_cfg, cfg = config_from_checkpoint(base, base_path), config_from_checkpoint(tuned, tuned_path)
    base_net, tuned_net = ({k: v for k, v in generator_kwargs(c).items() if k != "mirror_average"}
                           for c in (base_cfg, cfg))
    if base_net != tuned_net:
        differ = {k: (base_net.get(k), tuned_net.get(k)) for k in set(base_net) | set(tuned_net)
                  if base_net.get(k) != tuned_net.get(k)}
        raise CheckpointError(f"{base_path} and {tuned_path} hold different networks "
                              f"(base, tuned): {differ}")
    try:
        state = interpolate_states(generator_state(base), generator_state(tuned), weight)
    except ValueError as exc:  # the weight is checked above, so this is the states' mismatch
        raise CheckpointError(f"{base_path} and {tuned_path}: {exc}") from exc
    gen = BinauralGenerator(**generator_kwargs(cfg))
    gen.load_state_dict(state, strict=True)
    save_checkpoint(out_path, config=cfg, model=gen, step=int(tuned.get("step", 0)),
                    epoch=int(tuned.get("epoch", 0)), train_seconds=float(tuned.get("train_seconds", 0.0)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streambin.train.average_checkpoints",
                                description="Interpolate a fine-tuned checkpoint with its starting point.")
    p.add_argument("--base", required=True, help="the starting checkpoint (weight 0)")
    p.add_argument("--tuned", required=True, help="the fine-tuned checkpoint (weight 1)")
    p.add_argument("--weight", type=float, required=True, help="share of --tuned, in [0, 1]")
    p.add_argument("--out", required=True, help="where to write the interpolated checkpoint")
    args = p.parse_args(argv)
    try:
        interpolate_checkpoints(args.base, args.tuned, args.weight, args.out)
    except (CheckpointError, ValueError) as exc:
        p.error(str(exc))
    print(f"wrote {args.out}: {1 - args.weight:g} x {args.base} + {args.weight:g} x {args.tuned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
