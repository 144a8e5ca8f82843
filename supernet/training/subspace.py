"""The sub-space that dominates an HSS min subnet, where level-C subnets are drawn (official `util/subnet.py`,
`parse_supernet_configs`).

A subnet belongs to it when: resolution >= the min's; first-conv (= stem) width and stem depth >= the min's; every
stage's width and depth >= the min's value for that stage; every CNN stage's expansion >= the smallest expansion of
the min's CNN stages; every transformer stage's MLP ratio >= the smallest MLP ratio of the min's transformer stages;
every transformer stage's V-scale >= the min's V-scale for that stage; kernels are free. (Expansion and MLP use the
min's minimum over stages, V its per-stage value, exactly as the official code; the official code leaves the stem
free, which is the same thing for every HSS set used here, whose stems sit at the space's minimum.)

The sub-space is built as a `SearchSpace` whose choices are filtered, so `sample_in_window` on it is exactly
uniform over the dominating subnets inside a FLOPs window, and every arch it yields is legal in the parent space.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from ..arch import Arch, CNNStageConfig, TransformerStageConfig
from ..flops import arch_mflops
from ..sampling import archs, sample_in_window
from ..space import CNNStageSpace, SearchSpace, StageSpace
from ..validation import check_arch


def _at_least(choices: tuple[int, ...], bound: int) -> tuple[int, ...]:
    return tuple(c for c in choices if c >= bound)


@lru_cache(maxsize=64)
def dominating_subspace(space: SearchSpace, hss: Arch) -> SearchSpace:
    """`space` restricted to the subnets that dominate `hss` (see the module docstring)."""
    check_arch(hss, space)
    min_e = min((s.expansion for s in hss.stages if isinstance(s, CNNStageConfig)), default=0)
    min_mlp = min((s.mlp_ratio for s in hss.stages if isinstance(s, TransformerStageConfig)), default=0)
    stages: list[StageSpace] = []
    for sp, cfg in zip(space.stages, hss.stages, strict=True):
        widths, depths = _at_least(sp.widths, cfg.width), _at_least(sp.depths, cfg.depth)
        if isinstance(sp, CNNStageSpace):
            stages.append(replace(sp, widths=widths, depths=depths, expansions=_at_least(sp.expansions, min_e)))
        else:
            assert isinstance(cfg, TransformerStageConfig)  # check_arch above matched every stage's kind
            stages.append(replace(sp, widths=widths, depths=depths, mlp_ratios=_at_least(sp.mlp_ratios, min_mlp),
                                  v_scales=_at_least(sp.v_scales, cfg.v_scale)))
    name = f"{space.name} (subnets dominating the {arch_mflops(hss, space):.2f}-MFLOPs HSS min)"
    return replace(space, name=name,
                   resolutions=_at_least(space.resolutions, hss.resolution),
                   first_conv_widths=_at_least(space.first_conv_widths, hss.first_conv),
                   stem=replace(space.stem, depths=_at_least(space.stem.depths, hss.stem.depth)),
                   stages=tuple(stages))


def sample_dominating(space: SearchSpace, hss: Arch, lo: float, hi: float, n: int,
                      rng: np.random.Generator) -> list[Arch]:
    """`n` subnets drawn exactly uniformly among those dominating `hss` with ``lo <= MFLOPs <= hi``.

    Raises `supernet.sampling.EmptyWindowError` when no such subnet exists."""
    sub = dominating_subspace(space, hss)
    return archs(sample_in_window(sub, lo, hi, n, seed=rng), sub)
