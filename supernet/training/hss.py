"""Hierarchical smallest subnets (HSS, spec 4.2): the paper's three min subnets and the level -> min mapping.

An HSS set is a tuple of ``(key MFLOPs, arch)`` pairs. The official `select_min_arch` takes, in ascending key order,
the first key K with ``prev_key + window < level <= K + window`` (prev_key starts at 0) and the largest key for any
level above every key. With keys 200/400/800 and window 20 that gives levels 100, 200 -> min1; 300, 400 -> min2;
500 and up -> min3.
"""

from __future__ import annotations

from typing import Sequence

from ..arch import Arch, CNNStageConfig, StemConfig, TransformerStageConfig

HSSSet = tuple[tuple[float, Arch], ...]


def _elasticvit_arch(res: int, widths: Sequence[int], depths: Sequence[int], mlp: Sequence[int]) -> Arch:
    """An ElasticViT-space arch with e = 3, k = 3 everywhere and v = 2 (the form of every paper HSS)."""
    stem = StemConfig(widths[0], depths[0], 3)
    cnn = tuple(CNNStageConfig(w, d, 3, 3) for w, d in zip(widths[1:3], depths[1:3]))
    trans = tuple(TransformerStageConfig(w, d, m, 2) for w, d, m in zip(widths[3:], depths[3:], mlp))
    return Arch(res, widths[0], stem, cnn + trans)


#: The paper's HSS set for the ElasticViT space (yaml `min_archs`, spec 4.2): 37.37, 159.92 and 288.81 MFLOPs.
ELASTICVIT_HSS: HSSSet = (
    (200.0, _elasticvit_arch(128, (16, 16, 16, 48, 80, 144, 160), (1, 2, 2, 1, 1, 1, 1), (2, 2, 2, 2))),
    (400.0, _elasticvit_arch(176, (16, 24, 32, 48, 96, 176, 224), (1, 3, 3, 2, 2, 2, 2), (2, 3, 2, 2))),
    (800.0, _elasticvit_arch(224, (16, 24, 32, 64, 96, 192, 256), (1, 3, 3, 2, 2, 2, 2), (2, 2, 2, 2))),
)


def select_hss(level: float, hss: HSSSet, window: float) -> Arch | None:
    """The HSS min subnet serving `level` (official `select_min_arch`), or None for a level <= window, where the
    official code finds no key and falls back to the space's global min subnet (the caller does the same)."""
    keys = sorted(hss, key=lambda kv: kv[0])
    if level > keys[-1][0]:
        return keys[-1][1]
    lower = 0.0
    for key, arch in keys:
        if lower + window < level <= key + window:
            return arch
        lower = key
    return None
