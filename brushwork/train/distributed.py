"""Distributed-training helpers for torchrun (DDP): one process per GPU (or per CPU slot with gloo).

``torchrun --nproc_per_node N -m brushwork train decoder …`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`setup` reads them, joins the process group (NCCL on CUDA, gloo on CPU) and picks this
process's device. Without torchrun it returns a single-process :class:`Dist` and does nothing. Multi-node runs
are the same command on each node with ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: global rank, world size, local rank and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and pictures."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``"auto"``/None → ``cuda:<local_rank>`` when CUDA is available, else the CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device(f"cuda:{local_rank}")
    return device


def setup(device: str | torch.device | None = "auto") -> Dist:
    """Join the torchrun job if this process is part of one (``WORLD_SIZE`` > 1); return this process's Dist."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def wrap(model: nn.Module, d: Dist) -> nn.Module:
    """``model`` in DistributedDataParallel when the job has several processes, else unchanged."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return getattr(model, "module", model)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def mean(value: Tensor, d: Dist) -> Tensor:
    """The mean of a tensor over all processes (for logging)."""
    if not d.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / d.world_size


def cleanup(d: Dist) -> None:
    """Leave the process group (at the end of a run, or on error)."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
