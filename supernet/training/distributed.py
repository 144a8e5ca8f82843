"""Data-parallel training across processes started by `torchrun` (official `process.py` re-seeds per step so every
rank samples alike).

Every rank draws the same subnets (the samplers are seeded by the step), trains them on its shard of the batch, and
the ranks then average, in one all-reduce per step, the accumulated gradients of all the step's subnets, the BN
running statistics and the step's scalars (losses, and the clean-batch CE the memory banks rank by). This is what
DistributedDataParallel would compute, done by hand because a step runs several different subnets before one
optimizer step: DDP would reduce after every subnet's backward (or, under `no_sync`, needs `find_unused_parameters`
to walk the graph each time and still sees only the last subnet's unused parameters), whereas one reduction of the
summed gradients is exact, 4x cheaper, and leaves the parameters no subnet of the step touched without a gradient on
every rank alike (AdamW skips them, as in one process). Buffers are averaged so every rank holds identical weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from ..errors import OperationFailed
from .train_config import ConfigError


class DistributedError(OperationFailed):
    """This process could not join the others of a `torchrun` job."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, world size and device (one process per GPU, or CPU processes)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: str = "auto") -> DistContext:
        """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK and join the process group (nccl on CUDA, gloo on CPU);
        a plain process (no WORLD_SIZE, or 1) runs alone. `ConfigError` for ``device = cuda`` without CUDA,
        `DistributedError` when the group cannot be joined."""
        use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
        if use_cuda and not torch.cuda.is_available():
            raise ConfigError("device = cuda but no CUDA device is available")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if world > 1:
            if use_cuda:
                torch.cuda.set_device(dev)
            if not dist.is_initialized():
                try:
                    dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
                except RuntimeError as e:  # torch's rendezvous and backend failures
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise DistributedError(f"rank {rank} of {world} cannot join the process group "
                                           f"({first[:200]})") from None
        return cls(rank, world, dev)

    def broadcast_module_(self, module: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (as DDP does at construction)."""
        if self.distributed:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def average_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each floating tensor by its mean over the ranks, in one all-reduce (tensors share one dtype)."""
        if not self.distributed or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def shutdown(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
