"""The small linear fits of whole-model latency that transfer and calibration share.

A fit explains measured latencies ``y`` (ms, one per subnet) from features ``F`` (one row per subnet, e.g. a base
predictor's sum of blocks per family) as ``y ~ F @ w + c`` with ``w >= 0`` (non-negative least squares,
scipy.optimize.nnls) on relative error (each row divided by its ``y``, so a fast subnet counts as much as a slow
one); the offset ``c`` is optional and may be negative (every block measured alone pays the interpreter's
per-invoke overhead, which a whole model pays once).

A `Candidate` is a named design: which non-negative combinations of the features it fits as its columns (a column
map, which may itself be fitted on the training rows). `choose` compares candidates by cross-validated relative
error and keeps, of those within one standard error of the best, the one with the fewest parameters (then the
lowest error): the one-standard-error rule, since with 5-20 subnets a richer design must do clearly better to be
trusted. In the splits,
the fastest and slowest subnets always stay in training: holding one out would test extrapolation beyond the
measured range, which subnets chosen to cover that range make rare in use. Leave-one-out up to
`LEAVE_ONE_OUT_UP_TO` held-out rows, k-fold beyond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import nnls
from sklearn.model_selection import KFold

from ..errors import BadInput
from .accuracy import ErrorFigures, compare

__all__ = ["LEAVE_ONE_OUT_UP_TO", "PER_FAMILY_ROWS_PER_PARAMETER", "Candidate", "Choice", "LinearFit", "TooFewRows",
           "choose", "cv_splits", "fit_nonnegative", "fixed"]

LEAVE_ONE_OUT_UP_TO = 20
#: rows per parameter before a per-family design (many parameters) is compared at all
PER_FAMILY_ROWS_PER_PARAMETER = 3
RULE = "one-standard-error"

ColumnMap = Callable[[np.ndarray, np.ndarray], np.ndarray]  # training (features, y) -> (columns x features) map


class TooFewRows(BadInput):
    """Too few measured subnets for any of the candidate fits."""


@dataclass(frozen=True)
class LinearFit:
    """``y ~ features @ weights + offset_ms`` (weights >= 0)."""

    weights: tuple[float, ...]
    offset_ms: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ np.asarray(self.weights) + self.offset_ms


def _check(X: np.ndarray, y: np.ndarray) -> None:
    if X.ndim != 2 or len(X) != len(y) or not len(y):
        raise BadInput("a fit needs one row of features per measured latency, and at least one")
    if not (np.isfinite(y).all() and (y > 0).all()):
        raise BadInput("measured latencies must be positive and finite")
    if not np.isfinite(X).all():
        raise BadInput("the features of a fit must be finite")


def fit_nonnegative(X: np.ndarray, y: np.ndarray, *, offset: bool = True) -> LinearFit:
    """Non-negative least squares on relative error: minimises ``sum(((X @ w + c) / y - 1) ** 2)`` over
    ``w >= 0`` and, with `offset`, any real ``c`` (else ``c = 0``)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check(X, y)
    A = X / y[:, None]
    if offset:
        A = np.column_stack([A, 1 / y, -1 / y])  # c = c+ - c-, both >= 0: an unconstrained offset
    norm = np.abs(A).max(axis=0)
    norm[norm == 0] = 1.0
    solution, _ = nnls(A / norm, np.ones(len(y)))
    solution = solution / norm
    k = X.shape[1]
    c = float(solution[k] - solution[k + 1]) if offset else 0.0
    return LinearFit(tuple(float(w) for w in solution[:k]), c)


@dataclass(frozen=True)
class Candidate:
    """A named design: `columns(features, y)` of the training rows maps the features to its columns (each a
    non-negative combination of features, possibly fitted on those rows: `map_parameters` of them), fitted with or
    without an offset; compared only with at least `min_rows` rows (default: one more than its parameters)."""

    name: str
    columns: ColumnMap
    n_columns: int
    offset: bool = True
    min_rows: int | None = None
    map_parameters: int = 0

    @property
    def parameters(self) -> int:
        return self.n_columns + int(self.offset) + self.map_parameters

    @property
    def rows_needed(self) -> int:
        return self.min_rows if self.min_rows is not None else self.parameters + 1

    def fit(self, features: np.ndarray, y: np.ndarray, train: np.ndarray) -> LinearFit:
        """The fit on rows `train`, as weights over the features."""
        M = self.columns(features[train], y[train])
        inner = fit_nonnegative(features[train] @ M.T, y[train], offset=self.offset)
        return LinearFit(tuple(float(w) for w in M.T @ np.asarray(inner.weights)), inner.offset_ms)


