"""The protocol every subnet sampling strategy follows (`SubnetSampler`), and its saved state.

Determinism: the draws of step s come only from ``np.random.default_rng([seed, s, stream])`` (stream 0: the level
walk, 1: the subnets) and the end-of-epoch walk step from ``[seed, epoch, 2]``; never from global RNG state. Every
DDP rank therefore draws the same subnets (the official code gets this by re-seeding every RNG with the step, official
`process.py`), and a sampler resumed from `state_dict` draws exactly what an uninterrupted one draws.

A strategy is one module of this package with its test, listed in `supernet.training.registry`; every registered
strategy must pass the contract tests (tests/test_training_sampler_contract.py).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ...arch import Arch, shorten
from ...documents import DocumentError, check_header, header
from ...flops import arch_mflops
from ...space import SearchSpace
from ..config import SamplerConfig, default_config
from ..plan import PlannedSubnet, Role, StepPlan

STATE_KIND, STATE_VERSION = "sampler-state", 1
#: The same state as written before the header convention (checkpoints of earlier releases still resume).
LEGACY_STATE_FORMAT = "elasticvit-deploy/subnet-sampler/1"
WALK, SUBNETS, EPOCH_END = 0, 1, 2  # the RNG streams of a step (see the module docstring)

#: The clean-batch CE of each arch (on the current batch, averaged over ranks), as the trainer computes it.
Scorer = Callable[[Sequence[Arch]], Sequence[float]]


class SamplerStateError(DocumentError):
    """A saved sampler state that does not belong to this sampler (strategy, space, seed or configuration)."""


class SubnetSampler(ABC):
    """A subnet sampling strategy: `sample` plans a step, `observe` feeds back per-subnet clean-batch CE, and the
    hooks `rescore_banks` and `end_epoch` (no-ops here) let a strategy keep state across steps."""

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, config: SamplerConfig | None = None, seed: int = 0):
        self.space = space
        self.config = config if config is not None else default_config(space)
        self.seed = int(seed)
        self.last_step: int | None = None

    def _rng(self, key: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, key, stream])

    def _subnet(self, arch: Arch, role: Role, from_bank: bool = False) -> PlannedSubnet:
        return PlannedSubnet(arch, role, arch_mflops(arch, self.space), from_bank)

    def _check_step(self, step: int) -> None:
        if step < 0 or (self.last_step is not None and step <= self.last_step):
            raise ValueError(f"step {step} does not follow the last sampled step {self.last_step}")

    @abstractmethod
    def sample(self, step: int, epoch: int) -> StepPlan:
        """The subnets of training step `step` (steps must increase) in epoch `epoch`."""

    def observe(self, plan: StepPlan, ce_losses: Sequence[float | None]) -> None:
        """Feed back the clean-batch CE of the plan's subnets (aligned with `plan.subnets`; only the entries
        listed in `plan.feedback` are read and must be finite)."""
        if len(ce_losses) != len(plan.subnets):
            raise ValueError(f"{len(ce_losses)} CE values for {len(plan.subnets)} subnets")
        for i in plan.feedback:
            value = ce_losses[i]
            if value is None or not math.isfinite(float(value)):
                raise ValueError(f"subnet {i} needs a finite CE value, got {value!r}")

    def rescore_banks(self, level_indices: Sequence[int], score: Scorer) -> None:  # noqa: B027 (a hook: no-op here)
        """Hook: re-score what the strategy ranks by clean-batch CE (the memory banks of `level_indices`), asking
        `score` once for the CE of every arch concerned. The trainer calls it at the first batch of every epoch
        (all levels) and at the quarter-epoch steps that explore (the step's level). Here: nothing to re-score."""

    def end_epoch(self, epoch: int) -> None:  # noqa: B027 (a hook: no-op here)
        """Hook called once at the end of every epoch (the complexity-aware samplers take an extra walk step)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for exact resume, under the ``sampler-state`` header."""
        return {**header(STATE_KIND, STATE_VERSION), "strategy": self.name, "space": self.space.name,
                "space_fingerprint": self.space.fingerprint, "seed": self.seed,
                "config": self.config.to_dict(), "last_step": self.last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict` taken from a sampler of the same strategy, space, seed and config; raises
        `DocumentError` (`SamplerStateError` for a state of another sampler)."""
        if state.get("format") != LEGACY_STATE_FORMAT:
            check_header(state, STATE_KIND, STATE_VERSION, "sampler state")
        expect = json.loads(json.dumps(self.state_dict()))
        for key in ("strategy", "space_fingerprint", "seed", "config"):
            if state.get(key) != expect[key]:
                raise SamplerStateError(f"sampler state does not match this sampler: {key} is "
                                        f"{shorten(state.get(key))}, expected {shorten(expect[key])}")
        self.last_step = state["last_step"]
