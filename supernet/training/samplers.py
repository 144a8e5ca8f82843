"""The subnet sampling strategies of supernet training: sandwich baseline, complexity-aware, and ElasticViT's
complexity- plus performance-aware sampling (spec 4.1-4.3).

Determinism: the draws of step s come only from ``np.random.default_rng([seed, s, stream])`` (stream 0: the level
walk, 1: the subnets) and the end-of-epoch walk step from ``[seed, epoch, 2]``; never from global RNG state. Every
DDP rank therefore draws the same subnets (the official code gets this by re-seeding every RNG with the step,
spec 4.1), and a sampler resumed from `state_dict` draws exactly what an uninterrupted one draws.

Deviation: the official code samples, trains and (if explored) inserts the step's uniform subnets one after the
other, so a later subnet of a step sees the bank grown by an earlier one. Here a step is planned at once and
`observe` inserts afterwards, so the exploit and preference thresholds use the bank as it was at the start of the
step. The CE values are the same (all subnets of a step see the same weights: one optimizer step per step).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..arch import Arch
from ..flops import arch_mflops
from ..sampling import archs, max_arch, min_arch, sample_uniform
from ..space import SearchSpace
from ..validation import check_arch
from .bank import MemoryBank
from .config import SamplerConfig, check_config, check_sandwich, default_config
from .levels import next_level_index
from .plan import PlannedSubnet, Role, StepPlan
from .preference import pick_preferred
from .subspace import sample_dominating

STATE_FORMAT = "elasticvit-deploy/subnet-sampler/1"
_WALK, _SUBNETS, _EPOCH_END = 0, 1, 2
_Uniform = tuple[list[PlannedSubnet], tuple[int, ...]]  # a step's level subnets and the indices wanting CE


class SubnetSampler(ABC):
    """A subnet sampling strategy: `sample` plans a step, `observe` feeds back per-subnet clean-batch CE."""

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
            if ce_losses[i] is None or not math.isfinite(float(ce_losses[i])):  # type: ignore[arg-type]
                raise ValueError(f"subnet {i} needs a finite CE value, got {ce_losses[i]!r}")

    def end_epoch(self, epoch: int) -> None:
        """Hook called once at the end of every epoch (the complexity-aware samplers take an extra walk step)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for exact resume."""
        return {"format": STATE_FORMAT, "strategy": self.name, "space": self.space.name,
                "space_fingerprint": self.space.fingerprint, "seed": self.seed,
                "config": self.config.to_dict(), "last_step": self.last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict` taken from a sampler of the same strategy, space, seed and config."""
        expect = json.loads(json.dumps(self.state_dict()))
        for key in ("format", "strategy", "space_fingerprint", "seed", "config"):
            if state.get(key) != expect[key]:
                raise ValueError(f"sampler state does not match this sampler: {key} is {state.get(key)!r}, "
                                 f"expected {expect[key]!r}")
        self.last_step = state["last_step"]


class SandwichSampler(SubnetSampler):
    """Baseline sandwich rule: the largest subnet, `sandwich_uniform` (2) uniform random subnets, the smallest."""

    name = "sandwich"

    def __init__(self, space: SearchSpace, config: SamplerConfig | None = None, seed: int = 0):
        super().__init__(space, config, seed)
        check_sandwich(self.config)

    def sample(self, step: int, epoch: int) -> StepPlan:
        self._check_step(step)
        rng = self._rng(step, _SUBNETS)
        rand = archs(sample_uniform(self.space, self.config.sandwich_uniform, rng), self.space)
        subnets = ([self._subnet(max_arch(self.space), "max")] + [self._subnet(a, "uniform") for a in rand]
                   + [self._subnet(min_arch(self.space), "min")])
        self.last_step = step
        return StepPlan(step, epoch, None, None, tuple(subnets))


class ComplexitySampler(SubnetSampler):
    """Complexity-aware sampling (spec 4.1-4.2): per step, `n_uniform` (3) subnets drawn uniformly among the
    subnets inside [C, C + window] MFLOPs that dominate the level's HSS min, then that HSS min; no max subnet.
    The level C walks by -1/0/+1 every step, starting at the lowest level."""

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

    def _uniform(self, level_index: int, epoch: int, rng: np.random.Generator) -> _Uniform:
        drawn = self._explore(level_index, self.config.n_uniform, rng)
        return [self._subnet(a, "uniform") for a in drawn], ()

    def sample(self, step: int, epoch: int) -> StepPlan:
        self._check_step(step)
        i = self.level_index
        subnets, feedback = self._uniform(i, epoch, self._rng(step, _SUBNETS))
        subnets.append(self._subnet(self._hss(i), "min"))
        self.level_index = next_level_index(i, len(self.config.levels), self._rng(step, _WALK))
        self.last_step = step
        return StepPlan(step, epoch, i, self.config.levels[i], tuple(subnets), feedback)

    def end_epoch(self, epoch: int) -> None:
        """The extra walk step the official trainer takes at the end of every epoch (spec 4.1)."""
        self.level_index = next_level_index(self.level_index, len(self.config.levels), self._rng(epoch, _EPOCH_END))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "level_index": self.level_index}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        i = int(state["level_index"])
        if not 0 <= i < len(self.config.levels):
            raise ValueError(f"level_index {i} outside 0..{len(self.config.levels) - 1}")
        self.level_index = i


