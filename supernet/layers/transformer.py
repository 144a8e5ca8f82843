"""Transformer layers of ElasticViT (official `models/transformer.py`), elastic and static, sharing one forward each.

Attention, pre-norm: ``x + proj(hswish(softmax(q k^T / 4 + B_rel) dwconv3x3(v)))``. Official details kept: the fused
qkv rows Q = [0, C), K = [Cmax, Cmax + C), V = [2 Cmax, 2 Cmax + 16 v h) are concatenated and each head takes a
*contiguous* chunk of 32 + 16 v of that concatenation; a depthwise 3x3 conv replaces V; a learned relative-position
bias table per stage, sized for the largest token grid and shared across resolutions. The first layer of a stage
opens with an MBv3 + SE downsampling block (expansion 6, kernel 3). FFN, pre-norm: ``x + fc2(hswish(fc1(norm(x))))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mobile_block import MobileBlock, StaticMobileBlock
from .norms import JointLayerNorm


def relative_position_index(side: int) -> torch.Tensor:
    """(side^2, side^2) index into a ((2 side - 1)^2, heads) bias table, by the relative offset of two tokens."""
    coords = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (side - 1)
    return rel[:, :, 0] * (2 * side - 1) + rel[:, :, 1]


def _sub_grid_index(full_side: int, side: int) -> torch.Tensor:
    """Rows of a table built for `full_side` that hold the offsets of a `side` x `side` grid, in that grid's order."""
    offsets = torch.arange(-(side - 1), side)
    di, dj = torch.meshgrid(offsets, offsets, indexing="ij")
    return ((di + full_side - 1) * (2 * full_side - 1) + (dj + full_side - 1)).flatten()


def tokens_to_map(x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    side = math.isqrt(n)
    return x.transpose(1, 2).reshape(b, c, side, side)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def attention_forward(x: torch.Tensor, *, norm: nn.Module, qkv_w: torch.Tensor, dwv_w: torch.Tensor,
                      bias: torch.Tensor, proj_w: torch.Tensor, proj_b: torch.Tensor, heads: int, head_dim: int,
                      vdim: int) -> torch.Tensor:
    """Pre-norm attention with its residual; `bias` is the (heads, N, N) relative-position bias."""
    b, n, _ = x.shape
    qkv = F.linear(norm(x), qkv_w)
    q, k, v = qkv.view(b, n, heads, -1).split([head_dim, head_dim, vdim], dim=3)
    width = heads * vdim
    v = map_to_tokens(F.conv2d(tokens_to_map(v.reshape(b, n, width)), dwv_w, None, 1, 1, 1, width))
    v = v.reshape(b, n, heads, vdim).permute(0, 2, 1, 3)
    attn = (q.permute(0, 2, 1, 3) @ k.permute(0, 2, 3, 1)) * (head_dim ** -0.5) + bias
    out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, width)
    return x + F.linear(F.hardswish(out), proj_w, proj_b)


def ffn_forward(x: torch.Tensor, *, norm: nn.Module, fc1_w: torch.Tensor, fc1_b: torch.Tensor, fc2_w: torch.Tensor,
                fc2_b: torch.Tensor) -> torch.Tensor:
    return x + F.linear(F.hardswish(F.linear(norm(x), fc1_w, fc1_b)), fc2_w, fc2_b)


