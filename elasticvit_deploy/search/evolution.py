"""Evolutionary search under a latency budget: the official code's search (`search_subnet_via_flops.py` of
ElasticViT's release), latency-constrained instead of FLOPs-constrained, with that script's bugs fixed (its depth
choices exclude the maximum, its width steps are inverted, its resolution mutation is a no-op).

Per generation: the top `parents` candidates (by objective) breed `mutations` children (each dimension redrawn with
probability `mutation_prob`, depths with `depth_prob`) and `crossovers` children; only children that are new and
within the budget are kept; the next population is the parents plus the children. The whole population lives in
the fixed-width encoding of `supernet.encoding`, so operators, latency and FLOPs are vectorised numpy.

Deterministic for a seed, and resumable: after every generation the state (population, everything ever scored,
the random generator) is written atomically, and a run that finds a state continues from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supernet import encoding as enc
from supernet.sampling import crossover_many, min_arch, mutate_many, sample_uniform
from supernet.space import SearchSpace

from .errors import BudgetError, ConfigError
from .protocols import LatencyOracle, Objective
from .state import SearchState, check_settings

__all__ = ["Evolution", "EvolutionConfig", "rank"]


@dataclass(frozen=True)
class EvolutionConfig:
    """The official numbers (`search_subnet_via_flops.py`: `max_epochs`, `select_num`, `m_prob`, `s_prob`): 512
    initial, top-256 parents, 128 + 128 children, 40 generations."""

    population: int = 512
    parents: int = 256
    mutations: int = 128
    crossovers: int = 128
    generations: int = 40
    mutation_prob: float = 0.2
    depth_prob: float = 0.4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("population", "parents"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("mutations", "crossovers", "generations"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        for name in ("mutation_prob", "depth_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1]")

    @property
    def candidates(self) -> int:
        """How many subnets a full run scores at most."""
        return self.population + self.generations * (self.mutations + self.crossovers)


def _keys(matrix: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(matrix, dtype=np.int64)]


def _unique_new(matrix: np.ndarray, seen: set[bytes]) -> np.ndarray:
    keep, batch = [], set()
    for i, k in enumerate(_keys(matrix)):
        if k not in seen and k not in batch:
            batch.add(k)
            keep.append(i)
    return matrix[keep]


def rank(scores: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Indices best first: higher score, then lower latency (a stable, deterministic order)."""
    return np.lexsort((latency, -scores))


