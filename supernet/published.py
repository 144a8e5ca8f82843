"""The subnets the ElasticViT authors searched and published, by name, as data.

Source: microsoft/Moonlit, ``ElasticViT/configs/final_3min_space_eval.yaml`` (the models its README evaluates with
``--eval_model MODEL_NAME``), copied in the official 10-element list encoding
``[res, channels, depths, conv_ratio, kernel, mlp, heads, window, qk, v]``. Every one parses and validates in the
`elasticvit` space (its per-layer lists are stage-uniform and match the depths), from about 63 to 815 MFLOPs.
"""

from __future__ import annotations

from typing import Any

from .arch import Arch, ArchError, parse_arch
from .space import ELASTICVIT, SearchSpace
from .validation import check_arch

PUBLISHED_SPACE = ELASTICVIT.name

PUBLISHED: dict[str, list[Any]] = {
    "elastic_T1": [128, [16, 24, 32, 64, 96, 176, 272], [1, 2, 3, 1, 1, 1, 1], [1, 3, 3, 3, 3, 3],
                   [3, 3, 3, 3, 3, 3], [2, 2, 3, 4], [4, 6, 11, 17], [1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2]],
    "elastic_T2": [160, [16, 24, 40, 48, 96, 176, 256], [1, 2, 3, 1, 1, 2, 2], [1, 3, 3, 3, 3, 3],
                   [3, 3, 3, 3, 3, 3], [3, 4, 3, 3, 2, 2], [3, 6, 11, 11, 16, 16], [1, 1, 1, 1, 1, 1],
                   [1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2]],
    "elastic_S1": [192, [16, 24, 40, 64, 96, 192, 272], [1, 3, 3, 2, 2, 2, 2], [1, 3, 3, 3, 3, 3, 3],
                   [3, 3, 3, 3, 3, 3, 3], [2, 2, 2, 2, 3, 3, 4, 4], [4, 4, 6, 6, 12, 12, 17, 17],
                   [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]],
    "elastic_S2": [224, [16, 24, 48, 64, 96, 192, 256], [1, 3, 3, 2, 2, 2, 2], [1, 3, 3, 3, 3, 3, 3],
                   [3, 3, 3, 3, 3, 3, 3], [2, 2, 2, 2, 2, 2, 4, 4], [4, 4, 6, 6, 12, 12, 16, 16],
                   [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]],
    "elastic_M": [224, [16, 32, 48, 64, 96, 192, 288], [1, 3, 5, 2, 2, 2, 2], [1, 3, 3, 3, 3, 3, 3, 3, 3],
                  [5, 3, 3, 3, 3, 3, 3, 3, 3], [2, 2, 4, 4, 4, 4, 5, 5], [4, 4, 6, 6, 12, 12, 18, 18],
                  [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]],
    "elastic_L1": [256, [16, 24, 40, 64, 96, 192, 320], [1, 3, 3, 2, 2, 2, 2], [1, 3, 3, 3, 6, 6, 6],
                   [5, 5, 5, 5, 5, 5, 5], [4, 4, 3, 3, 4, 4, 4, 4], [4, 4, 6, 6, 12, 12, 20, 20],
                   [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]],
    "elastic_L1.5": [256, [16, 24, 48, 64, 96, 256, 320], [2, 4, 4, 2, 2, 2, 2], [1, 1, 3, 3, 3, 3, 4, 4, 4, 4],
                     [3, 3, 3, 3, 3, 3, 5, 5, 5, 5], [4, 4, 5, 5, 3, 3, 5, 5], [4, 4, 6, 6, 16, 16, 20, 20],
                     [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]],
    "elastic_L2": [256, [16, 24, 40, 80, 128, 256, 304], [1, 3, 4, 2, 2, 2, 2], [1, 6, 6, 6, 6, 6, 6, 6],
                   [3, 3, 3, 3, 3, 3, 3, 3], [3, 3, 2, 2, 3, 3, 5, 5], [5, 5, 8, 8, 16, 16, 19, 19],
                   [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 3, 3]],
    "elastic_L3": [256, [16, 32, 48, 80, 128, 256, 320], [1, 3, 4, 2, 2, 2, 2], [1, 5, 5, 5, 5, 5, 5, 5],
                   [5, 3, 3, 3, 5, 5, 5, 5], [4, 4, 4, 4, 3, 3, 5, 5], [5, 5, 8, 8, 16, 16, 20, 20],
                   [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]],
}


def published_arch(name: str, space: SearchSpace) -> Arch:
    """The published model `name` (e.g. ``elastic_M``) as an arch of `space`, which must be the `elasticvit` space
    it was searched in. Raises `ArchError` for another space or an unknown name."""
    if name not in PUBLISHED:
        raise ArchError(f"{name!r} is not a published model (known: {', '.join(PUBLISHED)})")
    if space.fingerprint != ELASTICVIT.fingerprint:
        raise ArchError(f"{name} is a published model of the {PUBLISHED_SPACE} space, not of {space.name!r}")
    return check_arch(parse_arch(PUBLISHED[name], space), space)
