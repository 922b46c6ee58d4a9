"""An average head's mid-to-side filter per azimuth, from measured HRIRs.

For heads ``h`` (drawn as the simulator draws them) at elevation 0, with ``M_h`` and ``S_h`` the
rfft of head h's HRIR mid ``(l + r) / 2`` and side ``(l - r) / 2`` at azimuth ``a``, the filter
that best predicts the side from the mid over all heads, in the least-squares sense, is

    H(a, f) = sum_h S_h conj(M_h) / sum_h |M_h|^2

on a grid of azimuths from -90 to 90 degrees. ``scripts/experiments/hrtf_prior.py`` measures how
well rendering through it does; ``python -m export.add_side_renderer`` ships its antisymmetric
half in a bundle (streambin.side_renderer).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from tqdm import tqdm

from streambin.train.sim.heads import load_head

SAMPLE_RATE = 16000
N_FFT = 512
GRID_STEP_DEG = 0.5


def side_filter_table(head_ids: Sequence[str], step_deg: float = GRID_STEP_DEG, n_fft: int = N_FFT,
                      sample_rate: int = SAMPLE_RATE) -> Tuple[np.ndarray, np.ndarray]:
    """``(azimuths (A,) degrees from -90 to 90, H (A, n_fft // 2 + 1) complex128)``: the
    least-squares mid-to-side filter over ``head_ids`` at elevation 0."""
    if not head_ids:
        raise ValueError("need at least one head for the filter table")
    if not (step_deg > 0 and (90.0 / step_deg).is_integer()):
        raise ValueError(f"step_deg must divide 90 degrees, got {step_deg!r}")
    grid = np.arange(-90.0, 90.0 + step_deg / 2, step_deg)
    num = np.zeros((grid.size, n_fft // 2 + 1), complex)
    den = np.zeros((grid.size, n_fft // 2 + 1))
    for hid in tqdm(head_ids, desc="heads", unit="head", leave=False):
        head = load_head(hid, sample_rate)
        if head.n_taps > n_fft:
            raise ValueError(f"head {hid}: {head.n_taps} taps do not fit a {n_fft}-point FFT")
        for i, a in enumerate(grid):
            h = np.fft.rfft(head.interpolate(float(a), 0.0).astype(np.float64), n_fft)
            mid, side = 0.5 * (h[0] + h[1]), 0.5 * (h[0] - h[1])
            num[i] += side * np.conj(mid)
            den[i] += np.abs(mid) ** 2
    return grid, num / np.maximum(den, 1e-12)


def antisymmetric_half(grid: np.ndarray, table: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(azimuths (A',) from 0 to 90, H' (A', bins))`` with ``H'(a) = (H(a) - H(-a)) / 2``: the
    part of a table symmetric grid's filters that changes sign with the azimuth (so the mirror
    image's filter is exactly the negated one, and a = 0 has none)."""
    grid = np.asarray(grid, np.float64)
    if grid.ndim != 1 or not np.allclose(grid, -grid[::-1]) or table.shape[0] != grid.size:
        raise ValueError(f"grid must be symmetric about 0 with one table row per azimuth, got {grid.size} "
                         f"azimuths and {table.shape[0]} rows")
    mid = grid.size // 2
    half = 0.5 * (table[mid:] - table[mid::-1])
    return grid[mid:], half
