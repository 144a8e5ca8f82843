"""EMA of the supernet's weights (official `train_eval_supernet.py`: timm ModelEma, decay 0.99985, updated every step;
evaluation uses it, official `util/checkpoint.py`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

EMA_DECAY = 0.99985  # official `train_eval_supernet.py`

TensorList = tuple[torch.Tensor, ...] | list[torch.Tensor]  # what AveragedModel passes (torch's `PARAM_LIST`)
MultiAvgFn = Callable[[TensorList, TensorList, torch.Tensor | int], None]


def ema_or_copy(decay: float) -> MultiAvgFn:
    """torch's EMA update for floating-point tensors; integer buffers (BN batch counts, relative-position indices)
    are copied, since averaging then truncating them would corrupt them."""
    ema = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(averaged: TensorList, current: TensorList, n_averaged: torch.Tensor | int) -> None:
        if averaged[0].is_floating_point():
            ema(averaged, current, n_averaged)
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


def create_ema(model: nn.Module, decay: float = EMA_DECAY) -> AveragedModel:
    """EMA of `model`'s parameters and buffers, starting at its current weights (as timm ModelEma).

    Call `ema.update_parameters(model)` after every optimizer step (pass the unwrapped module under DDP); evaluate
    `ema.module`. `state_dict()` / `load_state_dict()` (weights and update count) resume it exactly; the decay is
    configuration, not state.
    """
    ema = AveragedModel(model, multi_avg_fn=ema_or_copy(decay), use_buffers=True)
    ema.update_parameters(model)  # the first update copies, so every later one is an EMA step
    return ema
