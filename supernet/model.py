"""The elastic ElasticViT supernet and the static subnets extracted from it.

Module names follow the official code (`first_conv`, `conv_stem.layers.i.0`, `feature_exactor.s.layers.i`,
`pre_head_0`, `classifer`, ...) so an official checkpoint's keys map onto ours one to one.

`set_active(arch)` selects a subnet for weight-shared forward passes; `extract(arch)` returns a standalone
`StaticSubnet` holding only that subnet's weights in plain Conv2d/Linear/BatchNorm modules. The supernet and the
static subnet resize the input (bicubic, no antialiasing) to the subnet's resolution inside `forward` when the input
side differs, as the paper does; at the subnet's own resolution no resize runs, so an exported graph has none.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from .arch import Arch
from .geometry import feature_sides
from .layers.mobile_block import MobileBlock, StaticMobileBlock
from .layers.norms import ElasticBatchNorm, copy_bn
from .layers.transformer import SuperAttention, SuperFFN, map_to_tokens
from .space import SearchSpace, TransformerStageSpace
from .validation import check_arch


def graph_sides(space: SearchSpace, resolution: int) -> list[int]:
    """The real output side of every stage (`feature_sides` with the graph's rounding)."""
    return feature_sides(space, resolution, "graph")[1:]


def head_forward(x: torch.Tensor, *, w0: torch.Tensor, b0: torch.Tensor, norm: nn.Module, w1: torch.Tensor,
                 b1: torch.Tensor, classifier: nn.Linear, dropout: float, training: bool) -> torch.Tensor:
    """MBPool head on tokens (B, N, C): per-token expansion + BN + Hswish, mean over tokens, FC + Hswish, classifier."""
    y = F.linear(x, w0, b0)
    y = F.hardswish(norm(y.flatten(0, 1)).reshape_as(y)).mean(dim=1)
    y = F.hardswish(F.linear(y, w1, b1))
    if dropout > 0 and training:
        y = F.dropout(y, p=dropout)
    return classifier(y)


def resize_input(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=resolution, mode="bicubic")
    return x


class SuperCNNStage(nn.Module):
    """Elastic stage of MobileBlocks (official `SuperCNNLayer`; blocks at `layers.i.0`)."""

    def __init__(self, max_width: int, max_in_width: int, max_depth: int, ratios: tuple[int, ...],
                 kernels: tuple[int, ...], stride: int, se: bool):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([MobileBlock(max_width, max_in_width if i == 0 else max_width, ratios, kernels,
                                       stride if i == 0 else 1, se)])
            for i in range(max_depth))
        self.depth = max_depth

    def _block(self, i: int) -> MobileBlock:
        """Layer `i`'s block (`layers.i.0`: each layer is a one-block ModuleList, as the official keys need)."""
        return cast(MobileBlock, cast(nn.ModuleList, self.layers[i])[0])

    def set_active(self, cin: int, width: int, depth: int, kernel: int, expansion: int) -> None:
        self.depth = depth
        for i in range(depth):
            self._block(i).set_active(cin if i == 0 else width, width, kernel, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.depth):
            x = self._block(i)(x)
        return x

    def extract(self) -> list[StaticMobileBlock]:
        return [self._block(i).extract() for i in range(self.depth)]


