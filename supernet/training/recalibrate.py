"""BN recalibration of a subnet before it is evaluated (official `process.py`, `bn_cal`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..arch import Arch
from ..model import ElasticViTSupernet

RECALIBRATION_BATCHES = 129  # official `bn_cal`: loop bound 64 x floor(256 / 96) = 128, `batch_idx > 128` breaks at 129


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], num_batches: int | None = None) -> nn.Module:
    """Recompute every BatchNorm's running statistics as the cumulative average over `batches`.

    As the official `bn_cal`: the model in eval mode, every BN reset, in train mode with momentum None (cumulative
    average), then forward passes without gradients on the (at most `num_batches`) batches — training augmentation and
    mixup are the caller's. Afterwards the BNs get their momentum back and the whole model is in eval mode, ready to
    evaluate. Works in place (no copy) on the supernet with its active subnet or on an extracted `StaticSubnet`.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for x in itertools.islice(batches, num_batches):
        model(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


def recalibrate_subnet(supernet: ElasticViTSupernet, arch: Arch, batches: Iterable[torch.Tensor],
                       num_batches: int | None = None) -> ElasticViTSupernet:
    """Activate `arch` on the supernet and recalibrate its BN statistics (`recalibrate_bn`); once per evaluated arch.

    The statistics are the supernet's (shared) buffers: those of the previous subnet are overwritten, and the channels
    beyond `arch`'s widths keep their reset values (mean 0, var 1). Recalibrate the EMA copy to evaluate EMA weights.
    """
    supernet.set_active(arch)
    recalibrate_bn(supernet, batches, num_batches)
    return supernet
