"""FLOPs exactly as the official ElasticViT `compute_flops` counts them, quirks included.

"FLOPs" are multiply-accumulates, in millions, at the subnet's own input resolution. Reproduced quirks:
- spatial sides follow the official bookkeeping: CNN stages floor-divide, transformer stages ceil-divide;
- the first conv and stem use the official left-to-right integer expression ``C * r // 2 * r // 2``;
- a stride-2 pointwise expansion is counted at 2x the output side (not the true input side);
- the depthwise conv on V is counted once per element (no x9);
- a transformer stage's downsampling block counts no SE and no shortcut; every stride-2 MobileBlock counts a
  shortcut 1x1 conv, even when the widths are equal and no conv runs;
- norms, activations, residual adds, pooling, biases, the position bias and the input resize are not counted.

The same formulas run on Python ints (one arch) or on numpy int64 columns (a batch): see `arch_mflops` and
`batch_mflops`. A generic profiler would shift every subnet's FLOPs and so its training level and search constraint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import encoding as enc
from .arch import Arch
from .geometry import feature_sides
from .space import SearchSpace, TransformerStageSpace

Int = Any  # a Python int or a numpy int64 array: every formula below works on both


def _mobile_layer(cin: Int, cout: Int, side: Int, kernel: Int, expansion: Int, stride: int, se: bool) -> Int:
    """One MobileBlock (official `MobileBlock.compute_flops`, expansion > 1)."""
    inner = cin * expansion
    pw_side = side * 2 if stride > 1 else side
    total = cin * inner * pw_side * pw_side + inner * kernel * kernel * side * side + inner * cout * side * side
    if se:
        total = total + inner * (inner // 4) * 2
    if stride == 2:
        total = total + cin * cout * side * side
    return total


def _transformer_layer(width: Int, side: Int, mlp: Int, v: Int, head_dim: int) -> Int:
    """Attention + FFN of one transformer layer (official `SuperAttention`/`SuperFFN.compute_flops`)."""
    heads = width // head_dim
    vdim = (v * width) // heads
    n = side * side
    n2 = n * n
    attn = heads * n2 * head_dim + heads * n2 + heads * vdim * n2
    attn = attn + width * n * (head_dim * heads * 2 + vdim * heads) + n * vdim * heads * width + n * vdim * heads
    inner = mlp * width
    ffn = (width * inner + inner * width) * n
    return attn + ffn


def first_conv_macs(res: Int, width: Int) -> Int:
    """The 3x3 stride-2 first conv, with the official left-to-right integer expression."""
    return 3 * width * res // 2 * res // 2 * 9


def stem_macs(res: Int, width: Int, depth: Int, kernel: Int) -> Int:
    """The stem MBv2 (expansion 1): depthwise + pointwise per layer, at the first conv's output side."""
    return (width * res // 2 * res // 2 * kernel * kernel + width * width * res // 2 * res // 2) * depth


def stage_sides(space: SearchSpace, res: Int) -> list[Int]:
    """Each stage's output side as the official counter books it (`feature_sides` with its rounding)."""
    return feature_sides(space, res, "flops")[1:]


def stage_macs(space: SearchSpace, index: int, side: Int, cin: Int, width: Int, depth: Int, a: Int, b: Int) -> Int:
    """One stage at output side `side`: (a, b) = (kernel, expansion) or (mlp_ratio, v_scale)."""
    sp = space.stages[index]
    if isinstance(sp, TransformerStageSpace):
        inner = cin * space.downsampler_expansion
        ds_side = side * 2 if sp.stride == 2 else side
        n = side * side
        downsampler = cin * inner * ds_side * ds_side + inner * 9 * n + inner * width * n
        return downsampler + _transformer_layer(width, side, a, b, space.head_dim) * depth
    first_layer = _mobile_layer(cin, width, side, a, b, sp.stride, sp.se)
    return first_layer + _mobile_layer(width, width, side, a, b, 1, sp.se) * (depth - 1)


def head_macs(space: SearchSpace, width: Int, side: Int) -> Int:
    """The MBPool head: per-token expansion, mean over tokens, the `head_width`-wide FC, the classifier."""
    e = space.head_expansion
    return width * width * e * side * side + width * e * space.head_width + space.head_width * space.num_classes


def _parts(space: SearchSpace, res: Int, first: Int, stem_depth: Int, stem_kernel: Int,
           stages: list[tuple[Int, Int, Int, Int]]) -> list[tuple[str, Int]]:
    """FLOPs (MACs) per part: first conv, stem, each stage, head."""
    parts: list[tuple[str, Int]] = [("first_conv", first_conv_macs(res, first)),
                                    ("stem", stem_macs(res, first, stem_depth, stem_kernel))]
    sides = stage_sides(space, res)
    cin = first
    for i, (sp, side, (w, d, a, b)) in enumerate(zip(space.stages, sides, stages, strict=True)):
        parts.append((sp.name, stage_macs(space, i, side, cin, w, d, a, b)))
        cin = w
    parts.append(("head", head_macs(space, cin, sides[-1])))
    return parts


def _arch_parts(arch: Arch, space: SearchSpace) -> list[tuple[str, Int]]:
    stages = [(s.width, s.depth, *s.micro) for s in arch.stages]
    return _parts(space, arch.resolution, arch.first_conv, arch.stem.depth, arch.stem.kernel, stages)


def arch_flops_breakdown(arch: Arch, space: SearchSpace) -> dict[str, float]:
    """MFLOPs per part (first_conv, stem, each stage by name, head) of one arch."""
    return {name: v / 1e6 for name, v in _arch_parts(arch, space)}


def arch_mflops(arch: Arch, space: SearchSpace) -> float:
    """Total MFLOPs of one arch (the official counter's value)."""
    return sum(v for _, v in _arch_parts(arch, space)) / 1e6


def batch_mflops(matrix: np.ndarray, space: SearchSpace) -> np.ndarray:
    """Total MFLOPs of every row of an encoded batch (see `supernet.encoding`), vectorised."""
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim == 1:
        m = m[None, :]
    stages = []
    for i in range(len(space.stages)):
        c = enc.stage_col(i, 0)
        stages.append((m[:, c], m[:, c + 1], m[:, c + 2], m[:, c + 3]))
    parts = _parts(space, m[:, enc.RES], m[:, enc.FIRST], m[:, enc.STEM_DEPTH], m[:, enc.STEM_KERNEL], stages)
    total = np.zeros(len(m), dtype=np.int64)
    for _, v in parts:
        total += v
    return total / 1e6
