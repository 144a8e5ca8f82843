"""What the search maximises: a trained supernet's accuracy, or (without a checkpoint) a FLOPs proxy.

`SupernetAccuracy` evaluates subnets for real (BN recalibration + top-1 on a held-out split, through a
`SubnetEvaluator`, or a `ShardedEvaluator` under torchrun) only where it matters: a seeded sample of the first
population, then every generation the best few candidates not yet evaluated, then the final top. Every other
candidate is ranked by an accuracy predictor (scikit-learn, on the encoded arch and its FLOPs) refitted on all real
evaluations so far; its rank correlation (Kendall tau, cross-validated) is reported. Real accuracies are cached on
disk as each one arrives, so a resumed, repeated or killed search never evaluates a subnet twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy.stats import kendalltau
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.flops import batch_mflops
from supernet.space import SearchSpace
from supernet.training.evaluate import EvalResult

PROXY_WARNING = ("no --checkpoint: ranking subnets by FLOPs (the most MFLOPs that fit the budget), a proxy for "
                 "accuracy, not accuracy")


class FlopsProxy:
    """Without a trained supernet: more FLOPs within the budget is taken as better (documented proxy)."""

    name = "mflops"
    warning: str | None = PROXY_WARNING

    def __init__(self, space: SearchSpace):
        self.space = space

    def begin(self, population: np.ndarray) -> None:
        pass

    def score(self, matrix: np.ndarray) -> np.ndarray:
        return batch_mflops(matrix, self.space)

    def refine(self, population: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return scores

    def finalize(self, population: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return scores

    def score_source(self, row: np.ndarray) -> str:
        return self.name

    def score_fields(self, row: np.ndarray, score: float) -> dict[str, Any]:
        return {"proxy": {"name": self.name, "value": round(float(score), 3)}}

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "warning": PROXY_WARNING}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _features(matrix: np.ndarray, space: SearchSpace) -> np.ndarray:
    m = np.atleast_2d(np.asarray(matrix, dtype=np.int64))
    return np.column_stack([m.astype(np.float64), batch_mflops(m, space)])


def _key(row: np.ndarray) -> str:
    return ",".join(str(int(v)) for v in row)


class ArchEvaluator(Protocol):
    """What `SupernetAccuracy` evaluates with: a `SubnetEvaluator`, or a `ShardedEvaluator` over torchrun ranks."""

    @property
    def space(self) -> SearchSpace: ...

    def source(self) -> str: ...

    def evaluate_many(self, archs: Sequence[Arch],
                      progress: Callable[[EvalResult], None] | None = None) -> list[EvalResult]: ...


class AccuracyCache:
    """Real top-1 of evaluated subnets, one JSON line each (appended and flushed as they come). `tag` names the
    weights and data; lines written under another tag (another checkpoint) are ignored."""

    def __init__(self, path: Path | None, tag: str = ""):
        self.path, self.tag = path, tag
        self.top1: dict[str, float] = {}
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    if row.get("tag", "") == tag:
                        self.top1[row["key"]] = float(row["top1"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: that subnet is evaluated again

    def add(self, key: str, top1: float, extra: dict[str, Any]) -> None:
        self.top1[key] = top1
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "top1": top1, "tag": self.tag, **extra}) + "\n")
                f.flush()


class SupernetAccuracy:
    """Top-1 of a trained supernet's subnets, evaluated for real on a budget and predicted for the rest."""

    name = "accuracy"
    warning: str | None = None

    def __init__(self, evaluator: ArchEvaluator, cache: AccuracyCache, *, initial: int = 24,
                 per_generation: int = 2, final: int = 5, seed: int = 0,
                 on_evaluate: Callable[[float], None] = lambda _t: None):
        self.evaluator, self.space, self.cache = evaluator, evaluator.space, cache
        self.initial, self.per_generation, self.final, self.seed = initial, per_generation, final, seed
        self.on_evaluate = on_evaluate
        self.evaluated: list[str] = []  # in the order the search asked: the predictor's training set
        self.model: Any = None
        self.model_name = "none"
        self.cv_tau: float | None = None

    # real evaluations -------------------------------------------------------------------------------------------
    def evaluate_rows(self, rows: np.ndarray) -> None:
        """Evaluate `rows` for real, those not cached yet in one `evaluate_many` call (sharded over the ranks of a
        torchrun job), each result cached as it arrives; then refit the accuracy predictor."""
        keys = [_key(r) for r in rows]
        todo = {k: r for k, r in zip(keys, rows, strict=True) if k not in self.cache.top1}
        pending = iter(todo)  # results come back in the order of the archs asked

        def record(result: EvalResult) -> None:
            self.cache.add(next(pending), result.top1, {"arch": result.arch.to_dict(),
                                                        "mflops": round(result.mflops, 3)})
            self.on_evaluate(result.top1)

        if todo:
            self.evaluator.evaluate_many([enc.decode(r, self.space) for r in todo.values()], progress=record)
        for k in keys:
            if k not in self.evaluated:
                self.evaluated.append(k)
        self._fit()

    # the accuracy predictor -------------------------------------------------------------------------------------
    def _training_set(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array([[int(v) for v in k.split(",")] for k in self.evaluated], dtype=np.int64)
        return _features(rows, self.space), np.array([self.cache.top1[k] for k in self.evaluated])

    def _candidates(self) -> dict[str, Any]:
        return {"ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
                "random_forest": RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=self.seed)}

    def _cv_tau(self, model: Any, x: np.ndarray, y: np.ndarray) -> float:
        pred = np.zeros_like(y)
        for train, test in KFold(5, shuffle=True, random_state=self.seed).split(x):
            pred[test] = clone(model).fit(x[train], y[train]).predict(x[test])
        tau = kendalltau(pred, y).statistic
        return float(tau) if np.isfinite(tau) else 0.0

    def _fit(self) -> None:
        x, y = self._training_set()
        if len(y) < 2:
            return
        if len(y) >= 10:
            taus = {name: self._cv_tau(m, x, y) for name, m in self._candidates().items()}
            self.model_name = max(taus, key=lambda k: taus[k])
            self.cv_tau = taus[self.model_name]
        else:
            self.model_name = "ridge"
        self.model = self._candidates()[self.model_name].fit(x, y)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if self.model is None:
            return batch_mflops(matrix, self.space) * 1e-9  # before any evaluation: FLOPs order, tiny values
        return self.model.predict(_features(matrix, self.space))

    # Objective protocol -----------------------------------------------------------------------------------------
    def begin(self, population: np.ndarray) -> None:
        """Evaluate a seeded sample of a search's first population for real, and fit."""
        pick = np.random.default_rng(self.seed).permutation(len(population))[:self.initial]
        self.evaluate_rows(population[np.sort(pick)])

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Real top-1 where evaluated, else predicted."""
        matrix = np.atleast_2d(matrix)
        if not len(matrix):
            return np.zeros(0)
        out = self.predict(matrix)
        done = set(self.evaluated)
        for i, row in enumerate(matrix):
            key = _key(row)
            if key in done:
                out[i] = self.cache.top1[key]
        return out

    def _evaluate_best(self, population: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        order = np.lexsort((np.arange(len(scores)), -scores))
        done = set(self.evaluated)
        todo = [i for i in order if _key(population[i]) not in done][:k]
        if todo:
            self.evaluate_rows(population[todo])
        return self.score(population)

    def refine(self, population: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Evaluate for real the best `per_generation` candidates not yet evaluated, refit, and re-score."""
        return self._evaluate_best(population, scores, self.per_generation)

    def finalize(self, population: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Evaluate for real until the final top `final` are all evaluated (each refit can promote another
        candidate), so the winner and its fallbacks carry measured accuracies, not predicted ones."""
        scores = self.score(population)
        for _ in range(3):
            order = np.lexsort((np.arange(len(scores)), -scores))[:self.final]
            if all(self.is_real(population[i]) for i in order):
                break
            scores = self._evaluate_best(population, scores, self.final)
        return scores

    def is_real(self, row: np.ndarray) -> bool:
        """Whether `row`'s accuracy was evaluated on the supernet (else it is predicted)."""
        return _key(row) in self.evaluated

    def score_source(self, row: np.ndarray) -> str:
        return "supernet" if self.is_real(row) else "predicted"

    def score_fields(self, row: np.ndarray, score: float) -> dict[str, Any]:
        return {"accuracy": round(float(score), 6), "accuracy_source": self.score_source(row)}

    def state_dict(self) -> dict[str, Any]:
        return {"evaluated": list(self.evaluated)}

    def identity(self) -> dict[str, Any]:
        """The weights and data the accuracies come from (a saved search with other ones is not reused)."""
        return {"source": self.evaluator.source(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evaluated = []
        rows = [[int(v) for v in k.split(",")] for k in state.get("evaluated", [])]
        # a row is not in the cache if its file was removed: evaluated again, in the same order
        self.evaluate_rows(np.array(rows, dtype=np.int64))

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "evaluated": len(self.evaluated), "predictor": self.model_name,
                "predictor_cv_kendall_tau": self.cv_tau}


def supernet_accuracy(evaluator: ArchEvaluator, cache_path: Path, *, initial: int = 24, per_generation: int = 2,
                      final: int = 5, seed: int = 0,
                      on_evaluate: Callable[[float], None] = lambda _t: None) -> SupernetAccuracy:
    """The accuracy objective of a supernet's `evaluator` (see `SubnetEvaluator.from_checkpoint`), real accuracies
    cached in `cache_path` under the evaluator's source."""
    return SupernetAccuracy(evaluator, AccuracyCache(cache_path, evaluator.source()), initial=initial,
                            per_generation=per_generation, final=final, seed=seed, on_evaluate=on_evaluate)
