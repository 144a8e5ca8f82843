"""PyTorch modules for single blocks (``graph`` convention), built from the supernet's own layers, so a block
exported alone has the ops it has inside an exported subnet.

Inputs: feature maps ``(1, C, H, W)`` for the first conv and MobileNet blocks; tokens ``(1, H*W, C)`` for the
transformer downsampler (which maps tokens to a map and back, as inside a subnet's first attention layer), the
attention, the FFN and the head. Weights are the seeded initial weights with trained-like norm parameters (see
`elasticvit_deploy.export.subnet.trained_like_norms_`), as in checkpoint-less subnet exports.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from supernet.layers.mobile_block import MobileBlock
from supernet.layers.norms import ElasticBatchNorm, copy_bn
from supernet.layers.transformer import SuperAttention, SuperFFN, map_to_tokens, tokens_to_map
from supernet.model import head_forward

from ..export.subnet import INIT_SEED, trained_like_norms_
from .blocks import Block
from .features import HEAD_DIM


class FirstConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(self.bn(self.conv(x)))


class TokenDownsampler(nn.Module):
    """A transformer stage's MBv3 downsampling block on tokens, as it runs inside the stage's first layer."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return map_to_tokens(self.block(tokens_to_map(x)))


class Head(nn.Module):
    """The MBPool head on tokens."""

    def __init__(self, width: int, expansion: int, head_width: int, classes: int):
        super().__init__()
        self.fc0 = nn.Linear(width, width * expansion)
        self.norm = copy_bn(ElasticBatchNorm(width * expansion), width * expansion, tokens=True)
        self.fc1 = nn.Linear(width * expansion, head_width)
        self.classifier = nn.Linear(head_width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return head_forward(x, w0=self.fc0.weight, b0=self.fc0.bias, norm=self.norm, w1=self.fc1.weight,
                            b1=self.fc1.bias, classifier=self.classifier, dropout=0.0, training=False)


def _mobile(b: Block) -> nn.Module:
    layer = MobileBlock(b.cout, b.cin, (b.expansion,), (b.kernel,), b.stride, b.se)
    layer.set_active(b.cin, b.cout, b.kernel, b.expansion)
    return layer.extract()


def block_module(block: Block) -> tuple[nn.Module, tuple[int, ...]]:
    """The module of `block` and its input shape (batch 1)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        b = block
        n = b.hw * b.hw
        module: nn.Module
        shape: tuple[int, ...]
        if b.family == "firstconv":
            module, shape = FirstConv(b.cin, b.cout, b.stride), (1, b.cin, b.hw, b.hw)
        elif b.family == "conv":
            module, shape = _mobile(b), (1, b.cin, b.hw, b.hw)
        elif b.family == "transds":
            module, shape = TokenDownsampler(_mobile(b)), (1, n, b.cin)
        elif b.family == "transattn":
            attn = SuperAttention(b.cout, b.cout, b.v_scale, HEAD_DIM, b.hw, 1, 1, first=False)
            attn.set_active(b.cout, b.cout, b.v_scale)
            module, shape = attn.extract(b.hw), (1, n, b.cout)
        elif b.family == "transffn":
            ffn = SuperFFN(b.cout, b.mlp_ratio)
            ffn.set_active(b.cout, b.mlp_ratio)
            module, shape = ffn.extract(), (1, n, b.cout)
        elif b.family == "mbpool":
            module, shape = Head(b.cin, b.expansion, b.head_width, b.classes), (1, n, b.cin)
        else:
            raise ValueError(f"unknown block family {b.family!r}")
        trained_like_norms_(module, INIT_SEED)
    return module.eval(), shape