class StaticAttention(nn.Module):
    """A fixed attention layer (and the stage's downsampling block when it opens a stage) at one token grid."""

    bias_index: torch.Tensor  # registered buffer

    def __init__(self, width: int, heads: int, head_dim: int, vdim: int, side: int,
                 reduction: StaticMobileBlock | None):
        super().__init__()
        self.heads, self.head_dim, self.vdim = heads, head_dim, vdim
        self.reduction = reduction
        self.norm1 = JointLayerNorm(width)
        self.qkv = nn.Linear(width, 2 * heads * head_dim + heads * vdim, bias=False)
        self.dw_v_conv = nn.Conv2d(heads * vdim, heads * vdim, 3, 1, 1, groups=heads * vdim, bias=False)
        self.proj = nn.Linear(heads * vdim, width)
        self.attention_bias = nn.Parameter(torch.zeros((2 * side - 1) ** 2, heads))
        self.register_buffer("bias_index", relative_position_index(side), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduction is not None:
            x = map_to_tokens(self.reduction(tokens_to_map(x)))
        bias = self.attention_bias[self.bias_index].permute(2, 0, 1)
        return attention_forward(x, norm=self.norm1, qkv_w=self.qkv.weight, dwv_w=self.dw_v_conv.weight,
                                 bias=bias, proj_w=self.proj.weight, proj_b=self.proj.bias, heads=self.heads,
                                 head_dim=self.head_dim, vdim=self.vdim)


class StaticFFN(nn.Module):
    def __init__(self, width: int, inner: int):
        super().__init__()
        self.norm1 = JointLayerNorm(width)
        self.fc1 = nn.Linear(width, inner)
        self.fc2 = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ffn_forward(x, norm=self.norm1, fc1_w=self.fc1.weight, fc1_b=self.fc1.bias, fc2_w=self.fc2.weight,
                           fc2_b=self.fc2.bias)


class SuperAttention(nn.Module):
    """Elastic attention layer (official `SuperAttention`); layer 0 of a stage owns the downsampling block."""

    relative_position_index: torch.Tensor  # registered buffer

    def __init__(self, max_width: int, max_in_width: int, max_v_scale: int, head_dim: int, max_side: int,
                 stride: int, downsampler_expansion: int, first: bool):
        super().__init__()
        self.head_dim = head_dim
        self.max_width = max_width
        self.max_side = max_side
        self.reduction_expansion = downsampler_expansion
        v_max = max_width * max_v_scale
        self.reduction = MobileBlock(max_width, max_in_width, (downsampler_expansion,), (3,), stride, se=True) \
            if first else None
        self.norm1 = JointLayerNorm(max_width)
        self.qkv = nn.Linear(max_width, 2 * max_width + v_max, bias=False)
        self.proj = nn.Linear(v_max, max_width)
        self.dw_v_conv = nn.Conv2d(v_max, v_max, 3, 1, 1, groups=v_max, bias=False)
        self.attention_bias = nn.Parameter(torch.zeros((2 * max_side - 1) ** 2, max_width // head_dim))
        nn.init.trunc_normal_(self.attention_bias, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(max_side))
        self.active: tuple[int, int, int] | None = None

    def set_active(self, cin: int, width: int, v_scale: int) -> None:
        self.active = (cin, width, v_scale)
        if self.reduction is not None:
            self.reduction.set_active(cin, width, 3, self.reduction_expansion)

    def _dims(self) -> tuple[int, int, int]:
        _, width, v_scale = self.active  # type: ignore[misc]
        heads = width // self.head_dim
        return width, heads, (v_scale * width) // heads

    def _qkv_weight(self) -> torch.Tensor:
        width, heads, vdim = self._dims()
        c = self.max_width
        w = self.qkv.weight
        return torch.cat([w[:width, :width], w[c:c + width, :width], w[2 * c:2 * c + heads * vdim, :width]])

    def _bias_table(self, side: int) -> torch.Tensor:
        """The ((2 side - 1)^2, heads) part of the shared table that a side x side grid uses."""
        _, heads, _ = self._dims()
        rows = _sub_grid_index(self.max_side, side).to(self.attention_bias.device)
        return self.attention_bias[rows, :heads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduction is not None:
            x = map_to_tokens(self.reduction(tokens_to_map(x)))
        width, heads, vdim = self._dims()
        side = math.isqrt(x.shape[1])
        index = self.relative_position_index.view(self.max_side, self.max_side, self.max_side, self.max_side)
        index = index[:side, :side, :side, :side].reshape(side * side, side * side)
        bias = self.attention_bias[index, :heads].permute(2, 0, 1)
        return attention_forward(x, norm=self.norm1, qkv_w=self._qkv_weight(),
                                 dwv_w=self.dw_v_conv.weight[:heads * vdim], bias=bias,
                                 proj_w=self.proj.weight[:width, :heads * vdim], proj_b=self.proj.bias[:width],
                                 heads=heads, head_dim=self.head_dim, vdim=vdim)

    @torch.no_grad()
    def extract(self, side: int) -> StaticAttention:
        width, heads, vdim = self._dims()
        reduction = self.reduction.extract() if self.reduction is not None else None
        layer = StaticAttention(width, heads, self.head_dim, vdim, side, reduction)
        layer.norm1.weight.copy_(self.norm1.weight[:width])
        layer.norm1.bias.copy_(self.norm1.bias[:width])
        layer.qkv.weight.copy_(self._qkv_weight())
        layer.dw_v_conv.weight.copy_(self.dw_v_conv.weight[:heads * vdim])
        layer.proj.weight.copy_(self.proj.weight[:width, :heads * vdim])
        layer.proj.bias.copy_(self.proj.bias[:width])
        layer.attention_bias.copy_(self._bias_table(side))
        return layer


class SuperFFN(nn.Module):
    """Elastic FFN (official `SuperFFN`): inner width = MLP ratio x width."""

    def __init__(self, max_width: int, max_ratio: int):
        super().__init__()
        self.norm1 = JointLayerNorm(max_width)
        self.fc1 = nn.Linear(max_width, max_ratio * max_width)
        self.fc2 = nn.Linear(max_ratio * max_width, max_width)
        self.active: tuple[int, int] | None = None

    def set_active(self, width: int, ratio: int) -> None:
        self.active = (width, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width, ratio = self.active  # type: ignore[misc]
        inner = ratio * width
        return ffn_forward(x, norm=self.norm1, fc1_w=self.fc1.weight[:inner, :width], fc1_b=self.fc1.bias[:inner],
                           fc2_w=self.fc2.weight[:width, :inner], fc2_b=self.fc2.bias[:width])

    @torch.no_grad()
    def extract(self) -> StaticFFN:
        width, ratio = self.active  # type: ignore[misc]
        inner = ratio * width
        layer = StaticFFN(width, inner)
        layer.norm1.weight.copy_(self.norm1.weight[:width])
        layer.norm1.bias.copy_(self.norm1.bias[:width])
        layer.fc1.weight.copy_(self.fc1.weight[:inner, :width])
        layer.fc1.bias.copy_(self.fc1.bias[:inner])
        layer.fc2.weight.copy_(self.fc2.weight[:width, :inner])
        layer.fc2.bias.copy_(self.fc2.bias[:width])
        return layer
