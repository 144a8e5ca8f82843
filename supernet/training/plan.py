"""What a sampler hands the trainer for one step: the subnets to train, each with its role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..arch import Arch

Role = Literal["max", "uniform", "min"]


@dataclass(frozen=True)
class PlannedSubnet:
    """One subnet of a step. `from_bank`: drawn from the memory bank (exploitation), not explored."""

    arch: Arch
    role: Role
    mflops: float
    from_bank: bool = False


@dataclass(frozen=True)
class StepPlan:
    """The subnets of training step `step`, in training order.

    level_index/level: the complexity level of the step (None for the sandwich baseline). feedback: indices of the
    subnets whose clean-batch CE `observe` uses (the trainer need not compute CE for the others).
    """

    step: int
    epoch: int
    level_index: int | None
    level: float | None
    subnets: tuple[PlannedSubnet, ...]
    feedback: tuple[int, ...] = ()

    @property
    def archs(self) -> tuple[Arch, ...]:
        return tuple(s.arch for s in self.subnets)

    @property
    def roles(self) -> tuple[Role, ...]:
        return tuple(s.role for s in self.subnets)
