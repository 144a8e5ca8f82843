"""MobileNet blocks (MBv2 / MBv3 with SE), elastic and static, sharing one forward.

Official details kept (official `models/cnn.py`): 1x1 expansion from the *input* width (absent when the block's only
ratio is 1), depthwise conv whose smaller kernel is the centre of the largest one, SE on the expanded channels with
reduction 4 (no make_divisible, biased 1x1 convs, ReLU / Hardsigmoid), projection BN initialised to 0 for stride-1
blocks, and a residual on every block: identity, or avg-pool (padding 1 on odd sides) and a bias-free 1x1 conv when
widths differ.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norms import ElasticBatchNorm, copy_bn

SEWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a conv built with one (the SE convs), which torch types as optional."""
    assert conv.bias is not None
    return conv.bias


def mobile_block_forward(x: torch.Tensor, *, stride: int, pw_w: torch.Tensor | None, pw_bn: Callable | None,
                         dw_w: torch.Tensor, dw_bn: Callable, se: SEWeights | None, pwl_w: torch.Tensor,
                         pwl_bn: Callable, shortcut_w: torch.Tensor | None) -> torch.Tensor:
    """One MobileBlock on (B, C, H, W) given its (already sliced) weights and norm callables."""
    out = x
    if pw_w is not None:
        assert pw_bn is not None  # the expansion conv always comes with its norm
        out = F.hardswish(pw_bn(F.conv2d(out, pw_w)))
    k = dw_w.shape[-1]
    out = F.hardswish(dw_bn(F.conv2d(out, dw_w, None, stride, k // 2, 1, dw_w.shape[0])))
    if se is not None:
        w1, b1, w2, b2 = se
        s = F.relu(F.conv2d(out.mean((2, 3), keepdim=True), w1, b1))
        out = out * F.hardsigmoid(F.conv2d(s, w2, b2))
    out = pwl_bn(F.conv2d(out, pwl_w))
    if shortcut_w is None and stride == 1:
        return out + x
    res = x
    if stride > 1:
        res = F.avg_pool2d(res, stride, padding=x.size(-1) % 2)
    if shortcut_w is not None:
        res = F.conv2d(res, shortcut_w)
    return out + res


class StaticMobileBlock(nn.Module):
    """A fixed MobileBlock: plain Conv2d and BatchNorm2d modules, no slicing at run time."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int, se: bool, has_pw: bool):
        super().__init__()
        inner = cin * expansion
        self.stride = stride
        self.pw_conv = nn.Conv2d(cin, inner, 1, bias=False) if has_pw else None
        self.pw_bn = nn.BatchNorm2d(inner) if has_pw else None
        self.dw_conv = nn.Conv2d(inner, inner, kernel, stride, kernel // 2, groups=inner, bias=False)
        self.dw_bn = nn.BatchNorm2d(inner)
        self.se_conv1 = nn.Conv2d(inner, inner // 4, 1) if se else None
        self.se_conv2 = nn.Conv2d(inner // 4, inner, 1) if se else None
        self.pwl_conv = nn.Conv2d(inner, cout, 1, bias=False)
        self.pwl_bn = nn.BatchNorm2d(cout)
        self.shortcut_conv = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        se = None
        if self.se_conv1 is not None and self.se_conv2 is not None:
            se = (self.se_conv1.weight, conv_bias(self.se_conv1), self.se_conv2.weight, conv_bias(self.se_conv2))
        return mobile_block_forward(
            x, stride=self.stride, pw_w=self.pw_conv.weight if self.pw_conv is not None else None,
            pw_bn=self.pw_bn, dw_w=self.dw_conv.weight, dw_bn=self.dw_bn, se=se, pwl_w=self.pwl_conv.weight,
            pwl_bn=self.pwl_bn, shortcut_w=self.shortcut_conv.weight if self.shortcut_conv is not None else None)


class MobileBlock(nn.Module):
    """Elastic MobileBlock holding super-size weights; `set_active` picks widths, kernel and expansion.

    Parameter names and shapes follow the official `MobileBlock` so its checkpoint keys map one to one.
    """

    def __init__(self, max_channels: int, max_in_channels: int, ratios: tuple[int, ...], kernels: tuple[int, ...],
                 stride: int, se: bool):
        super().__init__()
        self.stride = stride
        self.has_pw = max(ratios) > 1
        self.se = se
        self.max_kernel = max(kernels)
        cin_max = max(max_channels, max_in_channels)
        inner = cin_max * max(ratios)
        if self.has_pw:
            self.pw_conv = nn.Conv2d(cin_max, inner, 1, bias=False)
            self.pw_bn = ElasticBatchNorm(inner)
        self.dw_conv = nn.Conv2d(inner, inner, self.max_kernel, stride, self.max_kernel // 2, groups=inner, bias=False)
        self.dw_bn = ElasticBatchNorm(inner)
        if se:
            self.se_conv1 = nn.Conv2d(inner, inner // 4, 1)
            self.se_conv2 = nn.Conv2d(inner // 4, inner, 1)
        self.pwl_conv = nn.Conv2d(inner, max_channels, 1, bias=False)
        self.pwl_bn = ElasticBatchNorm(max_channels, init=0.0 if stride == 1 else 1.0)
        self.shortcut_conv = nn.Conv2d(cin_max, max_channels, 1, bias=False)
        self.active: tuple[int, int, int, int] | None = None

    def set_active(self, cin: int, cout: int, kernel: int, expansion: int) -> None:
        self.active = (cin, cout, kernel, expansion)

    def _weights(self) -> dict:
        cin, cout, kernel, expansion = self.active  # type: ignore[misc]
        inner = cin * expansion
        off = (self.max_kernel - kernel) // 2
        se = None
        if self.se:
            r = inner // 4
            se = (self.se_conv1.weight[:r, :inner], conv_bias(self.se_conv1)[:r],
                  self.se_conv2.weight[:inner, :r], conv_bias(self.se_conv2)[:inner])
        return dict(stride=self.stride, pw_w=self.pw_conv.weight[:inner, :cin] if self.has_pw else None,
                    dw_w=self.dw_conv.weight[:inner, :, off:off + kernel, off:off + kernel], se=se,
                    pwl_w=self.pwl_conv.weight[:cout, :inner],
                    shortcut_w=self.shortcut_conv.weight[:cout, :cin] if cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mobile_block_forward(x, pw_bn=self.pw_bn if self.has_pw else None, dw_bn=self.dw_bn,
                                    pwl_bn=self.pwl_bn, **self._weights())

    @torch.no_grad()
    def extract(self) -> StaticMobileBlock:
        cin, cout, kernel, expansion = self.active  # type: ignore[misc]
        inner = cin * expansion
        block = StaticMobileBlock(cin, cout, kernel, expansion, self.stride, self.se, self.has_pw)
        w = self._weights()
        if block.pw_conv is not None:  # built exactly when self.has_pw
            block.pw_conv.weight.copy_(w["pw_w"])
            block.pw_bn = copy_bn(self.pw_bn, inner)
        block.dw_conv.weight.copy_(w["dw_w"])
        block.dw_bn = copy_bn(self.dw_bn, inner)
        if block.se_conv1 is not None and block.se_conv2 is not None:  # built exactly when self.se
            se = (block.se_conv1.weight, conv_bias(block.se_conv1), block.se_conv2.weight, conv_bias(block.se_conv2))
            for dst, src in zip(se, w["se"], strict=True):
                dst.copy_(src)
        block.pwl_conv.weight.copy_(w["pwl_w"])
        block.pwl_bn = copy_bn(self.pwl_bn, cout)
        if block.shortcut_conv is not None:  # built exactly when cin != cout
            block.shortcut_conv.weight.copy_(w["shortcut_w"])
        return block
