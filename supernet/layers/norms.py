"""Norm layers of the ElasticViT supernet."""

from __future__ import annotations

from typing import Literal, overload

import torch
import torch.nn as nn
import torch.nn.functional as F


class ElasticBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the first C channels of its super-size statistics and affine parameters (official BNSuper).

    Works on (B, C) and (B, C, H, W). With ``momentum=None`` the running statistics are a cumulative average, as BN
    recalibration of subnets needs.
    """

    # Always tracked (built with track_running_stats=True), so these buffers, optional in torch's BatchNorm, exist.
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, num_features: int, init: float = 1.0):
        super().__init__(num_features)
        nn.init.constant_(self.weight, init)

    def _check_input_dim(self, x: torch.Tensor) -> None:  # accepts 2-D and 4-D inputs
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training or not self.track_running_stats, factor, self.eps)


class JointLayerNorm(nn.Module):
    """The official "LayerNorm" (LNSuper): statistics over all tokens x channels of a sample, per-channel affine.

    Holds `max_channels` affine parameters and uses the first C of them for a C-wide input, so the same class
    serves the supernet and (with max_channels = C) the extracted subnet.
    """

    def __init__(self, max_channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(max_channels))
        self.bias = nn.Parameter(torch.zeros(max_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        w, b = (self.weight, self.bias) if c == self.weight.numel() else (self.weight[:c], self.bias[:c])
        shape = x.shape[1:]
        return F.layer_norm(x, shape, w.expand(shape), b.expand(shape), self.eps)


@overload
def copy_bn(src: ElasticBatchNorm, channels: int, tokens: Literal[False] = False) -> nn.BatchNorm2d: ...


@overload
def copy_bn(src: ElasticBatchNorm, channels: int, tokens: Literal[True]) -> nn.BatchNorm1d: ...


def copy_bn(src: ElasticBatchNorm, channels: int, tokens: bool = False) -> nn.BatchNorm1d | nn.BatchNorm2d:
    """A plain BatchNorm (1-D for tokens, else 2-D) holding the first `channels` statistics and affine parameters of
    `src`."""
    bn = (nn.BatchNorm1d if tokens else nn.BatchNorm2d)(channels, eps=src.eps, momentum=src.momentum)
    mean, var, count = bn.running_mean, bn.running_var, bn.num_batches_tracked
    assert mean is not None and var is not None and count is not None  # a new BatchNorm tracks its statistics
    with torch.no_grad():
        bn.weight.copy_(src.weight[:channels])
        bn.bias.copy_(src.bias[:channels])
        mean.copy_(src.running_mean[:channels])
        var.copy_(src.running_var[:channels])
        count.copy_(src.num_batches_tracked)
    return bn
