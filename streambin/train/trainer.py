"""The training loop: one process, or many under ``torchrun`` with DistributedDataParallel.

- Distributed when ``WORLD_SIZE > 1`` in the environment (torchrun sets it):
  ``init_process_group`` from env, NCCL on CUDA and Gloo on CPU, one process per device,
  DistributedSampler shards, gradients averaged by DDP. ``train.batch_size`` is the GLOBAL batch;
  each process takes ``batch_size / world_size``. On CUDA the BatchNorms become SyncBatchNorm
  (``train.sync_batchnorm``); PyTorch's SyncBatchNorm does not run on CPU, so CPU/Gloo runs
  normalise each process's share of the batch separately (as the papers' DataParallel did).
- Adam with two parameter groups (visual ``lr_visual``, audio ``lr_audio``), weight decay, and
  StepLR decay x``lr_decay`` every ``lr_decay_every_epochs`` epochs.
- Validation loss every ``val_every_steps`` (averaged over the whole val split, all processes),
  checkpoints ``last.pt`` every ``checkpoint_every_steps`` and ``best.pt`` on a new best val loss,
  CSV log ``<out>/log.csv`` and the same values as TensorBoard scalars beside it
  (``tensorboard --logdir <out>``; ``python -m streambin.train.plot <out>`` draws the curves),
  tqdm progress on rank 0, resume from a checkpoint (weights,
  Adam state, LR schedule, step and epoch; a run stopped mid-epoch restarts that epoch's data
  order, the step count continues).
"""

from __future__ import annotations

import csv
import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from streambin.train.checkpoint import GENERATOR_PREFIX, read_checkpoint, save_checkpoint
from streambin.train.config import Config, save_config
from streambin.train.cpu_numerics import flush_denormals
from streambin.train.recipes import get_recipe


