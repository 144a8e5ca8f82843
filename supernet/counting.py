"""Exact sizes of a search space, and the table of its legal width vectors.

- `table1_count`: the paper's number, the plain product of Table 1 with one choice per stage and every dimension
  independent (the first-conv width counted apart from the stem width, widths free to decrease):
  108,974,561,034,240,000 for the ElasticViT space.
- `legal_count`: what the official code can actually sample: stem width tied to the first conv and widths
  non-decreasing across stages (about 2.167e16 for the ElasticViT space).
"""

from __future__ import annotations

from functools import lru_cache
from math import prod

import numpy as np

from .space import SearchSpace


def _micro_product(space: SearchSpace) -> int:
    """Choices per subnet that do not involve widths or resolution (depths, kernels, expansions, MLP, V)."""
    n = len(space.stem.depths) * len(space.stem.kernels)
    for s in space.stages:
        a, b = s.micro_choices()
        n *= len(s.depths) * len(a) * len(b)
    return n


def table1_count(space: SearchSpace) -> int:
    widths = len(space.first_conv_widths) * prod(len(s.widths) for s in space.stages)
    return len(space.resolutions) * len(space.first_conv_widths) * widths * _micro_product(space)


@lru_cache(maxsize=16)
def legal_width_combos(space: SearchSpace) -> np.ndarray:
    """Every legal width vector ``[stem (= first conv), stage widths...]`` as rows of an int64 array."""
    combos = np.asarray(space.first_conv_widths, dtype=np.int64)[:, None]
    for s in space.stages:
        choices = np.asarray(s.widths, dtype=np.int64)
        left = np.repeat(combos, len(choices), axis=0)
        right = np.tile(choices, len(combos))
        keep = right >= left[:, -1]
        combos = np.concatenate([left[keep], right[keep, None]], axis=1)
    combos.setflags(write=False)
    return combos


def legal_count(space: SearchSpace) -> int:
    return len(space.resolutions) * len(legal_width_combos(space)) * _micro_product(space)
