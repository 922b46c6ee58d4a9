"""How torch computes on the CPU during training and evaluation: denormal floats flushed to zero.

Denormal floats (magnitudes below 1.18e-38) take a slow path on x86 cores. As a network
trains, some activations and gradients drift into that range, and every convolution that
touches them slows down: a training step of the from-scratch Mono2Binaural run's step-4,000
weights took 3.1x as long as with denormals flushed, and its inference 3.0x
(``benchmarks/train_denormals.py``; docs/results.md, "Denormal floats"). Flushing changes only
values below 1.18e-38, far under anything the losses or the metrics resolve.

The switch is process-wide (``torch.set_flush_denormal``), so the training and evaluation
commands turn it on at start; the library's runtime does not touch the caller's process.
"""

from __future__ import annotations

import torch

__all__ = ["flush_denormals"]


def flush_denormals() -> bool:
    """Make torch's CPU kernels treat denormal floats as zero, for this whole process.

    Returns True when the CPU supports it (x86 with SSE3); elsewhere it does nothing and
    returns False, and the networks compute as before, only slower on denormals.
    """
    return bool(torch.set_flush_denormal(True))
