"""Per-hop cost of the streaming STFT -> complex mask -> ISTFT chain, three ways.

* ``streambin._C``: the native streaming analyser, mask multiply and synthesiser through
  streambin.dsp, with preallocated buffers (the engine's path).
* ``torch``: per hop, ``torch.stft`` of the newest frame from a rolling history, complex
  multiply, then ``torch.fft.irfft`` + window + overlap-add. (``torch.istft`` cannot
  synthesise one streaming frame at a time: it insists that the window-square envelope is
  non-zero over the whole frame, which a single periodic-Hann frame never is.)
* ``numpy``: the same chain with ``numpy.fft``.

All three compute the same thing (checked before timing) on the same input and masks.
"""

from __future__ import annotations

import time

import numpy as np

from streambin import dsp

N_FFT, WIN, HOP = 512, 400, 160


def _masks(n_hops: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n_hops, 1, 2, N_FFT // 2 + 1, 1)).astype(np.float32)


class NativeChain:
    def __init__(self):
        self.ana, self.syn = dsp.StreamingSTFT(N_FFT, WIN, HOP), dsp.StreamingISTFT(N_FFT, WIN, HOP, channels=2)
        self.spec = np.empty((1, N_FFT // 2 + 1), np.complex64)
        self.ears = np.empty((2, 1, N_FFT // 2 + 1), np.complex64)
        self.out = np.empty((2, HOP), np.float32)

    def hop(self, x, mask):
        self.ana.push_into(x, self.spec)
        dsp.apply_mask(self.spec, mask, out=self.ears, mode="side")
        self.syn.push_into(self.ears, self.out)
        return self.out


class _RollingChain:
    """Shared state of the torch and numpy chains (same framing as streambin._C)."""

    def __init__(self, xp):
        self.xp = xp
        self.window = dsp._C.padded_hann(N_FFT, WIN, HOP)
        env = np.zeros(HOP)
        off = (N_FFT - WIN) // 2
        for j in range(HOP):
            env[j] = sum(self.window[p] ** 2 for p in range(off + j, N_FFT, HOP))
        self.inv_env = (1.0 / env).astype(np.float32)
        self.history = np.zeros(N_FFT, np.float32)   # newest sample at index history()-1
        self.acc = np.zeros((2, N_FFT), np.float32)
        self.off, self.h = off, off + WIN


class TorchChain(_RollingChain):
    def __init__(self):
        import torch

        super().__init__("torch")
        self.torch = torch
        self.t_window = torch.from_numpy(np.ascontiguousarray(self.window[self.off:self.off + WIN]))
        self.t_win_full = torch.from_numpy(self.window)
        self.t_hist = torch.zeros(N_FFT)
        self.t_acc = torch.zeros(2, N_FFT)
        self.t_inv_env = torch.from_numpy(self.inv_env)

    def hop(self, x, mask):
        torch = self.torch
        h = self.t_hist
        h[: self.h - HOP] = h[HOP: self.h].clone()
        h[self.h - HOP: self.h] = torch.from_numpy(x)
        spec = torch.stft(h, N_FFT, HOP, WIN, self.t_window, center=False, return_complex=True)[:, 0]
        m = torch.from_numpy(mask[0, 0, :, 0]) + 1j * torch.from_numpy(mask[0, 1, :, 0])
        d = spec * m
        ears = torch.stack([spec + d, spec - d])
        frames = torch.fft.irfft(ears, n=N_FFT) * self.t_win_full
        self.t_acc += frames
        out = self.t_acc[:, self.off:self.off + HOP] * self.t_inv_env
        self.t_acc = torch.cat([self.t_acc[:, HOP:], torch.zeros(2, HOP)], dim=1)
        return out.numpy()


class NumpyChain(_RollingChain):
    def __init__(self):
        super().__init__("numpy")

    def hop(self, x, mask):
        h = self.history
        h[: self.h - HOP] = h[HOP: self.h]
        h[self.h - HOP: self.h] = x
        frame = h.copy()
        frame[self.h:] = 0.0
        spec = np.fft.rfft(frame * self.window)
        d = spec * (mask[0, 0, :, 0] + 1j * mask[0, 1, :, 0])
        frames = np.fft.irfft(np.stack([spec + d, spec - d]), n=N_FFT) * self.window
        self.acc += frames
        out = self.acc[:, self.off:self.off + HOP] * self.inv_env
        self.acc = np.concatenate([self.acc[:, HOP:], np.zeros((2, HOP), np.float32)], axis=1)
        return out.astype(np.float32)


IMPLEMENTATIONS = {"streambin._C": NativeChain, "torch": TorchChain, "numpy": NumpyChain}


def check_agreement(n_hops: int = 40, atol: float = 1e-4) -> float:
    """Run all chains on the same input; returns the max abs difference to streambin._C."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n_hops * HOP).astype(np.float32)
    masks = _masks(n_hops, 1)
    outs = {}
    for name, cls in IMPLEMENTATIONS.items():
        chain = cls()
        outs[name] = np.concatenate([chain.hop(x[i * HOP:(i + 1) * HOP], masks[i]).copy()
                                     for i in range(n_hops)], axis=1)
    worst = max(float(np.abs(outs[n] - outs["streambin._C"]).max()) for n in outs)
    if worst > atol:
        raise AssertionError(f"DSP chains disagree by {worst:.2e} (> {atol})")
    return worst


def time_chain(name: str, n_hops: int = 2000, warmup: int = 100) -> dict:
    """Per-hop wall time (microseconds) of one implementation."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_hops + warmup) * HOP).astype(np.float32)
    masks = _masks(n_hops + warmup)
    chain = IMPLEMENTATIONS[name]()
    times = np.empty(n_hops)
    for i in range(n_hops + warmup):
        xi, mi = x[i * HOP:(i + 1) * HOP], masks[i]
        t0 = time.perf_counter_ns()
        chain.hop(xi, mi)
        if i >= warmup:
            times[i - warmup] = (time.perf_counter_ns() - t0) / 1e3
    return {"impl": name, "per_hop_us_p50": float(np.percentile(times, 50)),
            "per_hop_us_p99": float(np.percentile(times, 99)), "per_hop_us_mean": float(times.mean()),
            "hops": n_hops}
