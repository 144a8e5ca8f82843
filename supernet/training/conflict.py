"""Gradient conflict between subnets of the same FLOPs (the paper's Table 4).

For each subnet, on one fixed training batch (BN in training mode, as during training): the loss is the plain label
cross-entropy (no label smoothing, no teacher: the CE the memory banks rank by), and its gradient is taken with
respect to the supernet's parameters as full-size tensors, flattened into one vector g_i (zero outside the slices the
subnet uses). The entries subnet i *touches*, T_i, are the parameter entries its forward pass reads, recorded exactly
while it runs (`_TouchTracker`: slices, kernel crops, gathered attention-bias rows), whatever their gradient.

The similarity of subnets i and j is the cosine over the entries both touch, S = T_i & T_j:
``cos(i, j) = <g_i, g_j>_S / (|g_i|_S| * |g_j|_S|)`` (0 when either restriction is all zero). Since g_i is zero
outside T_i, ``<g_i, g_j>_S`` is the full dot product and ``|g_i|_S|^2 = sum over T_j of g_i^2``. A subnet's cosine
with itself is 1. "random" is the mean over all pairs of the n subnets, "top-k" the mean over the pairs of the k with
the lowest loss. Memory: (number of supernet parameters) x (5 n + 8) bytes (float32 gradients and bool masks per
subnet, int64 index maps).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..arch import Arch
from ..flops import arch_mflops
from ..model import ElasticViTSupernet
from ..sampling import archs as decode
from ..sampling import sample_in_window
from .config import sampler_config
from .data import Batch, DataError, ImageData, iterate_batches
from .evaluate import LoadedSupernet
from .optim import BATCH_PER_GPU

_CHUNK = 1 << 18  # parameter entries per step of the pairwise products

# Calls that only select or rearrange entries: the touched entries are those of their result's later uses.
_SELECTIONS = frozenset({
    torch.Tensor.__getitem__, torch.Tensor.view, torch.Tensor.reshape, torch.reshape, torch.Tensor.permute,
    torch.permute, torch.Tensor.t, torch.t, torch.Tensor.transpose, torch.transpose, torch.Tensor.flatten,
    torch.flatten, torch.Tensor.narrow, torch.narrow, torch.Tensor.squeeze, torch.squeeze, torch.Tensor.unsqueeze,
    torch.unsqueeze, torch.Tensor.expand, torch.Tensor.contiguous})


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple)):
        return [x for item in obj for x in _leaves(item)]
    if isinstance(obj, dict):
        return [x for item in obj.values() for x in _leaves(item)]
    return [obj]


def _swap(obj: Any, table: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """`obj` with every tracked tensor replaced by its index map."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(_swap(item, table) for item in obj)
    if isinstance(obj, dict):
        return {k: _swap(v, table) for k, v in obj.items()}
    entry = table.get(id(obj))
    return entry[1] if entry is not None and entry[0] is obj else obj


class _TouchTracker(TorchFunctionMode):
    """Marks in `touched` (one flag per flattened parameter entry) every entry a forward pass reads.

    Each parameter and each tensor selected from one (`_SELECTIONS`) carries an index map: a tensor of its shape
    holding the flat positions of its entries. A selection applies the same call to the map; any other call that
    returns a tensor reads its tracked arguments, whose mapped positions are marked.
    """

    def __init__(self, params: Mapping[int, tuple[torch.Tensor, torch.Tensor]], size: int, device: torch.device):
        super().__init__()
        self.table = dict(params)
        self.touched = torch.zeros(size, dtype=torch.bool, device=device)

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tracked = [a for a in _leaves((args, kwargs))
                   if isinstance(a, torch.Tensor) and id(a) in self.table and self.table[id(a)][0] is a]
        if not tracked or not any(isinstance(x, torch.Tensor) for x in _leaves(out)):
            return out
        if func in _SELECTIONS and isinstance(out, torch.Tensor):
            self.table[id(out)] = (out, func(*_swap(args, self.table), **_swap(kwargs, self.table)))
        else:
            for a in tracked:
                self.touched[self.table[id(a)][1].reshape(-1)] = True
        return out


@dataclass(frozen=True)
class SubnetGradient:
    """One subnet's loss on the batch, its flattened gradient and the parameter entries it touched."""

    arch: Arch
    loss: float
    grad: torch.Tensor
    touched: torch.Tensor