def fixed(name: str, column_map: np.ndarray, *, offset: bool = True, min_rows: int | None = None) -> Candidate:
    """A candidate whose column map does not depend on the training rows."""
    M = np.atleast_2d(np.asarray(column_map, dtype=np.float64))
    return Candidate(name, lambda _features, _y: M, len(M), offset, min_rows)


def cv_splits(y: np.ndarray, folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices: the fastest and slowest rows always in training (from 4 rows on), the others
    left out one at a time, or in `folds` shuffled folds (seeded) when more than `LEAVE_ONE_OUT_UP_TO`."""
    n = len(y)
    rows = np.arange(n)
    anchors = {int(np.argmin(y)), int(np.argmax(y))} if n >= 4 else set()
    held = np.array([i for i in rows if i not in anchors])
    if len(held) <= LEAVE_ONE_OUT_UP_TO:
        tests = [held[i:i + 1] for i in range(len(held))]
    else:
        tests = [held[t] for _, t in KFold(max(2, folds), shuffle=True, random_state=0).split(held)]
    return [(np.setdiff1d(rows, t), t) for t in tests]


def _cv_errors(candidate: Candidate, features: np.ndarray, y: np.ndarray,
               splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Relative errors of the held-out rows (in the order of the splits' test rows)."""
    out = []
    for train, test in splits:
        fit = candidate.fit(features, y, train)
        out.append(fit.predict(features[test]) / y[test] - 1)
    return np.concatenate(out)


@dataclass(frozen=True)
class Choice:
    """The candidate kept, its fit on every row (weights over the features), every compared candidate's
    cross-validated figures, the candidates left out (and why) and how many splits the figures come from.
    `to_dict` records the selection; the fit is kept by its owner in its own terms (scales, weights), so
    `from_dict` takes it back separately."""

    name: str
    fit: LinearFit
    cv: dict[str, ErrorFigures]
    left_out: dict[str, str] = field(default_factory=dict)
    splits: int = 0

    @property
    def figures(self) -> ErrorFigures:
        return self.cv[self.name]

    def to_dict(self) -> dict[str, Any]:
        chosen = self.figures
        return {"choice": self.name, "rule": RULE, "cv_rmse_pct": round(chosen.rmse_pct, 4),
                "cv_within_5pct": chosen.within_5pct, "cv_within_10pct": chosen.within_10pct,
                "cv_splits": self.splits, "candidates": {k: v.to_dict() for k, v in self.cv.items()},
                "left_out": dict(self.left_out)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], fit: LinearFit) -> Choice:
        return cls(str(data["choice"]), fit,
                   {k: ErrorFigures.from_dict(v) for k, v in data["candidates"].items()},
                   {str(k): str(v) for k, v in data.get("left_out", {}).items()}, int(data.get("cv_splits", 0)))


def choose(features: np.ndarray, y: np.ndarray, candidates: Sequence[Candidate], *, folds: int = 5) -> Choice:
    """Compare `candidates` (those with enough rows) by cross-validated relative error and fit the one kept by
    the one-standard-error rule on every row; `TooFewRows` when no candidate has enough rows."""
    features, y = np.asarray(features, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check(features, y)
    n = len(y)
    usable = [c for c in candidates if n >= c.rows_needed]
    left_out = {c.name: f"needs {c.rows_needed} subnets, has {n}" for c in candidates if n < c.rows_needed}
    if not usable:
        fewest = min(c.rows_needed for c in candidates)
        raise TooFewRows(f"{n} measured subnet(s) are too few for any fit (at least {fewest})")
    splits = cv_splits(y, folds)
    errors = {c.name: _cv_errors(c, features, y, splits) for c in usable}
    mse = {k: float(np.mean(e ** 2)) for k, e in errors.items()}
    best = errors[min(mse, key=mse.__getitem__)] ** 2
    limit = float(np.mean(best)) + (float(np.std(best, ddof=1) / np.sqrt(len(best))) if len(best) > 1 else 0.0)
    kept = min((c for c in usable if mse[c.name] <= limit), key=lambda c: (c.parameters, mse[c.name]))
    cv = {k: compare(1 + e, np.ones(len(e))) for k, e in errors.items()}
    return Choice(kept.name, kept.fit(features, y, np.arange(n)), cv, left_out, len(splits))
