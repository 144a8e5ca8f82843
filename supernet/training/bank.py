"""The per-level memory bank of the paper's performance-aware sampling (official `models/model.py`, `bank_arch_update`).

Entries are ``(arch, score)`` with score = -CE, so higher is better. Below capacity a new entry is appended; when
full, the worst entry (lowest score, first on ties) is replaced only if the new score is strictly higher.
Exploitation draws an entry with probability softmax(scores). Like the official code, duplicates are not merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arch import Arch


@dataclass(frozen=True)
class BankEntry:
    arch: Arch
    score: float


class MemoryBank:
    """A bounded list of (arch, -CE) entries for one complexity level."""

    def __init__(self, capacity: int, entries: Sequence[BankEntry] = ()):
        if capacity < 1:
            raise ValueError(f"bank capacity must be >= 1, got {capacity}")
        if len(entries) > capacity:
            raise ValueError(f"{len(entries)} entries exceed the bank capacity {capacity}")
        self.capacity = capacity
        self.entries: list[BankEntry] = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def half_full(self) -> int:
        """capacity // 2: exploitation needs more entries than this, the preference rule at least this many."""
        return self.capacity // 2

    def insert(self, arch: Arch, score: float) -> bool:
        """Add an entry, or replace the worst one if full and `score` beats it. True when the bank changed."""
        score = float(score)
        if not np.isfinite(score):
            raise ValueError(f"bank score must be finite, got {score}")
        if len(self.entries) < self.capacity:
            self.entries.append(BankEntry(arch, score))
            return True
        worst = self.worst_index()
        if self.entries[worst].score < score:
            self.entries[worst] = BankEntry(arch, score)
            return True
        return False

    def worst_index(self) -> int:
        return int(np.argmin([e.score for e in self.entries]))

    def best(self) -> BankEntry:
        """The entry with the highest score (first on ties); raises IndexError when empty."""
        if not self.entries:
            raise IndexError("the bank is empty")
        return self.entries[int(np.argmax([e.score for e in self.entries]))]

    def probabilities(self) -> np.ndarray:
        """softmax(scores), the official `weighted_prob` draw."""
        s = np.asarray([e.score for e in self.entries], dtype=np.float64)
        w = np.exp(s - s.max())
        return w / w.sum()

    def draw(self, rng: np.random.Generator) -> Arch:
        """One arch drawn with probability softmax(scores)."""
        if not self.entries:
            raise IndexError("cannot draw from an empty bank")
        return self.entries[int(rng.choice(len(self.entries), p=self.probabilities()))].arch

    def to_list(self) -> list[dict[str, Any]]:
        return [{"arch": e.arch.to_dict(), "score": e.score} for e in self.entries]

    @classmethod
    def from_list(cls, capacity: int, data: Sequence[dict[str, Any]]) -> MemoryBank:
        return cls(capacity, [BankEntry(Arch.from_dict(d["arch"]), float(d["score"])) for d in data])
