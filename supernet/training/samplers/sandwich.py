"""The sandwich rule (the baseline of the paper's Table 3): the largest subnet, random subnets, the smallest."""

from __future__ import annotations

from ...sampling import archs, max_arch, min_arch, sample_uniform
from ...space import SearchSpace
from ..config import SamplerConfig, check_sandwich
from ..plan import StepPlan
from .base import SUBNETS, SubnetSampler


class SandwichSampler(SubnetSampler):
    """Per step: the largest subnet, `sandwich_uniform` (2) subnets drawn uniformly from the space, the smallest."""

    name = "sandwich"

    def __init__(self, space: SearchSpace, config: SamplerConfig | None = None, seed: int = 0):
        super().__init__(space, config, seed)
        check_sandwich(self.config)

    def sample(self, step: int, epoch: int) -> StepPlan:
        self._check_step(step)
        rng = self._rng(step, SUBNETS)
        rand = archs(sample_uniform(self.space, self.config.sandwich_uniform, rng), self.space)
        subnets = ([self._subnet(max_arch(self.space), "max")] + [self._subnet(a, "uniform") for a in rand]
                   + [self._subnet(min_arch(self.space), "min")])
        self.last_step = step
        return StepPlan(step, epoch, None, None, tuple(subnets))
