"""Sampling strategies by name. A new strategy is a module of `supernet.training.samplers`, its test, and its line
in `SAMPLERS` (or `register_sampler`); the contract tests run every registered strategy."""

from __future__ import annotations

from ..space import SearchSpace
from .config import SamplerConfig
from .samplers import ComplexitySampler, ElasticViTSampler, SandwichSampler, SubnetSampler

SAMPLERS: dict[str, type[SubnetSampler]] = {
    cls.name: cls for cls in (SandwichSampler, ComplexitySampler, ElasticViTSampler)
}


def register_sampler(cls: type[SubnetSampler]) -> type[SubnetSampler]:
    """Make a strategy available to `get_sampler` under `cls.name` (usable as a class decorator)."""
    SAMPLERS[cls.name] = cls
    return cls


def sampler_names() -> list[str]:
    return sorted(SAMPLERS)


def get_sampler(name: str, space: SearchSpace, config: SamplerConfig | None = None, seed: int = 0) -> SubnetSampler:
    """A new sampler of strategy `name` (config defaults to `default_config(space)`); KeyError naming the known
    strategies for an unknown name."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise KeyError(f"unknown sampling strategy {name!r} (known: {', '.join(sampler_names())})") from None
    return cls(space, config, seed)