class SuperTransformerStage(nn.Module):
    """Elastic transformer stage (official `SuperTransformerBlock`): `layers` alternates attention and FFN."""

    def __init__(self, max_width: int, max_in_width: int, max_depth: int, max_mlp: int, max_v: int, head_dim: int,
                 max_side: int, stride: int, downsampler_expansion: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(max_depth):
            layers.append(SuperAttention(max_width, max_in_width, max_v, head_dim, max_side, stride,
                                         downsampler_expansion, first=i == 0))
            layers.append(SuperFFN(max_width, max_mlp))
        self.layers = nn.ModuleList(layers)
        self.depth = max_depth

    def _attention(self, i: int) -> SuperAttention:
        """Layer `i`'s attention (`layers.2i`)."""
        return cast(SuperAttention, self.layers[2 * i])

    def _ffn(self, i: int) -> SuperFFN:
        """Layer `i`'s FFN (`layers.2i+1`)."""
        return cast(SuperFFN, self.layers[2 * i + 1])

    def set_active(self, cin: int, width: int, depth: int, mlp_ratio: int, v_scale: int) -> None:
        self.depth = depth
        for i in range(depth):
            self._attention(i).set_active(cin, width, v_scale)
            self._ffn(i).set_active(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(2 * self.depth):
            x = self.layers[i](x)
        return x

    def extract(self, side: int) -> list[nn.Module]:
        out: list[nn.Module] = []
        for i in range(self.depth):
            out += [self._attention(i).extract(side), self._ffn(i).extract()]
        return out


class StaticSubnet(nn.Module):
    """One subnet as a plain, static module (what the exporters convert). Knows its arch and resolution."""

    def __init__(self, arch: Arch, first_conv: nn.Conv2d, first_conv_bn: nn.Module, cnn: list[nn.Module],
                 transformer: list[nn.Module], pre_head_0: nn.Linear, pre_head_norm_0: nn.Module,
                 pre_head_1: nn.Linear, classifier: nn.Linear):
        super().__init__()
        self.arch = arch
        self.resolution = arch.resolution
        self.first_conv = first_conv
        self.first_conv_bn = first_conv_bn
        self.cnn = nn.Sequential(*cnn)
        self.transformer = nn.Sequential(*transformer)
        self.pre_head_0 = pre_head_0
        self.pre_head_norm_0 = pre_head_norm_0
        self.pre_head_1 = pre_head_1
        self.classifer = classifier
        self.head_dropout = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_input(x, self.resolution)
        x = F.hardswish(self.first_conv_bn(self.first_conv(x)))
        x = self.transformer(map_to_tokens(self.cnn(x)))
        return head_forward(x, w0=self.pre_head_0.weight, b0=self.pre_head_0.bias, norm=self.pre_head_norm_0,
                            w1=self.pre_head_1.weight, b1=self.pre_head_1.bias, classifier=self.classifer,
                            dropout=self.head_dropout, training=self.training)


class ElasticViTSupernet(nn.Module):
    """The weight-sharing supernet of a `SearchSpace`."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        w0 = max(space.first_conv_widths)
        self.first_conv = nn.Conv2d(space.in_channels, w0, 3, space.first_conv_stride, 1, bias=False)
        self.first_conv_bn = ElasticBatchNorm(w0)
        self.conv_stem = SuperCNNStage(w0, w0, max(space.stem.depths), (1,), space.stem.kernels, 1, se=False)
        max_sides = [max(col) for col in zip(*(graph_sides(space, r) for r in space.resolutions), strict=True)]
        stages: list[nn.Module] = []
        prev = w0
        for sp, max_side in zip(space.stages, max_sides, strict=True):
            w = max(sp.widths)
            if isinstance(sp, TransformerStageSpace):
                stages.append(SuperTransformerStage(w, prev, max(sp.depths), max(sp.mlp_ratios), max(sp.v_scales),
                                                    space.head_dim, max_side, sp.stride, space.downsampler_expansion))
            else:
                stages.append(SuperCNNStage(w, prev, max(sp.depths), sp.expansions, sp.kernels, sp.stride, sp.se))
            prev = w
        self.feature_exactor = nn.ModuleList(stages)
        e = space.head_expansion
        self.pre_head_0 = nn.Linear(prev, prev * e)
        self.pre_head_norm_0 = ElasticBatchNorm(prev * e)
        self.pre_head_1 = nn.Linear(prev * e, space.head_width)
        self.classifer = nn.Linear(space.head_width, space.num_classes)
        self.head_dropout = 0.0
        self.active_arch: Arch | None = None

    def _stages(self) -> list[SuperCNNStage | SuperTransformerStage]:
        """The elastic stages in space order (`feature_exactor`, named as the official keys)."""
        return [cast(SuperCNNStage | SuperTransformerStage, stage) for stage in self.feature_exactor]

    def set_active(self, arch: Arch) -> None:
        """Select the subnet that `forward` runs (validated against the space)."""
        check_arch(arch, self.space)
        self.conv_stem.set_active(arch.first_conv, arch.first_conv, arch.stem.depth, arch.stem.kernel, 1)
        cin = arch.first_conv
        for stage, cfg in zip(self._stages(), arch.stages, strict=True):
            stage.set_active(cin, cfg.width, cfg.depth, *cfg.micro)
            cin = cfg.width
        self.active_arch = arch

    def get_active_arch(self) -> Arch:
        if self.active_arch is None:
            raise RuntimeError("no subnet is active: call set_active(arch) first")
        return self.active_arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self.get_active_arch()
        x = resize_input(x, arch.resolution)
        x = F.conv2d(x, self.first_conv.weight[:arch.first_conv], None, self.first_conv.stride,
                     self.first_conv.padding)
        x = self.conv_stem(F.hardswish(self.first_conv_bn(x)))
        for stage, sp in zip(self.feature_exactor, self.space.stages, strict=True):
            if sp.is_transformer and x.dim() == 4:
                x = map_to_tokens(x)
            x = stage(x)
        c = arch.stages[-1].width
        ce = c * self.space.head_expansion
        return head_forward(x, w0=self.pre_head_0.weight[:ce, :c], b0=self.pre_head_0.bias[:ce],
                            norm=self.pre_head_norm_0, w1=self.pre_head_1.weight[:, :ce], b1=self.pre_head_1.bias,
                            classifier=self.classifer, dropout=self.head_dropout, training=self.training)

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> StaticSubnet:
        """A standalone copy of one subnet's weights (the active one if `arch` is None), in eval mode."""
        if arch is not None:
            self.set_active(arch)
        arch = self.get_active_arch()
        c0 = arch.first_conv
        first = nn.Conv2d(self.space.in_channels, c0, 3, self.space.first_conv_stride, 1, bias=False)
        first.weight.copy_(self.first_conv.weight[:c0])
        cnn: list[nn.Module] = list(self.conv_stem.extract())
        transformer: list[nn.Module] = []
        for stage, side in zip(self._stages(), graph_sides(self.space, arch.resolution), strict=True):
            if isinstance(stage, SuperTransformerStage):
                transformer += stage.extract(side)
            else:
                cnn += stage.extract()
        c = arch.stages[-1].width
        ce = c * self.space.head_expansion
        head0 = nn.Linear(c, ce)
        head0.weight.copy_(self.pre_head_0.weight[:ce, :c])
        head0.bias.copy_(self.pre_head_0.bias[:ce])
        head1 = nn.Linear(ce, self.space.head_width)
        head1.weight.copy_(self.pre_head_1.weight[:, :ce])
        head1.bias.copy_(self.pre_head_1.bias)
        classifier = nn.Linear(self.space.head_width, self.space.num_classes)
        classifier.load_state_dict(self.classifer.state_dict())
        subnet = StaticSubnet(arch, first, copy_bn(self.first_conv_bn, c0), cnn, transformer, head0,
                              copy_bn(self.pre_head_norm_0, ce, tokens=True), head1, classifier)
        subnet.head_dropout = self.head_dropout
        return subnet.eval()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
