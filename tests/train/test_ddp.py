"""DistributedDataParallel through the real Trainer: 2 CPU processes (Gloo) vs one process.

What must hold after one optimizer step: the weights of the 2-process run equal those of a
single-process run on the same global batch of 4 items.

BatchNorm: PyTorch's SyncBatchNorm refuses CPU tensors, so on CPU each DDP process normalises
its own 2 items (the trainer converts to SyncBatchNorm on CUDA only). The single-process
reference therefore reproduces exactly that: it runs the step module on each process's half
of the global batch (the halves DistributedSampler hands to rank 0 and rank 1), averages the two
losses (DDP averages the two gradients) and takes one Adam step. Everything else - identical
initialisation, sharding of the global batch, gradient all-reduce, the optimizer groups - is the
trainer's own code path, so a bug in any of them breaks the equality.
"""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler, default_collate

from streambin.train.checkpoint import read_checkpoint
from tests.train.synthetic import PictureSideDataset, tiny_config

GLOBAL_BATCH = 4
WORLD = 2


def make_cfg(recipe):
    cfg = tiny_config(recipe, max_steps=1, batch_size=GLOBAL_BATCH, lr_visual=1e-3, log="none", seed=3)
    cfg.model.ngf = 4
    return cfg


def _worker(rank, port, out_dir, recipe):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import torch.distributed as dist
    from streambin.train.trainer import Trainer

    tr = Trainer(make_cfg(recipe), PictureSideDataset(12, seed=5), None, out_dir=out_dir, progress=False)
    assert dist.get_backend() == "gloo" and tr.local_batch == GLOBAL_BATCH // WORLD
    tr.fit()
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("recipe", ["mono2binaural", "apnet"])
def test_ddp_step_equals_single_process(recipe, tmp_path, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), recipe), nprocs=WORLD, join=True)
    ddp_state = read_checkpoint(str(tmp_path / "last.pt"))["model"]

    # Single-process reference (see module docstring).
    from streambin.train.recipes import get_recipe

    torch.set_num_threads(1)
    cfg = make_cfg(recipe)
    torch.manual_seed(cfg.train.seed)  # what Trainer does before building
    r = get_recipe(recipe)(cfg)
    r.build()
    init = {k: v.clone() for k, v in r.step_module.state_dict().items()}
    opt = torch.optim.Adam(r.parameter_groups(), betas=cfg.train.betas, weight_decay=cfg.train.weight_decay)
    data = PictureSideDataset(12, seed=5)
    halves = []
    for rank in range(WORLD):
        sampler = DistributedSampler(data, num_replicas=WORLD, rank=rank, shuffle=True,
                                     seed=cfg.train.seed, drop_last=True)
        sampler.set_epoch(0)
        idx = list(sampler)[: GLOBAL_BATCH // WORLD]
        halves.append(default_collate([data[i] for i in idx]))
    loss = sum(r.training_step(h)["total"] for h in halves) / WORLD
    opt.zero_grad()
    loss.backward()
    opt.step()

    params = dict(r.step_module.named_parameters())
    changed = 0
    for name, p in params.items():
        assert torch.allclose(ddp_state[name], p.detach(), atol=1e-6, rtol=0), name
        changed += int(not torch.equal(init[name], p.detach()))
    assert changed == len(params)  # the step moved every weight: the equality is not vacuous

    # Control: one process on the whole batch of 4 (BN over 4 items) gives different weights,
    # so the test can tell per-process BN statistics apart from global ones.
    torch.manual_seed(cfg.train.seed)
    r2 = get_recipe(recipe)(cfg)
    r2.build()
    opt2 = torch.optim.Adam(r2.parameter_groups(), betas=cfg.train.betas, weight_decay=cfg.train.weight_decay)
    both = {k: torch.cat([h[k] for h in halves]) for k in ("audio", "frame")}
    opt2.zero_grad()
    r2.training_step(both)["total"].backward()
    opt2.step()
    diff = max((p.detach() - params[n].detach()).abs().max().item()
               for n, p in r2.step_module.named_parameters())
    assert diff > 1e-5
