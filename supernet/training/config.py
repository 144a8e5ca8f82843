"""Configuration of the subnet samplers: one frozen dataclass, the paper's values as defaults (official
`configs/final_3min_space.yaml`, `models/build_model.py`, `train_eval_supernet.py`).

`default_config(space)` gives the paper's values for the ElasticViT space. For any other space it maps the paper's
levels and window linearly from the ElasticViT FLOPs range onto the space's own range (`flops_range`), so the levels
sit at the same relative positions (about 2% to 37% of the way from the smallest to the largest subnet), with the
space's own HSS set where it has one (`SPACE_HSS`: the tiny space's `TINY_HSS`) and otherwise its global min subnet
as the only HSS (every level then samples from the whole space). `check_config`
validates a configuration against a space, including that every level's window holds at least one subnet.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from itertools import pairwise
from typing import Any

import numpy as np

from ..arch import Arch
from ..sampling import EmptyWindowError, flops_range, min_arch
from ..space import ELASTICVIT, TINY, SearchSpace
from ..validation import validate
from .hss import ELASTICVIT_HSS, TINY_HSS, HSSSet, parse_hss, select_hss
from .subspace import sample_dominating
from .train_config import ConfigError

PAPER_LEVELS: tuple[float, ...] = (100.0, 200.0, 300.0, 400.0, 500.0, 700.0, 900.0, 1200.0)
PAPER_WINDOW = 20.0
#: HSS sets of the other built-in spaces, by name (the ElasticViT space's is the `SamplerConfig` default).
SPACE_HSS: dict[str, HSSSet] = {TINY.name: TINY_HSS}


@dataclass(frozen=True)
class SamplerConfig:
    """Every knob of the samplers. Defaults are the paper's/official code's values for the ElasticViT space.

    levels: complexity levels C in MFLOPs, ascending (official `models/build_model.py`). window: a level-C subnet
    has FLOPs in [C, C + window] (2 * flops_bound = 20). hss: (key MFLOPs, min subnet) pairs (yaml `min_archs`).
    bank_size / big_bank_size: bank capacity below / from `big_bank_from` MFLOPs. q0, q_inc, q_every: exploitation
    probability q(epoch) = q0 + q_inc * floor((epoch + 1) / q_every). n_candidates: level-C candidates compared by
    the preference rule. n_uniform: level subnets per step of the complexity-aware samplers. sandwich_uniform:
    random subnets per step of the sandwich baseline.
    """

    levels: tuple[float, ...] = PAPER_LEVELS
    window: float = PAPER_WINDOW
    hss: HSSSet = field(default=ELASTICVIT_HSS)
    bank_size: int = 150
    big_bank_size: int = 50
    big_bank_from: float = 500.0
    q0: float = 0.2
    q_inc: float = 0.15
    q_every: int = 100
    n_candidates: int = 5
    n_uniform: int = 3
    sandwich_uniform: int = 2

    def bank_capacity(self, level: float) -> int:
        """Capacity of the bank of `level`: 150 below 500 MFLOPs, 50 from 500 up ("500 counts as big")."""
        return self.big_bank_size if level >= self.big_bank_from else self.bank_size

    def q(self, epoch: int) -> float:
        """Exploitation probability at `epoch`: 0.2, +0.15 whenever (epoch + 1) % 100 == 0 (official
        `train_eval_supernet.py`)."""
        return self.q0 + self.q_inc * ((epoch + 1) // self.q_every)

    def hss_for(self, level: float, space: SearchSpace) -> Arch:
        """The HSS min subnet of `level` (the space's global min where the official rule finds none)."""
        return select_hss(level, self.hss, self.window) or min_arch(space)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (tuples as lists, HSS archs as canonical dicts): stored in sampler state, where
        resume compares it, so a field left out here would go unchecked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hss":
                value = [[key, arch.to_dict()] for key, arch in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def _round3(x: float) -> float:
    """Round to 3 significant digits."""
    return float(f"{x:.3g}")


def default_config(space: SearchSpace) -> SamplerConfig:
    """The paper's configuration for the ElasticViT space; for another space, the paper's levels and window mapped
    linearly onto its FLOPs range (3 significant digits), with its `SPACE_HSS` set or else its global min subnet as
    the HSS of every level."""
    if space == ELASTICVIT:
        return SamplerConfig()
    lo, hi = flops_range(space)
    ref_lo, ref_hi = flops_range(ELASTICVIT)
    scale = (hi - lo) / (ref_hi - ref_lo)
    levels = tuple(_round3(lo + (c - ref_lo) * scale) for c in PAPER_LEVELS)
    # Big banks from the same relative position as the paper's 500 MFLOPs.
    big_from = _round3(lo + (500.0 - ref_lo) * scale)
    return SamplerConfig(levels=levels, window=_round3(PAPER_WINDOW * scale),
                         hss=SPACE_HSS.get(space.name, ((_round3(lo), min_arch(space)),)), big_bank_from=big_from)


def check_config(space: SearchSpace, config: SamplerConfig) -> None:
    """Raise `ConfigError` naming the first problem: bad numbers, an HSS arch outside the space, or a level whose
    window [C, C + window] holds no subnet of its HSS sub-space."""
    c = config
    if not c.levels or any(b <= a for a, b in pairwise(c.levels)):
        raise ConfigError(f"levels must be non-empty and strictly ascending, got {list(c.levels)}")
    if not (c.window > 0 and all(math.isfinite(x) and x > 0 for x in c.levels)):
        raise ConfigError(f"levels and window must be positive, got {list(c.levels)} and {c.window}")
    for name in ("bank_size", "big_bank_size", "q_every", "n_candidates", "n_uniform"):
        if getattr(c, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(c, name)}")
    check_sandwich(c)
    if not (0.0 <= c.q0 <= 1.0 and c.q_inc >= 0.0):
        raise ConfigError(f"q0 must be in [0, 1] and q_inc >= 0, got {c.q0} and {c.q_inc}")
    if not c.hss:
        raise ConfigError("the HSS set is empty")
    for key, arch in c.hss:
        errors = validate(arch, space)
        if errors:
            raise ConfigError(f"HSS arch of key {key} is not in space {space.name!r}: "
                              + "; ".join(str(e) for e in errors))
    _check_windows(space, c)


def check_sandwich(config: SamplerConfig) -> None:
    """Raise `ConfigError` for a negative `sandwich_uniform` (the only setting the sandwich baseline reads)."""
    if config.sandwich_uniform < 0:
        raise ConfigError(f"sandwich_uniform must be >= 0, got {config.sandwich_uniform}")


@lru_cache(maxsize=16)
def _check_windows(space: SearchSpace, config: SamplerConfig) -> None:
    for level in config.levels:
        try:
            sample_dominating(space, config.hss_for(level, space), level, level + config.window, 1,
                              np.random.default_rng(0))
        except EmptyWindowError as e:
            raise ConfigError(f"level {level:g} MFLOPs: no subnet dominating its HSS min has "
                              f"{level:g}-{level + config.window:g} MFLOPs ({e})") from None


def sampler_config(space: SearchSpace, options: dict[str, Any]) -> SamplerConfig:
    """The space's default sampler configuration with `options` (any `SamplerConfig` field) applied; `ConfigError`
    names an unknown key or a value of the wrong type. `hss` is a list of [key MFLOPs, arch] pairs (`parse_hss`)."""
    defaults = default_config(space)
    known = [f.name for f in fields(SamplerConfig)]
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise ConfigError(f"unknown sampler_options key {key!r} (known: {', '.join(known)})")
        if key == "hss":
            values[key] = parse_hss(value, space, where="sampler_options.hss")
            continue
        values[key] = _option_value(key, value, getattr(defaults, key))
    return dataclasses.replace(defaults, **values)


def _option_value(key: str, value: Any, default: Any) -> Any:
    """`value` as the type of `default` (int, float, or a tuple of floats), or `ConfigError`."""
    def number(x: Any, integer: bool) -> bool:
        return not isinstance(x, bool) and isinstance(x, int if integer else (int, float))

    if isinstance(default, tuple):
        if isinstance(value, (list, tuple)) and all(number(x, False) for x in value):
            return tuple(float(x) for x in value)
        raise ConfigError(f"sampler_options.{key} must be a list of numbers, got {value!r}")
    if number(value, isinstance(default, int)):
        return value if isinstance(default, int) else float(value)
    kind = "an integer" if isinstance(default, int) else "a number"
    raise ConfigError(f"sampler_options.{key} must be {kind}, got {value!r}")
