"""A fixed-width integer encoding of archs, for vectorised FLOPs, sampling and search over many archs at once.

Row layout: ``[resolution, first_conv, stem_depth, stem_kernel]`` then, per stage, ``[width, depth, a, b]`` where
(a, b) is (kernel, expansion) for CNN stages and (mlp_ratio, v_scale) for transformer stages.
The stem width is not stored: it always equals first_conv.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .arch import Arch, CNNStageConfig, StemConfig, TransformerStageConfig
from .space import SearchSpace

RES, FIRST, STEM_DEPTH, STEM_KERNEL = 0, 1, 2, 3
HEADER = 4
PER_STAGE = 4
WIDTH, DEPTH, MICRO_A, MICRO_B = 0, 1, 2, 3


def n_columns(space: SearchSpace) -> int:
    return HEADER + PER_STAGE * len(space.stages)


def stage_col(stage_index: int, field: int) -> int:
    """Column of `field` (WIDTH, DEPTH, MICRO_A, MICRO_B) of stage `stage_index`."""
    return HEADER + PER_STAGE * stage_index + field


def encode(arch: Arch) -> np.ndarray:
    row = [arch.resolution, arch.first_conv, arch.stem.depth, arch.stem.kernel]
    for s in arch.stages:
        row += [s.width, s.depth, *s.micro]
    return np.asarray(row, dtype=np.int64)


def encode_many(archs: Iterable[Arch]) -> np.ndarray:
    return np.stack([encode(a) for a in archs])


def decode(row: np.ndarray, space: SearchSpace) -> Arch:
    r = [int(x) for x in row]
    stem = StemConfig(r[FIRST], r[STEM_DEPTH], r[STEM_KERNEL])
    stages = []
    for i, sp in enumerate(space.stages):
        w, d, a, b = r[HEADER + PER_STAGE * i: HEADER + PER_STAGE * (i + 1)]
        stages.append(TransformerStageConfig(w, d, a, b) if sp.is_transformer else CNNStageConfig(w, d, a, b))
    return Arch(r[RES], r[FIRST], stem, tuple(stages))


def decode_many(matrix: np.ndarray, space: SearchSpace) -> list[Arch]:
    return [decode(row, space) for row in matrix]
