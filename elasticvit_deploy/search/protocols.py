"""What the search asks of its two parts: a latency oracle (the constraint) and an objective (what it maximises).

Both have an `identity()`: a JSON-able record of what their answers depend on, by content only (never where a
file lies), saved with a search's state so that a resumed search continues only with the same answers. Both are
runtime-checkable (every member present), which the contract tests use.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["LatencyOracle", "Objective"]


@runtime_checkable
class LatencyOracle(Protocol):
    """Latency of encoded archs, in ms, for one device."""

    kind: str        # labels its figures in the result: "table", "learned" (predicted) or "live" (measured)
    expensive: bool  # each answer costs a measurement: the evolution asks it only as needed, in small batches

    def latency_ms(self, matrix: np.ndarray) -> np.ndarray:
        """The latency of every row of an encoded batch."""
        ...

    def predicted_ms(self, matrix: np.ndarray) -> list[float | None]:
        """A predictor's latency of every row (None where no predictor answers): the result's `predicted_ms`."""
        ...

    def measured_ms(self, latency: np.ndarray) -> list[float | None]:
        """Which of the latencies it gave are measurements (None for a prediction): the result's `measured_ms`."""
        ...

    def identity(self) -> dict[str, Any]:
        """What its answers depend on, by content (a saved search made with another identity is not reused)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What answered latency, for the result document."""
        ...


@runtime_checkable
class Objective(Protocol):
    """Higher is better. An objective may learn as the search goes (an accuracy predictor that refits on subnets it
    evaluates for real in `refine`); its `state_dict` is saved with the search so a resumed run learns the same."""

    name: str
    warning: str | None  # what the user must know about its scores (a proxy, not accuracy), or None

    def begin(self, population: np.ndarray) -> None:
        """Called once with a search's first population, before it is scored."""
        ...

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """The score of every row of an encoded batch."""
        ...

    def refine(self, population: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The population's scores after learning from it (each generation's selection)."""
        ...

    def finalize(self, population: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The final population's scores, as exact as the objective can make them."""
        ...

    def score_source(self, row: np.ndarray) -> str:
        """Where one subnet's score comes from (e.g. "supernet" for a real evaluation, "predicted")."""
        ...

    def score_fields(self, row: np.ndarray, score: float) -> dict[str, Any]:
        """One subnet's score as the result document reports it (its own keys)."""
        ...

    def describe(self) -> dict[str, Any]:
        """The objective, for the result document."""
        ...

    def identity(self) -> dict[str, Any]:
        """What its scores depend on (the weights and data, by content)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What it has learned so far (JSON-able), saved with the search's state."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved `state_dict`."""
        ...
