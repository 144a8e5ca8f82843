"""The spatial sides of a subnet's feature maps: the one rule, under each of the three roundings the toolkit meets.

The side after a stride-s step is ``side / s`` rounded one of two ways, and three bookkeepings mix them:

- ``"graph"``: what the network computes. Every stride-s convolution (kernel k, padding k // 2) gives
  ``ceil(side / s)``: the first conv and every stage.
- ``"flops"``: the official FLOPs counter (official `models/model.py`, `compute_flops`): the first conv and CNN
  stages floor-divide, transformer stages ceil-divide (the paper's Table 1 sides: T3 is 4 at input 224).
- ``"nnmeter"``: nn-Meter's block latency tables (official nn-Meter
  `nn_meter/predictor/transformer_predictor/interface.py`): floor division everywhere.

`feature_sides` works on Python ints and, elementwise, on numpy int64 arrays of resolutions.
"""

from __future__ import annotations

from typing import Any, Literal

from .space import SearchSpace

Rounding = Literal["graph", "flops", "nnmeter"]
ROUNDINGS: tuple[Rounding, ...] = ("graph", "flops", "nnmeter")

Int = Any  # a Python int or a numpy int64 array


def _floor(side: Int, stride: int) -> Int:
    return side // stride


def _ceil(side: Int, stride: int) -> Int:
    return -((-side) // stride)


def feature_sides(space: SearchSpace, resolution: Int, rounding: Rounding) -> list[Int]:
    """The first conv's output side, then every stage's output side (``1 + len(space.stages)`` values), for an
    input of `resolution` under `rounding` (see the module docstring)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r} (known: {', '.join(ROUNDINGS)})")
    first = _ceil if rounding == "graph" else _floor
    side = first(resolution, space.first_conv_stride)
    sides = [side]
    for sp in space.stages:
        ceil = rounding == "graph" or (rounding == "flops" and sp.is_transformer)
        side = (_ceil if ceil else _floor)(side, sp.stride)
        sides.append(side)
    return sides
