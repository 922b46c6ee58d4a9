"""A tiny in-memory binaural data set for trainer tests: the picture decides the side signal.

Each item: mono white noise (RMS 0.1) and a dark frame with one bright square, on the left or on
the right half. The side signal is ``D = g * m`` with ``g = +0.5`` for a square on the left
(left ear louder) and ``-0.5`` on the right; ``L = m + D``, ``R = m - D``. The ideal side mask
is the constant ``g + 0j``, so a model that ignores the picture cannot beat ``mean(D^2)``.
:func:`oracle_side_mask` gives the exact mask of any spectrogram pair, for loss tests.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

CROP = 10080


class PictureSideDataset(Dataset):
    """``n`` items ``{"audio": (2, 10080) float32, "frame": (H, W, 3) uint8, "clip", "flipped"}``."""

    def __init__(self, n: int, visual_size=(32, 64), seed: int = 0, gain: float = 0.5):
        rng = np.random.default_rng(seed)
        h, w = visual_size
        self.items = []
        for i in range(n):
            left = bool(rng.integers(0, 2))
            mono = rng.standard_normal(CROP).astype(np.float32)
            mono *= 0.1 / np.sqrt(np.mean(mono ** 2))
            side = (gain if left else -gain) * mono
            audio = np.stack([mono + side, mono - side]).astype(np.float32)
            frame = rng.integers(0, 40, size=(h, w, 3)).astype(np.uint8)
            s = max(2, h // 3)
            y = int(rng.integers(0, h - s + 1))
            x0 = 0 if left else w // 2
            x = int(rng.integers(x0, x0 + w // 2 - s + 1))
            frame[y:y + s, x:x + s] = 255
            self.items.append({"audio": torch.from_numpy(audio), "frame": torch.from_numpy(frame),
                               "clip": f"clip{i:04d}", "flipped": False})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def tiny_config(recipe: str = "mono2binaural", **train):
    """A validated tiny Config (ngf 8, 32x64 frames) for ``recipe``; ``train`` overrides train.*."""
    from streambin.train.config import Config
    from streambin.train.recipes import get_recipe

    cfg = Config(recipe=recipe)
    cfg.model.arch = get_recipe(recipe).arch
    cfg.model.ngf = 8
    cfg.model.visual_size = (32, 64)
    t = cfg.train
    t.batch_size, t.num_workers, t.log_every_steps = 16, 0, 10
    t.val_every_steps = t.checkpoint_every_steps = 100000
    for k, v in train.items():
        setattr(t, k, v)
    return cfg.validate()


def oracle_side_mask(mono: torch.Tensor, side: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """The exact side mask ``D / M`` of ``mono``/``side`` ``(B, 2, 257, T)`` (real, imag on dim 1):
    ``(B, 2, bins, T)``, the first ``bins`` bins, for checks that a loss scores it zero."""
    m = torch.complex(mono[:, 0, :bins], mono[:, 1, :bins])
    d = torch.complex(side[:, 0, :bins], side[:, 1, :bins])
    ratio = d / m
    return torch.stack([ratio.real, ratio.imag], dim=1)
