"""The paper's complexity-aware sampling (official `process.py` and `models/model.py`): per step, subnets of one
complexity level, which walks by -1/0/+1 every step, plus that level's hierarchical smallest subnet (HSS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...arch import Arch
from ...space import SearchSpace
from ..config import SamplerConfig, check_config
from ..levels import next_level_index
from ..plan import PlannedSubnet, StepPlan
from ..subspace import sample_dominating
from .base import EPOCH_END, SUBNETS, WALK, SamplerStateError, SubnetSampler

#: A step's level subnets and the indices of those whose clean-batch CE `observe` wants.
LevelSubnets = tuple[list[PlannedSubnet], tuple[int, ...]]


class ComplexitySampler(SubnetSampler):
    """Per step, `n_uniform` (3) subnets drawn uniformly among the subnets inside [C, C + window] MFLOPs that
    dominate the level's HSS min, then that HSS min; no max subnet. The level C walks by -1/0/+1 every step,
    starting at the lowest level."""

    name = "complexity"

    def __init__(self, space: SearchSpace, config: SamplerConfig | None = None, seed: int = 0):
        super().__init__(space, config, seed)
        check_config(space, self.config)
        self.level_index = 0

    @property
    def level(self) -> float:
        return self.config.levels[self.level_index]

    def _hss(self, level_index: int) -> Arch:
        return self.config.hss_for(self.config.levels[level_index], self.space)

    def _explore(self, level_index: int, n: int, rng: np.random.Generator) -> list[Arch]:
        """`n` uniform level subnets (inside the window, dominating the level's HSS min)."""
        c = self.config.levels[level_index]
        return sample_dominating(self.space, self._hss(level_index), c, c + self.config.window, n, rng)

    def _level_subnets(self, level_index: int, epoch: int, rng: np.random.Generator) -> LevelSubnets:
        drawn = self._explore(level_index, self.config.n_uniform, rng)
        return [self._subnet(a, "uniform") for a in drawn], ()

    def sample(self, step: int, epoch: int) -> StepPlan:
        self._check_step(step)
        i = self.level_index
        subnets, feedback = self._level_subnets(i, epoch, self._rng(step, SUBNETS))
        subnets.append(self._subnet(self._hss(i), "min"))
        self.level_index = next_level_index(i, len(self.config.levels), self._rng(step, WALK))
        self.last_step = step
        return StepPlan(step, epoch, i, self.config.levels[i], tuple(subnets), feedback)

    def end_epoch(self, epoch: int) -> None:
        """The extra walk step the official trainer takes at the end of every epoch (`train_eval_supernet.py`)."""
        self.level_index = next_level_index(self.level_index, len(self.config.levels), self._rng(epoch, EPOCH_END))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "level_index": self.level_index}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        i = state.get("level_index")
        if not isinstance(i, int) or not 0 <= i < len(self.config.levels):
            raise SamplerStateError(f"sampler state: level_index {i!r} outside 0..{len(self.config.levels) - 1}")
        self.level_index = i