class ElasticViTSampler(ComplexitySampler):
    """Complexity- plus performance-aware sampling (spec 4.3).

    Each uniform subnet of a step is exploited (drawn from the level's bank with probability softmax(-CE)) with
    probability q(epoch), but only when the bank holds more than capacity // 2 entries; otherwise it is explored:
    the first level-C candidate while the bank holds fewer than capacity // 2 entries, else the candidate with the
    minimum preference diff among `n_candidates` (5) against the anchor (the best subnet of the lowest level's bank;
    the global min subnet at the lowest level or when that bank is empty). Explored subnets with FLOPs <= C + window
    enter the bank through `observe` with score -CE.
    """

    name = "elasticvit"

    def __init__(self, space: SearchSpace, config: SamplerConfig | None = None, seed: int = 0):
        super().__init__(space, config, seed)
        self.banks = [MemoryBank(self.config.bank_capacity(c)) for c in self.config.levels]

    def anchor(self, level_index: int) -> Arch:
        """The preference rule's anchor for `level_index`."""
        if level_index == 0 or not self.banks[0]:
            return min_arch(self.space)
        return self.banks[0].best().arch

    def _uniform(self, level_index: int, epoch: int, rng: np.random.Generator) -> _Uniform:
        bank, k = self.banks[level_index], self.config.n_candidates
        can_exploit = len(bank) > bank.half_full
        exploit = [bool(u < self.config.q(epoch)) and can_exploit for u in rng.random(self.config.n_uniform)]
        per = k if len(bank) >= bank.half_full else 1
        cands = self._explore(level_index, per * exploit.count(False), rng) if not all(exploit) else []
        anchor = self.anchor(level_index)
        subnets: list[PlannedSubnet] = []
        feedback: list[int] = []
        for take_bank in exploit:
            if take_bank:
                subnets.append(self._subnet(bank.draw(rng), "uniform", from_bank=True))
                continue
            group, cands = cands[:per], cands[per:]
            pick = pick_preferred(group, anchor, self.space) if per > 1 else 0
            feedback.append(len(subnets))
            subnets.append(self._subnet(group[pick], "uniform"))
        return subnets, tuple(feedback)

    def observe(self, plan: StepPlan, ce_losses: Sequence[float | None]) -> None:
        """Insert the plan's explored subnets (FLOPs <= C + window) into the level's bank with score -CE."""
        super().observe(plan, ce_losses)
        if plan.level_index is None:
            raise ValueError("this plan has no complexity level (not from a complexity-aware sampler)")
        limit = self.config.levels[plan.level_index] + self.config.window
        for i in plan.feedback:
            sub = plan.subnets[i]
            if sub.role == "uniform" and not sub.from_bank and sub.mflops <= limit:
                self.banks[plan.level_index].insert(sub.arch, -float(ce_losses[i]))  # type: ignore[arg-type]

    def bank_archs(self, level_index: int) -> list[Arch]:
        """The archs of a level's bank, in order (evaluate their CE for `rescore`)."""
        return [e.arch for e in self.banks[level_index].entries]

    def rescore(self, level_index: int, ce_losses: Sequence[float]) -> None:
        """Replace the scores of a level's bank by -CE (aligned with `bank_archs`), dropping entries whose FLOPs
        exceed C + window (official `bank_loss_update`)."""
        bank = self.banks[level_index]
        if len(ce_losses) != len(bank):
            raise ValueError(f"{len(ce_losses)} CE values for a bank of {len(bank)} entries")
        limit = self.config.levels[level_index] + self.config.window
        kept = [(e.arch, -float(ce)) for e, ce in zip(bank.entries, ce_losses)
                if arch_mflops(e.arch, self.space) <= limit]
        new = MemoryBank(bank.capacity)
        for arch, score in kept:
            new.insert(arch, score)
        self.banks[level_index] = new

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "banks": [b.to_list() for b in self.banks]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if len(state["banks"]) != len(self.config.levels):
            raise ValueError(f"{len(state['banks'])} banks for {len(self.config.levels)} levels")
        banks = [MemoryBank.from_list(self.config.bank_capacity(c), data)
                 for c, data in zip(self.config.levels, state["banks"])]
        for b in banks:
            for e in b.entries:
                check_arch(e.arch, self.space)
        self.banks = banks