def subnet_gradients(supernet: ElasticViTSupernet, archs: Sequence[Arch], batch: Batch,
                     progress: Callable[[int], None] | None = None) -> list[SubnetGradient]:
    """Per arch, the label cross-entropy on `batch` (BN in training mode) and its gradient w.r.t. every supernet
    parameter, flattened in `named_parameters` order. Leaves the supernet in training mode, `.grad`s cleared and its BN
    running statistics moved by the batch (recalibrate before evaluating it)."""
    params = list(supernet.parameters())
    device = params[0].device
    offsets = np.cumsum([0] + [p.numel() for p in params]).tolist()
    maps = {id(p): (p, torch.arange(offsets[i], offsets[i + 1], device=device).view(p.shape))
            for i, p in enumerate(params)}
    x, y = batch[0].to(device), batch[1].to(device)
    supernet.train()
    out = []
    for i, arch in enumerate(archs):
        supernet.set_active(arch)
        supernet.zero_grad(set_to_none=True)
        with _TouchTracker(maps, offsets[-1], device) as tracker:
            logits = supernet(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        out.append(SubnetGradient(arch, loss.item(), grad, tracker.touched))
        if progress is not None:
            progress(i)
    supernet.zero_grad(set_to_none=True)
    return out


def cosine_matrix(grads: Sequence[SubnetGradient]) -> torch.Tensor:
    """(n, n) float64 cosines over the entries both subnets touch (see the module docstring)."""
    n, size = len(grads), grads[0].grad.numel()
    dot = torch.zeros(n, n, dtype=torch.float64)
    sq = torch.zeros(n, n, dtype=torch.float64)  # sq[i, j] = sum over T_j of g_i^2
    for start in range(0, size, _CHUNK):
        g = torch.stack([r.grad[start:start + _CHUNK] for r in grads]).double()
        m = torch.stack([r.touched[start:start + _CHUNK] for r in grads]).double()
        dot += (g @ g.T).cpu()
        sq += ((g * g) @ m.T).cpu()
    norms = (sq * sq.T).sqrt()
    return torch.where(norms > 0, dot / norms.clamp_min(1e-300), torch.zeros_like(dot)).clamp(-1.0, 1.0)


def mean_pairwise(sim: torch.Tensor, indices: Sequence[int]) -> float:
    """Mean of `sim` over the unordered pairs of distinct `indices`."""
    idx = torch.as_tensor(list(indices))
    i, j = torch.triu_indices(len(idx), len(idx), offset=1)
    return float(sim[idx[i], idx[j]].mean())


@dataclass(frozen=True)
class ConflictResult:
    """Table 4's numbers for one FLOPs level: mean pairwise gradient cosine of all n subnets and of the top k."""

    level: float
    window: float
    batch_size: int
    top: int
    archs: tuple[Arch, ...]
    mflops: tuple[float, ...]
    losses: tuple[float, ...]
    top_indices: tuple[int, ...]
    similarity: torch.Tensor

    @property
    def n(self) -> int:
        return len(self.archs)

    @property
    def random(self) -> float:
        return mean_pairwise(self.similarity, range(self.n))

    @property
    def top_k(self) -> float:
        return mean_pairwise(self.similarity, self.top_indices)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "window": self.window, "n": self.n, "top": self.top,
                "batch_size": self.batch_size, "loss": "label cross-entropy (no smoothing)",
                "random": self.random, f"top_{self.top}": self.top_k, "top_indices": list(self.top_indices),
                "subnets": [{"arch": a.to_dict(), "mflops": round(f, 3), "loss": loss}
                            for a, f, loss in zip(self.archs, self.mflops, self.losses, strict=True)],
                "similarity": [[round(v, 6) for v in row] for row in self.similarity.tolist()]}


def gradient_conflict(supernet: ElasticViTSupernet, archs: Sequence[Arch], batch: Batch, top: int, level: float,
                      window: float, progress: Callable[[int], None] | None = None) -> ConflictResult:
    """Gradient cosines of `archs` on `batch`; "top" are the `top` archs with the lowest loss (ties: first drawn)."""
    if not 2 <= top <= len(archs):
        raise ValueError(f"top must be between 2 and the number of subnets ({len(archs)}), got {top}")
    grads = subnet_gradients(supernet, archs, batch, progress)
    losses = tuple(g.loss for g in grads)
    order = sorted(range(len(losses)), key=lambda i: (losses[i], i))
    return ConflictResult(level, window, len(batch[1]), top, tuple(archs),
                          tuple(arch_mflops(a, supernet.space) for a in archs), losses, tuple(order[:top]),
                          cosine_matrix(grads))


def fixed_batch(dataset: ImageData, batch_size: int, seed: int) -> Batch:
    """`batch_size` training images drawn by a seeded permutation (the one batch every subnet sees)."""
    if not 2 <= batch_size <= len(dataset):
        raise DataError(f"batch size must be between 2 and the {len(dataset)} training images, got {batch_size}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:batch_size].tolist()
    return next(iter(iterate_batches(dataset, order, batch_size)))


def draw_level(loaded: LoadedSupernet, level: float, n: int = 50, data: str | None = None,
               batch_size: int = BATCH_PER_GPU, seed: int = 0) -> tuple[list[Arch], Batch, float]:
    """Table 4's inputs for one level: `n` subnets drawn uniformly with level <= MFLOPs <= level + window (the
    run's sampler window: 20 MFLOPs on the ElasticViT space, `default_config`'s elsewhere) and one training batch of
    `data` (default: the run's), both drawn by `seed`; and the window. Raises `EmptyWindowError` for a level no
    subnet reaches. Pass them to `gradient_conflict`."""
    space = loaded.supernet.space
    window = sampler_config(space, loaded.run.get("sampler_options", {})).window
    archs = decode(sample_in_window(space, level, level + window, n, seed), space)
    return archs, fixed_batch(loaded.open_split(data, "train"), batch_size, seed), window
