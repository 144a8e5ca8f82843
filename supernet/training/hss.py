"""Hierarchical smallest subnets (HSS): the paper's three min subnets and the level -> min mapping (official
`models/model.py`, `select_min_arch`; `configs/final_3min_space.yaml`, `min_archs`).

The tiny demo space has its own set (`TINY_HSS`), built the same way at the same relative positions.

An HSS set is a tuple of ``(key MFLOPs, arch)`` pairs. The official `select_min_arch` takes, in ascending key order,
the first key K with ``prev_key + window < level <= K + window`` (prev_key starts at 0) and the largest key for any
level above every key. With keys 200/400/800 and window 20 that gives levels 100, 200 -> min1; 300, 400 -> min2;
500 and up -> min3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..arch import Arch, ArchError, CNNStageConfig, StemConfig, TransformerStageConfig
from ..arch_spec import resolve_arch
from ..space import SearchSpace
from .train_config import ConfigError

HSSSet = tuple[tuple[float, Arch], ...]


def _elasticvit_arch(res: int, widths: Sequence[int], depths: Sequence[int], mlp: Sequence[int]) -> Arch:
    """An ElasticViT-space arch with e = 3, k = 3 everywhere and v = 2 (the form of every paper HSS)."""
    stem = StemConfig(widths[0], depths[0], 3)
    cnn = tuple(CNNStageConfig(w, d, 3, 3) for w, d in zip(widths[1:3], depths[1:3], strict=True))
    trans = tuple(TransformerStageConfig(w, d, m, 2) for w, d, m in zip(widths[3:], depths[3:], mlp, strict=True))
    return Arch(res, widths[0], stem, cnn + trans)


#: The paper's HSS set for the ElasticViT space (official yaml `min_archs`): 37.37, 159.92 and 288.81 MFLOPs.
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


def _tiny_arch(transformer_depth: int, cnn: Sequence[tuple[int, int]]) -> Arch:
    """A tiny-space arch at resolution 32 with the minimum widths, e = 3, k = 3, mlp = 2, v = 2, its two CNN stages
    at (width, depth) `cnn` and every transformer stage at `transformer_depth`."""
    stem = StemConfig(8, 1, 3)
    cnn_stages = tuple(CNNStageConfig(w, d, 3, 3) for w, d in cnn)
    trans = tuple(TransformerStageConfig(w, transformer_depth, 2, 2) for w in (32, 48, 64, 64))
    return Arch(32, 8, stem, cnn_stages + trans)


#: The tiny space's HSS set, at the paper's relative positions: the keys are the paper's 200/400/800 MFLOPs mapped
#: linearly from the ElasticViT FLOPs range (37.37-3191.46) onto the tiny one (2.40-27.67), so levels map to mins
#: exactly as in the paper (its first two levels -> min1, the next two -> min2, the rest -> min3); the mins sit
#: where the paper's do (its 160 and 289 MFLOPs are 3.9% and 8.0% of the way up the range: here 3.33 and 4.59
#: MFLOPs, 3.7% and 8.7%), grown like the paper's: min2 deepens the transformer stages, min3 also the CNN stages.
TINY_HSS: HSSSet = (
    (3.7, _tiny_arch(1, ((16, 1), (16, 1)))),
    (5.3, _tiny_arch(2, ((16, 1), (16, 1)))),
    (8.51, _tiny_arch(2, ((24, 2), (32, 2)))),
)


def parse_hss(value: Any, space: SearchSpace, where: str = "hss") -> HSSSet:
    """An HSS set from configuration: a list of ``[key, arch]`` pairs (or ``{key = .., arch = ..}`` tables), each
    arch as `resolve_arch` reads it ("min", an arch JSON file, or the arch itself). Raises `ConfigError` naming
    `where` and the bad entry."""
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{where}: {problem}")

    if not isinstance(value, (list, tuple)) or not value:
        raise bad(f"hss must be a non-empty list of [key MFLOPs, arch] pairs, got {value!r}")
    pairs = []
    for entry in value:
        if isinstance(entry, dict) and set(entry) == {"key", "arch"}:
            key, spec = entry["key"], entry["arch"]
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            key, spec = entry
        else:
            raise bad(f"an hss entry is [key MFLOPs, arch] or {{key = .., arch = ..}}, got {entry!r}")
        if isinstance(key, bool) or not isinstance(key, (int, float)) or not key > 0:
            raise bad(f"hss key must be a positive number of MFLOPs, got {key!r}")
        try:
            pairs.append((float(key), resolve_arch(spec, space)))
        except ArchError as e:
            raise bad(f"hss arch {spec if isinstance(spec, str) else 'entry'}: {e}") from None
    if len({k for k, _ in pairs}) != len(pairs):
        raise bad(f"hss keys must be distinct, got {[k for k, _ in pairs]}")
    return tuple(sorted(pairs, key=lambda kv: kv[0]))
