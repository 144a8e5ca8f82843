"""The search's result document (``result.json``, and `search --json`): an ``elasticvit-deploy.search-result``
document with the chosen subnet of every (device, budget) pair, each figure labelled predicted or measured, and the
accuracy-latency Pareto front of every device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supernet.atomic import write_json_atomic
from supernet.documents import header

__all__ = ["RESULT_KIND", "RESULT_VERSION", "Choice", "FrontPoint", "SearchResult"]

RESULT_KIND = "search-result"
RESULT_VERSION = 1


@dataclass
class Choice:
    """The subnet chosen for one device within one budget, or none (`arch` None; the notes say why).

    `predicted_ms` is a predictor's latency, `measured_ms` a measurement's (on `measured_on`, read as its
    `statistic`); `score` is the objective's figures (``accuracy`` and ``accuracy_source``, or ``proxy``);
    `model` the exported file (`--verify`)."""

    device: str
    budget_ms: float
    arch: dict[str, Any] | None = None
    mflops: float | None = None
    predicted_ms: float | None = None
    measured_ms: float | None = None
    oracle: str | None = None
    score: dict[str, Any] = field(default_factory=dict)
    measured_on: dict[str, Any] | None = None
    model: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "budget_ms": self.budget_ms, "arch": self.arch, "mflops": self.mflops,
                "predicted_ms": self.predicted_ms, "measured_ms": self.measured_ms, "oracle": self.oracle,
                **self.score, "measured_on": self.measured_on, "model": self.model, "notes": list(self.notes)}


@dataclass(frozen=True)
class FrontPoint:
    """One subnet of a Pareto front: its latency (from `latency_source`, the oracle's kind) and its score (from
    `score_source`: "supernet", "predicted" or the proxy's name)."""

    arch: dict[str, Any]
    mflops: float
    latency_ms: float
    latency_source: str
    score: float
    score_source: str

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "mflops": self.mflops, "latency_ms": self.latency_ms,
                "latency_source": self.latency_source, "score": self.score, "score_source": self.score_source}


@dataclass
class SearchResult:
    """A whole search: what it searched with (`oracle` as asked, `oracles` what answered per device), the choices
    in (device, budget) order, the fronts by device, and how long each pair took."""

    space: str
    objective: dict[str, Any]
    oracle: str
    oracles: dict[str, dict[str, Any]]
    config: dict[str, Any]
    choices: list[Choice]
    pareto: dict[str, list[FrontPoint]]
    timing: dict[str, Any]
    warning: str | None = None

    @property
    def complete(self) -> bool:
        """Whether every pair has a chosen subnet."""
        return all(c.arch is not None for c in self.choices)

    def to_dict(self) -> dict[str, Any]:
        return {**header(RESULT_KIND, RESULT_VERSION), "space": self.space, "objective": self.objective,
                "oracle": self.oracle, "oracles": self.oracles, "config": self.config,
                "choices": [c.to_dict() for c in self.choices],
                "pareto": {device: [p.to_dict() for p in front] for device, front in self.pareto.items()},
                "timing": self.timing, "warning": self.warning}

    def write(self, path: Path) -> Path:
        """Write the document to `path` atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_dict())
        return path
