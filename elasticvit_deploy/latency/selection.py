"""Which blocks to measure: the builder's selection rule, shared by `predictor build` and the benchmarks.

Given the candidate blocks (every block the space can produce), a budget and a way to measure blocks:
1. the budget is split over families in proportion to sqrt(family size) (small families such as the first conv
   and the head are covered whole or nearly);
2. half of each family's share is chosen space-filling: greedy farthest-point sampling in standardised log
   feature space, so the extremes and the middle of every dimension are measured first;
3. the rest is chosen adaptively in rounds, as nn-Meter's builder refines where its fit is worst: a committee
   (random forest on log latency) is fitted to what was measured so far, and the unmeasured blocks on which its
   trees disagree most, weighted by their predicted latency (an error on a slow block costs more ms), are
   measured next, keeping picks of one round apart from each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from .blocks import FAMILIES, Block
from .features import feature_matrix

Measure = Callable[[Sequence[Block]], Sequence[float]]
Progress = Callable[[int, int], None]


def family_quotas(candidates: Sequence[Block], budget: int) -> dict[str, int]:
    """How many blocks of each family to measure within `budget` (sum <= budget, each <= family size)."""
    sizes = {f: sum(b.family == f for b in candidates) for f in FAMILIES}
    sizes = {f: n for f, n in sizes.items() if n}
    if budget < len(sizes):
        raise ValueError(f"a budget of {budget} blocks cannot cover the {len(sizes)} block families")
    quotas = {f: 1 for f in sizes}
    left = budget - len(sizes)
    while left > 0:
        open_ = {f: np.sqrt(n) for f, n in sizes.items() if quotas[f] < n}
        if not open_:
            break
        total = sum(open_.values())
        grant = {f: int(left * w / total) for f, w in open_.items()}
        if not any(grant.values()):
            grant[max(open_, key=open_.get)] = 1  # type: ignore[arg-type]
        for f, g in grant.items():
            g = min(g, sizes[f] - quotas[f])
            quotas[f] += g
            left -= g
    return quotas


def _space(blocks: Sequence[Block], family: str) -> np.ndarray:
    X = np.log1p(feature_matrix(blocks, family))
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)


def farthest_points(X: np.ndarray, k: int, chosen: Sequence[int], rng: np.random.Generator) -> list[int]:
    """Greedy farthest-point picks of `k` rows of X, given the rows already `chosen`."""
    picks: list[int] = []
    if not len(chosen):
        first = int(rng.integers(len(X)))
        picks.append(first)
        chosen = [first]
    dist = np.min(((X[:, None, :] - X[None, list(chosen), :]) ** 2).sum(-1), axis=1)
    while len(picks) < k and dist.max() > 0:
        nxt = int(np.argmax(dist))
        picks.append(nxt)
        dist = np.minimum(dist, ((X - X[nxt]) ** 2).sum(-1))
    return picks[:k]


def _committee_scores(X: np.ndarray, measured: list[int], y_ms: np.ndarray, seed: int) -> np.ndarray:
    """Tree disagreement (std of log ms) x predicted ms, for every row of X."""
    forest = RandomForestRegressor(n_estimators=60, max_features=0.6, random_state=seed)
    forest.fit(X[measured], np.log(y_ms))
    per_tree = np.stack([t.predict(X) for t in forest.estimators_])
    return per_tree.std(axis=0) * np.exp(per_tree.mean(axis=0))


def choose_and_measure(candidates: Sequence[Block], budget: int, measure: Measure, *, seed: int = 0,
                       rounds: int = 4, progress: Progress | None = None
                       ) -> tuple[list[Block], np.ndarray]:
    """Measure at most `budget` of `candidates` by the rule above; returns the measured blocks and their ms."""
    rng = np.random.default_rng(seed)
    quotas = family_quotas(candidates, budget)
    by_family = {f: [b for b in candidates if b.family == f] for f in quotas}
    spaces = {f: _space(bs, f) for f, bs in by_family.items()}
    chosen: dict[str, list[int]] = {f: [] for f in quotas}
    ms: dict[str, list[float]] = {f: [] for f in quotas}
    done = 0

    def run(family: str, picks: list[int]) -> None:
        nonlocal done
        if not picks:
            return
        values = np.asarray(measure([by_family[family][i] for i in picks]), dtype=np.float64)
        chosen[family] += picks
        ms[family] += list(values)
        done += len(picks)
        if progress is not None:
            progress(done, sum(quotas.values()))

    for f, q in quotas.items():  # space-filling half
        run(f, farthest_points(spaces[f], max(1, q // 2) if q < len(by_family[f]) else q, [], rng))
    for r in range(rounds):  # adaptive rest
        for f, q in quotas.items():
            left = q - len(chosen[f])
            take = left if r == rounds - 1 else -(-left // (rounds - r))
            if take <= 0:
                continue
            X = spaces[f]
            if len(chosen[f]) >= 4:
                score = _committee_scores(X, chosen[f], np.asarray(ms[f]), seed + r)
            else:
                score = rng.random(len(X))
            score[chosen[f]] = -np.inf
            picks: list[int] = []
            order = np.argsort(-score)
            # keep a round's picks apart: skip a candidate too close to one picked in this round
            radius = 0.25 * np.median(np.sqrt(((X - X.mean(0)) ** 2).sum(-1)))
            for i in order:
                if len(picks) == take or not np.isfinite(score[i]):
                    break
                if all(((X[i] - X[j]) ** 2).sum() > radius ** 2 for j in picks):
                    picks.append(int(i))
            if len(picks) < take:  # not enough far-apart candidates: fill by score
                rest = [int(i) for i in order if int(i) not in picks and np.isfinite(score[i])]
                picks += rest[:take - len(picks)]
            run(f, picks)
    blocks = [by_family[f][i] for f in quotas for i in chosen[f]]
    return blocks, np.concatenate([np.asarray(ms[f]) for f in quotas])