class Evolution:
    """One search of `space` for the best `objective` within `budget_ms` of `oracle`."""

    def __init__(self, space: SearchSpace, oracle: LatencyOracle, budget_ms: float, objective: Objective,
                 config: EvolutionConfig = EvolutionConfig(), max_tries: int = 64):
        self.space, self.oracle, self.budget_ms = space, oracle, float(budget_ms)
        self.objective, self.config, self.max_tries = objective, config, max_tries
        self.rng = np.random.default_rng(config.seed)
        self._seen: set[bytes] = set()

    def smallest_ms(self) -> float:
        return float(self.oracle.latency_ms(enc.encode(min_arch(self.space))[None])[0])

    def _feasible(self, make: Callable[[int], np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `n` new, in-budget candidates from `make(k)` batches (k small for expensive oracles)."""
        rows, lats = [], []
        have = 0
        for _ in range(self.max_tries):
            if have >= n:
                break
            want = n - have if self.oracle.expensive else max(4 * (n - have), 256)
            cands = _unique_new(make(want), self._seen)
            if not len(cands):
                continue
            ms = self.oracle.latency_ms(cands)
            ok = ms <= self.budget_ms
            rows.append(cands[ok][:n - have])
            lats.append(ms[ok][:n - have])
            self._seen.update(_keys(rows[-1]))
            have += len(rows[-1])
        if not rows:
            return np.zeros((0, enc.n_columns(self.space)), np.int64), np.zeros(0)
        return np.concatenate(rows), np.concatenate(lats)

    def _initial(self) -> tuple[np.ndarray, np.ndarray]:
        smallest = self.smallest_ms()
        if smallest > self.budget_ms:
            raise BudgetError(f"budget {self.budget_ms:g} ms is below what the smallest subnet of {self.space.name} "
                              f"reaches ({smallest:.2f} ms on this oracle)")
        n = self.config.population
        pop, lat = self._feasible(lambda k: sample_uniform(self.space, k, self.rng), n)
        if len(pop) < n:  # a tight budget: walk out from the smallest subnet and what was found
            seeds = np.concatenate([pop, enc.encode(min_arch(self.space))[None]])
            more, more_lat = self._feasible(
                lambda k: mutate_many(seeds[self.rng.integers(0, len(seeds), k)], self.space, self.rng), n - len(pop))
            pop, lat = np.concatenate([pop, more]), np.concatenate([lat, more_lat])
        return pop, lat

    def _children(self, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        pick = lambda k: parents[self.rng.integers(0, len(parents), k)]  # noqa: E731
        mut, mut_lat = self._feasible(lambda k: mutate_many(pick(k), self.space, self.rng, c.mutation_prob,
                                                            c.depth_prob), c.mutations)
        cro, cro_lat = self._feasible(lambda k: crossover_many(pick(k), pick(k), self.space, self.rng), c.crossovers)
        return np.concatenate([mut, cro]), np.concatenate([mut_lat, cro_lat])

    def _record(self, state: SearchState, rows: np.ndarray, scores: np.ndarray, lat: np.ndarray) -> None:
        state.seen = np.concatenate([state.seen, rows])
        state.seen_scores = np.concatenate([state.seen_scores, scores])
        state.seen_latency = np.concatenate([state.seen_latency, lat])

    def _select(self, state: SearchState, rows: np.ndarray, scores: np.ndarray, lat: np.ndarray) -> None:
        scores = self.objective.refine(rows, scores)
        order = rank(scores, lat)[:self.config.parents]
        state.population, state.scores, state.latency = rows[order], scores[order], lat[order]

    def settings(self) -> dict[str, Any]:
        """What this search's results depend on; a saved state made with other settings is refused."""
        return {"budget_ms": self.budget_ms, "config": asdict(self.config), "space": self.space.fingerprint,
                "oracle": self.oracle.kind, "oracle_id": self.oracle.identity(), "objective": self.objective.name,
                "objective_id": self.objective.identity()}

    def run(self, state_path: Path | None = None, progress: Callable[[int], None] = lambda _g: None, *,
            fresh: bool = False) -> SearchState:
        """Run (or continue from the state saved at `state_path`, unless `fresh`: then that state is discarded) to
        the last generation; `progress(g)` after each generation."""
        settings = self.settings()
        if fresh and state_path is not None:
            state_path.unlink(missing_ok=True)
        if state_path is not None and state_path.is_file():
            state = SearchState.load(state_path)
            check_settings(state, settings, state_path)
            self.rng.bit_generator.state = state.rng_state
            self.objective.load_state_dict(state.objective_state)
            self._seen = set(_keys(state.seen))
        else:
            pop, lat = self._initial()
            self.objective.begin(pop)
            scores = self.objective.score(pop)
            n_cols = enc.n_columns(self.space)
            state = SearchState(0, pop, scores, lat, np.zeros((0, n_cols), np.int64), np.zeros(0), np.zeros(0), {},
                                settings)
            self._record(state, pop, scores, lat)
            self._select(state, pop, scores, lat)
            self._checkpoint(state, state_path)
        while state.generation < self.config.generations:
            kids, kid_lat = self._children(state.population)
            kid_scores = self.objective.score(kids)
            self._record(state, kids, kid_scores, kid_lat)
            self._select(state, np.concatenate([state.population, kids]),
                         np.concatenate([state.scores, kid_scores]), np.concatenate([state.latency, kid_lat]))
            state.generation += 1
            self._checkpoint(state, state_path)
            progress(state.generation)
        return state

    def _checkpoint(self, state: SearchState, path: Path | None) -> None:
        state.rng_state = dict(self.rng.bit_generator.state)
        state.objective_state = self.objective.state_dict()
        if path is not None:
            state.save(path)
