"""Optimisation of supernet training (official `train_eval_supernet.py`, `process.py`, `configs/final_3min_space.yaml`):
AdamW with ElasticViT's weight-decay groups, AGC, linearly scaled learning rates and timm's warm-up + cosine
schedule."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from ..layers.mobile_block import MobileBlock

LR, WARMUP_LR, MIN_LR = 5e-4, 1e-6, 5e-6  # official `train_eval_supernet.py`, before linear scaling
REFERENCE_BATCH = 512  # official `train_eval_supernet.py`: lr x world_size x batch / 512
BATCH_PER_GPU = 96  # official `configs/final_3min_space.yaml`
WEIGHT_DECAY = 0.05  # official `configs/final_3min_space.yaml`
EPOCHS, WARMUP_EPOCHS, COOLDOWN_EPOCHS = 600, 5, 10  # official yaml; timm's scheduler adds the cool-down epochs
AGC_CLIP_FACTOR, AGC_EPS = 0.1, 1e-3  # official `process.py`: timm adaptive_clip_grad(params, 0.1)


def scale_lr(lr: float, world_size: int, batch_size: int = BATCH_PER_GPU) -> float:
    """Linear LR scaling, lr x world_size x batch_size / 512 (official `train_eval_supernet.py`; applied to LR, warm-up
    LR and min LR)."""
    return lr * world_size * batch_size / REFERENCE_BATCH


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters of `first_conv*` modules and of every MobileBlock (CNN stages, stem, transformer
    downsamplers): the official override of `no_weight_decay` (`train_eval_supernet.py`)."""
    return {f"{module_name}.{name}" for module_name, module in model.named_modules()
            if "first_conv" in module_name or isinstance(module, MobileBlock)
            for name, _ in module.named_parameters()}


def param_groups(model: nn.Module, weight_decay: float = WEIGHT_DECAY) -> list[dict]:
    """Two AdamW groups of (name, parameter) pairs, no-decay first (timm `param_groups_weight_decay`).

    No decay for `no_weight_decay_names`, 1-D parameters and biases (norms included); everything else, the 2-D
    `attention_bias` tables included, decays. Frozen parameters are left out.
    """
    skip = no_weight_decay_names(model)
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") or name in skip else decay).append((name, p))
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = WEIGHT_DECAY) -> torch.optim.AdamW:
    """AdamW over `param_groups` (timm `create_optimizer` with opt adamw; `lr` already scaled by `scale_lr`)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)


def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm per unit: the whole tensor if it has at most one dim, else per slice along dim 0 (rows of a Linear
    weight, output channels of a conv), shaped to broadcast against `x`."""
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(parameters: Iterable[torch.Tensor], clip_factor: float = AGC_CLIP_FACTOR,
                        eps: float = AGC_EPS) -> None:
    """Adaptive gradient clipping in place (timm `adaptive_clip_grad`, as the official `process.py` calls it).

    Per unit, a gradient g of weight w with ||g|| >= clip_factor * max(||w||, eps) is rescaled to that norm
    (dividing by max(||g||, 1e-6)); smaller gradients are left untouched. Parameters without gradient are skipped.
    """
    for p in parameters:
        if p.grad is None:
            continue
        max_norm = unitwise_norm(p).clamp(min=eps) * clip_factor
        grad_norm = unitwise_norm(p.grad)
        clipped = p.grad * (max_norm / grad_norm.clamp(min=1e-6))
        p.grad.copy_(torch.where(grad_norm < max_norm, p.grad, clipped))


def warmup_cosine_lr(step: int, lr: float, warmup_lr: float = WARMUP_LR, min_lr: float = MIN_LR,
                     warmup_steps: int = WARMUP_EPOCHS, total_steps: int = EPOCHS) -> float:
    """timm CosineLRScheduler (cycle_limit 1, warmup_prefix False) at `step` (official `train_eval_supernet.py`).

    step < warmup_steps: warmup_lr + step (lr - warmup_lr) / warmup_steps; then, on the *unshifted* step,
    min_lr + (lr - min_lr) (1 + cos(pi step / total_steps)) / 2; from total_steps on (the cool-down), min_lr.
    """
    if step < warmup_steps:
        return warmup_lr + step * (lr - warmup_lr) / warmup_steps
    if step >= total_steps:
        return min_lr
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * step / total_steps))


def _lr_factor(step: int, lr: float, warmup_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    return warmup_cosine_lr(step, lr, warmup_lr, min_lr, warmup_steps, total_steps) / lr


def build_scheduler(optimizer: torch.optim.Optimizer, lr: float, warmup_lr: float, min_lr: float,
                    warmup_steps: int = WARMUP_EPOCHS, total_steps: int = EPOCHS) -> LambdaLR:
    """LambdaLR giving the optimizer (built with peak `lr`) the `warmup_cosine_lr` schedule; `step()` once per epoch.

    All three rates are already scaled (`scale_lr`). Construction sets step 0, i.e. warmup_lr; the scheduler's
    state dict holds the step for resuming.
    """
    factor = functools.partial(_lr_factor, lr=lr, warmup_lr=warmup_lr, min_lr=min_lr, warmup_steps=warmup_steps,
                               total_steps=total_steps)
    return LambdaLR(optimizer, factor)