@dataclass
class DistInfo:
    """Process placement read from the torchrun environment (defaults: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "DistInfo":
        env = os.environ
        world = int(env.get("WORLD_SIZE", "1"))
        return cls(rank=int(env.get("RANK", "0")), world_size=world,
                   local_rank=int(env.get("LOCAL_RANK", "0")),
                   local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))))


def init_distributed() -> DistInfo:
    """Initialise the default process group when WORLD_SIZE > 1 (idempotent); returns placement."""
    info = DistInfo.from_env()
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, init_method="env://")
    return info


def default_device(info: DistInfo) -> torch.device:
    return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def set_cpu_threads(info: DistInfo) -> int:
    """Give each local process an equal share of the cores this process may use; returns it.

    An explicit ``OMP_NUM_THREADS`` in the environment wins (torch already honours it).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    n = max(1, cores // max(1, info.local_world_size))
    torch.set_num_threads(n)
    return n


def make_dataset(cfg: Config, split: str, train: bool) -> Dataset:
    """The configured data set for ``split`` yielding training crops (streambin.train.data).

    Validation uses the same crop length without flips, seeded differently from training
    (``mode="train"`` crops at a fixed epoch 0, so the val loss is comparable across steps).
    """
    from streambin.train import data as data_mod

    if not cfg.data.root:
        raise ValueError("data.root is not set: pass --data DIR (or data.root in the config)")
    kw = dict(mode="train", visual_size=cfg.model.visual_size, crop_samples=cfg.audio.crop_samples,
              flip_prob=cfg.train.flip_prob if train else 0.0, rms=cfg.audio.input_rms,
              seed=cfg.train.seed if train else cfg.train.seed + 1,
              blank_prob=cfg.data.blank_prob if train else 0.0)
    kw.update(get_recipe(cfg.recipe).dataset_options(cfg))  # opt-in item fields the recipe needs
    if cfg.data.format == "sim":
        dataset = data_mod.SimBinauralDataset(cfg.data.root, split, **kw)
    else:
        if not cfg.data.fairplay_split_dir:
            raise ValueError("data.format is 'fairplay' but data.fairplay_split_dir is not set")
        split_file = os.path.join(cfg.data.fairplay_split_dir, f"{split}.h5")
        dataset = data_mod.FairPlayDataset(cfg.data.root, split_file, **kw)
    keep = get_recipe(cfg.recipe).training_clip_filter(cfg) if train else None
    if keep is not None:
        dataset.keep_clips(keep)
    return dataset


class Trainer:
    """Train ``config.recipe`` on ``train_set`` (items: ``audio (2, n)``, ``frame (H, W, 3) uint8``).

    ``fit()`` runs until ``train.max_steps`` optimizer steps (or ``train.epochs`` epochs) and
    returns a summary dict. Under torchrun every process builds its own Trainer.
    """

    def __init__(self, config: Config, train_set: Dataset, val_set: Optional[Dataset] = None,
                 out_dir: str = "runs/default", resume: Optional[str] = None,
                 device: Optional[torch.device] = None, progress: bool = True, init: Optional[str] = None):
        self.cfg = config.validate()
        t = config.train
        self.info = init_distributed()
        self.device = torch.device(device) if device is not None else default_device(self.info)
        if self.device.type == "cpu":
            set_cpu_threads(self.info)
            flush_denormals()
        self.out_dir = out_dir
        self.progress = progress

        torch.manual_seed(t.seed)  # identical initial weights on every rank (DDP also broadcasts)
        self.recipe = get_recipe(config.recipe)(config)
        self.recipe.build()
        module = self.recipe.step_module
        if self.info.distributed and self.device.type == "cuda" and t.sync_batchnorm:
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
            self.recipe.step_module = module
        module.to(self.device)
        self.optimizer = torch.optim.Adam(self.recipe.parameter_groups(), betas=t.betas,
                                          weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=t.lr_decay_every_epochs,
                                                         gamma=t.lr_decay)
        self.step, self.epoch, self.best_val = 0, 0, None
        self._resumed_seconds, self._t0 = 0.0, time.time()
        if init and resume:
            raise ValueError("give either init (weights only) or resume (full state), not both")
        if init:
            self._init_weights(init)
        if resume:
            self._load(resume)
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.recipe.wrap(lambda m: DistributedDataParallel(m, device_ids=ids))

        if t.batch_size % self.info.world_size != 0:
            raise ValueError(f"train.batch_size ({t.batch_size}) must be divisible by the number of "
                             f"processes ({self.info.world_size})")
        self.local_batch = t.batch_size // self.info.world_size
        self.train_loader = self._loader(train_set, shuffle=True)
        if len(self.train_loader) == 0:
            raise ValueError(f"training set has {len(train_set)} items: fewer than one batch of "
                             f"{t.batch_size}; lower train.batch_size")
        self.val_loader = self._loader(val_set, shuffle=False) if val_set is not None else None
        self.max_steps = t.max_steps if t.max_steps is not None else t.epochs * len(self.train_loader)

    # ------------------------------------------------------------------ setup helpers
    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        t = self.cfg.train
        # A DistributedSampler even for one process: the global batch of a step is then the same
        # set of items for any world size (the DDP test relies on it).
        sampler = DistributedSampler(dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=shuffle, seed=t.seed, drop_last=shuffle)
        gen = torch.Generator().manual_seed(t.seed + self.info.rank)
        return DataLoader(dataset, batch_size=self.local_batch, sampler=sampler, drop_last=shuffle,
                          num_workers=t.num_workers, pin_memory=self.device.type == "cuda",
                          generator=gen)
        # No persistent workers: each epoch's workers copy the dataset after set_epoch() below,
        # so datasets that draw crops from (seed, epoch, index) get new crops every epoch.

    def _init_weights(self, path: str) -> None:
        """Start from another run's generator weights (fresh optimizer, step 0). Recipe-only
        heads are not carried over: ours keep their initialisation, the other run's are ignored."""
        ckpt = read_checkpoint(path, map_location=self.device)
        state = {k: v for k, v in ckpt["model"].items() if k.startswith(GENERATOR_PREFIX)}
        missing, unexpected = self.recipe.step_module.load_state_dict(state, strict=False)
        gen_missing = [k for k in missing if k.startswith(GENERATOR_PREFIX)]
        if gen_missing or unexpected:
            raise ValueError(f"cannot initialise from {path}: generator keys missing {gen_missing[:5]}, "
                             f"unexpected keys {list(unexpected)[:5]} (different architecture?)")

    def _load(self, path: str) -> None:
        ckpt = read_checkpoint(path, map_location=self.device)
        if ckpt["recipe"] != self.cfg.recipe:
            raise ValueError(f"cannot resume {path}: it was trained with recipe {ckpt['recipe']!r}, "
                             f"config says {self.cfg.recipe!r}")
        self.recipe.step_module.load_state_dict(ckpt["model"], strict=True)
        if ckpt.get("optimizer") is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step, self.epoch, self.best_val = ckpt["step"], ckpt["epoch"], ckpt.get("best_val")
        # log.csv's elapsed_s continues the stopped run's clock (checkpoints before it had none)
        self._resumed_seconds = float(ckpt.get("train_seconds", 0.0))

    # ------------------------------------------------------------------ logging / saving
    def _columns(self):
        return ["step", "epoch", "phase", "total", *self.recipe.loss_names, "lr_visual", "lr_audio", "elapsed_s"]

    def _log(self, phase: str, losses: Dict[str, float]) -> None:
        if not self.info.is_main or self.cfg.train.log == "none":
            return
        path = os.path.join(self.out_dir, "log.csv")
        new = not os.path.exists(path)
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(self.optimizer.param_groups)}
        row = {"step": self.step, "epoch": self.epoch, "phase": phase,
               "lr_visual": lrs.get("visual"), "lr_audio": lrs.get("audio"),
               "elapsed_s": round(time.time() - self._t0, 3)}
        row.update({k: float(v) for k, v in losses.items() if k in self._columns()})
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self._columns())
            if new:
                w.writeheader()
            w.writerow(row)
        self._log_tensorboard(phase, row)

    def _log_tensorboard(self, phase: str, row: Dict[str, float]) -> None:
        """The logged values as TensorBoard scalars (``<phase>/<loss>``, ``lr/<group>``) in out_dir."""
        if not hasattr(self, "_tb"):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard comes with the [train] extra; log.csv has everything
                warnings.warn("streambin: tensorboard is not installed: training curves only in log.csv "
                              "(pip install tensorboard)", RuntimeWarning, stacklevel=3)
                self._tb = None
            else:
                self._tb = SummaryWriter(self.out_dir)
        if self._tb is None:
            return
        for name in ("total", *self.recipe.loss_names):
            if row.get(name) is not None:
                self._tb.add_scalar(f"{phase}/{name}", row[name], self.step)
        if phase == "train":
            for group in ("visual", "audio"):
                if row.get(f"lr_{group}") is not None:
                    self._tb.add_scalar(f"lr/{group}", row[f"lr_{group}"], self.step)
        self._tb.flush()

    def save(self, name: str) -> str:
        """Write ``<out_dir>/<name>`` (rank 0 only); returns the path."""
        path = os.path.join(self.out_dir, name)
        if self.info.is_main:
            save_checkpoint(path, config=self.cfg, model=self.recipe.step_module, optimizer=self.optimizer,
                            scheduler=self.scheduler, epoch=self.epoch, step=self.step, best_val=self.best_val,
                            train_seconds=time.time() - self._t0)
        return path

    # ------------------------------------------------------------------ loops
    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Mean validation losses over the val split (all processes together)."""
        module = self.recipe.step_module
        module.eval()
        names = ["total", *self.recipe.loss_names]
        sums = torch.zeros(len(names) + 1, dtype=torch.float64, device=self.device)
        for batch in self.val_loader:
            losses = self.recipe.training_step(batch)
            n = batch["audio"].shape[0]
            sums[:-1] += torch.stack([losses[k].detach().double() for k in names]) * n
            sums[-1] += n
        if self.info.distributed:
            dist.all_reduce(sums)
        module.train()
        if sums[-1] == 0:
            raise ValueError("validation set is empty")
        return {k: float(sums[i] / sums[-1]) for i, k in enumerate(names)}

    def _validate_and_keep_best(self) -> Dict[str, float]:
        val = self.validate()
        self._log("val", val)
        if self.best_val is None or val["total"] < self.best_val:
            self.best_val = val["total"]
            self.save("best.pt")
        return val

    def fit(self) -> Dict[str, object]:
        """Train to ``max_steps``; returns ``{"step", "epoch", "train_loss", "val", "best_val"}``."""
        from tqdm import tqdm

        t = self.cfg.train
        self._t0 = time.time() - self._resumed_seconds
        if self.info.is_main:
            os.makedirs(self.out_dir, exist_ok=True)
            save_config(self.cfg, os.path.join(self.out_dir, "config.yaml"))
        self.recipe.step_module.train()
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not (self.progress and self.info.is_main),
                   desc=self.cfg.recipe, dynamic_ncols=True)
        last, val, last_val_step = None, None, -1
        while self.step < self.max_steps and self.epoch < t.epochs:
            self.train_loader.sampler.set_epoch(self.epoch)
            if hasattr(self.train_loader.dataset, "set_epoch"):
                self.train_loader.dataset.set_epoch(self.epoch)
            finished_epoch = True
            for batch in self.train_loader:
                losses = self.recipe.training_step(batch)
                total = losses["total"]
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                self.optimizer.step()
                self.step += 1
                last = {k: float(v.detach()) for k, v in losses.items()}
                if not math.isfinite(last["total"]):
                    raise FloatingPointError(f"training loss is {last['total']} at step {self.step}")
                bar.update(1)
                if self.step % t.log_every_steps == 0:
                    bar.set_postfix(loss=f"{last['total']:.4g}")
                    self._log("train", last)
                if self.val_loader is not None and self.step % t.val_every_steps == 0:
                    val, last_val_step = self._validate_and_keep_best(), self.step
                if self.step % t.checkpoint_every_steps == 0:
                    self.save("last.pt")
                if self.step >= self.max_steps:
                    finished_epoch = False
                    break
            if finished_epoch:
                self.epoch += 1
                self.scheduler.step()
        bar.close()
        if self.val_loader is not None and last_val_step != self.step:
            val = self._validate_and_keep_best()
        self.save("last.pt")
        if getattr(self, "_tb", None) is not None:  # a later fit() opens a new event file
            self._tb.close()
            del self._tb
        if self.info.distributed:
            dist.barrier()
        return {"step": self.step, "epoch": self.epoch, "train_loss": last, "val": val, "best_val": self.best_val}
