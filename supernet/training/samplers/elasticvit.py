"""ElasticViT's sampling: the paper's complexity-aware plus performance-aware sampling (official `models/model.py`:
memory banks, `bank_arch_update`, `bank_loss_update`, `_importance_comparison`).

Deviation: the official code samples, trains and (if explored) inserts the step's uniform subnets one after the
other, so a later subnet of a step sees the bank grown by an earlier one. Here a step is planned at once and
`observe` inserts afterwards, so the exploit and preference thresholds use the bank as it was at the start of the
step. The CE values are the same (all subnets of a step see the same weights: one optimizer step per step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...arch import Arch
from ...flops import arch_mflops
from ...sampling import min_arch
from ...space import SearchSpace
from ...validation import check_arch
from ..bank import MemoryBank
from ..config import SamplerConfig
from ..plan import PlannedSubnet, StepPlan
from ..preference import pick_preferred
from .base import SamplerStateError, Scorer
from .complexity import ComplexitySampler, LevelSubnets


class ElasticViTSampler(ComplexitySampler):
    """Complexity- plus performance-aware sampling.

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

    def _level_subnets(self, level_index: int, epoch: int, rng: np.random.Generator) -> LevelSubnets:
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
            sub, ce = plan.subnets[i], ce_losses[i]
            if sub.role == "uniform" and not sub.from_bank and sub.mflops <= limit and ce is not None:
                self.banks[plan.level_index].insert(sub.arch, -float(ce))

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
        kept = [(e.arch, -float(ce)) for e, ce in zip(bank.entries, ce_losses, strict=True)
                if arch_mflops(e.arch, self.space) <= limit]
        new = MemoryBank(bank.capacity)
        for arch, score in kept:
            new.insert(arch, score)
        self.banks[level_index] = new

    def rescore_banks(self, level_indices: Sequence[int], score: Scorer) -> None:
        """Re-score the banks of `level_indices` (`rescore`), with one call of `score` for all their archs."""
        jobs = [(i, a) for i in level_indices for a in self.bank_archs(i)]
        if not jobs:
            return
        values = list(score([a for _, a in jobs]))
        for i in level_indices:
            self.rescore(i, [v for (j, _), v in zip(jobs, values, strict=True) if j == i])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "banks": [b.to_list() for b in self.banks]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        banks_state = state.get("banks")
        if not isinstance(banks_state, list) or len(banks_state) != len(self.config.levels):
            raise SamplerStateError(f"sampler state: {len(banks_state) if isinstance(banks_state, list) else 'no'} "
                                    f"banks for {len(self.config.levels)} levels")
        banks = [MemoryBank.from_list(self.config.bank_capacity(c), data)
                 for c, data in zip(self.config.levels, banks_state, strict=True)]
        for b in banks:
            for e in b.entries:
                check_arch(e.arch, self.space)
        self.banks = banks
