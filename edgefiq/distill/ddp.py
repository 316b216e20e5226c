"""Distributed data parallel helpers for ``torchrun`` (gloo on CPU, NCCL on CUDA).

Under ``torchrun --nproc_per_node K`` every process runs the same ``distill`` call; each takes
every K-th item of the global batch, gradients are averaged by ``DistributedDataParallel``,
and only rank 0 writes files. Without ``torchrun`` everything is a no-op (world size 1).

Example:
    $ torchrun --nproc_per_node 2 -m edgefiq distill --recipe r.yaml -o runs/ddp
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str) -> DistEnv:
    """Initialise the process group if launched by ``torchrun`` (env ``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistEnv(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def teardown(env: DistEnv) -> None:
    """Destroy the process group (if this run created one)."""
    if env.enabled:
        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op without DDP)."""
    if env.enabled:
        dist.barrier()


def wrap(model: Any, env: DistEnv, device: Any) -> Any:
    """``DistributedDataParallel(model)`` under DDP, else ``model``."""
    if not env.enabled:
        return model

    ids = [device.index] if getattr(device, "type", "cpu") == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: Any) -> Any:
    """The plain module inside a DDP wrapper."""
    return getattr(model, "module", model)


def all_mean(value: float, env: DistEnv) -> float:
    """Mean of a float over ranks (for logging the training loss)."""
    if not env.enabled:
        return value

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / env.world
