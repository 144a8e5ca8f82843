"""Learned block predictors: one scikit-learn regressor per block family, fitted from measured blocks.

Each family's regressor predicts ``log(ms / prior)`` from the block's shape features, where the prior is
- without a base predictor: a non-negative linear cost model ``a * MFLOPs + b * kB moved + c`` fitted on the
  family's samples, so the trees only learn how efficiency varies and predictions extrapolate with the cost;
- with a base predictor (transfer: another phone's table or predictor): the base's latency of the same block,
  so a few measurements of the new phone learn how it differs from a known one.
Candidates per family (random forest as nn-Meter uses, gradient boosting, and the prior alone) are compared by
k-fold cross-validated error and the best is kept; the choice and its error are recorded.

A model-level calibration (fitted by the builder on whole subnets, see `calibrate`) is either one scale and
offset (`ArchLatencyModel` applies them to the sum of blocks) or per-family scales, which `predict_blocks`
applies to each family's blocks, plus the offset.

Persistence is portable and versioned: ``predictor.json`` (an ``elasticvit-deploy.latency-predictor`` document:
header, convention, features, choices, calibration (its optional ``family_scales``: 1.0 where absent), base,
tool versions), ``training.jsonl`` (the blocks it was fitted on) and ``regressors.skops`` (skops, not pickle).
Loading trusts skops' defaults plus exactly `TRUSTED_TYPES`, the types these files hold beyond them; a file needing
any other type (e.g. a tampered one calling ``builtins.eval``) is refused before anything in it is built. A file of
another kind or format version, or one that this scikit-learn cannot read, gives a PredictorFileError that says so.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import KFold

from supernet.arch import ArchError, parse_arch
from supernet.atomic import atomic_output, write_json_atomic
from supernet.documents import DocumentError, check_header, header
from supernet.space import get_space

from ..errors import BadInput, shorten
from .blocks import FAMILIES, Block, Convention
from .combination import Choice, LinearFit
from .errors import PredictorError
from .features import feature_matrix, feature_names
from .measurer import SubnetMeasurement

DOCUMENT_KIND = "latency-predictor"  # predictor.json's format: elasticvit-deploy.latency-predictor
FORMAT_VERSION = 1
SUMMARY_KIND = "predictor-summary"  # what `predictor fit/build --json` print
SUMMARY_VERSION = 1
#: The types `skops.io.get_untrusted_types` reports for the regressors this module saves (every kind in CANDIDATES;
#: tests/test_hostile_loads.py recomputes them). Nothing else in a regressors.skops file is trusted.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "sklearn.tree._tree.Tree",  # the trees of RandomForestRegressor and GradientBoostingRegressor
    "elasticvit_deploy.latency.learned.PriorOnly",
})
MIN_SAMPLES_FOR_TREES = 6


class PredictorFileError(PredictorError):
    """A predictor directory that is missing, corrupt, or written by an incompatible version."""


class FitError(BadInput):
    """Measured blocks a predictor cannot be fitted on (none, not positive, or outside the base predictor)."""


class PriorOnly(RegressorMixin, BaseEstimator):
    """Predicts a zero log-ratio: the latency is the prior itself (the linear cost model or the base predictor)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> PriorOnly:
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X))


CANDIDATES: dict[str, BaseEstimator] = {
    "random_forest": RandomForestRegressor(n_estimators=150, min_samples_leaf=1, max_features=0.6, random_state=0),
    "gradient_boosting": GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05,
                                                   subsample=0.8, random_state=0),
    "prior": PriorOnly(),
}


@dataclass
class FamilyModel:
    """One family's fitted regressor, its prior and its cross-validated error (relative, on ms)."""

    regressor: BaseEstimator
    choice: str
    linear_prior: tuple[float, float, float] | None  # (per MFLOP, per kB, constant) ms; None with a base
    cv_rmse: float
    cv_within5: float
    n_samples: int


def _cost_columns(X: np.ndarray, family: str) -> np.ndarray:
    names = feature_names(family)
    return np.column_stack([X[:, names.index("mflops")], X[:, names.index("kbytes")], np.ones(len(X))])


def _fit_linear_prior(X: np.ndarray, y_ms: np.ndarray, family: str) -> tuple[float, float, float]:
    """Non-negative least squares on relative error (rows weighted by 1/ms)."""
    A = _cost_columns(X, family)
    coef, _ = nnls(A / y_ms[:, None], np.ones(len(y_ms)))
    if not (A @ coef > 0).all():
        coef = np.array([0.0, 0.0, float(np.median(y_ms))])
    return float(coef[0]), float(coef[1]), float(coef[2])


def _prior(X: np.ndarray, family: str, linear: tuple[float, float, float] | None, base_ms: np.ndarray | None
           ) -> np.ndarray:
    if linear is None:
        assert base_ms is not None
        return base_ms
    return np.maximum(_cost_columns(X, family) @ np.asarray(linear), 1e-6)


def _design(X: np.ndarray, base_ms: np.ndarray | None) -> np.ndarray:
    return X if base_ms is None else np.column_stack([X, np.log(base_ms)])


def _fit_family(X: np.ndarray, y_ms: np.ndarray, family: str, base_ms: np.ndarray | None, folds: int
                ) -> FamilyModel:
    n = len(y_ms)
    names = list(CANDIDATES) if n >= MIN_SAMPLES_FOR_TREES else ["prior"]
    errors: dict[str, list[float]] = {name: [] for name in names}
    if n >= 2 * 2:
        for train, test in KFold(min(folds, n // 2), shuffle=True, random_state=0).split(X):
            linear = None if base_ms is not None else _fit_linear_prior(X[train], y_ms[train], family)
            prior = _prior(X, family, linear, base_ms)
            D = _design(X, base_ms)
            for name in names:
                est = clone(CANDIDATES[name]).fit(D[train], np.log(y_ms[train] / prior[train]))
                pred = prior[test] * np.exp(est.predict(D[test]))
                errors[name] += list(pred / y_ms[test] - 1)
    score = {name: float(np.sqrt(np.mean(np.square(e)))) if e else np.inf for name, e in errors.items()}
    choice = min(names, key=lambda k: score[k]) if np.isfinite(min(score.values())) else "prior"
    linear = None if base_ms is not None else _fit_linear_prior(X, y_ms, family)
    prior = _prior(X, family, linear, base_ms)
    regressor = clone(CANDIDATES[choice]).fit(_design(X, base_ms), np.log(y_ms / prior))
    within5 = float(np.mean(np.abs(errors[choice]) <= 0.05)) if errors[choice] else float("nan")
    return FamilyModel(regressor, choice, linear, score[choice], within5, n)


def _quote(name: str, limit: int = 80) -> str:
    """`name` (from the file, so anything) as a short one-line repr."""
    return repr(name if len(name) <= limit else name[:limit - 3] + "...")


def read_training_set(directory: str | Path) -> set[Block]:
    """The blocks a saved predictor was fitted on (empty if it does not say)."""
    path = Path(directory) / "training.jsonl"
    if not path.is_file():
        return set()
    return {Block(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


class LearnedPredictor:
    """Block latencies from per-family regressors (see the module docstring)."""

    kind = "learned"

    def __init__(self, name: str, convention: Convention, families: dict[str, FamilyModel],
                 base: Any | None = None, scale: float = 1.0, offset_ms: float = 0.0,
                 info: dict[str, Any] | None = None, family_scales: dict[str, float] | None = None):
        self.name = name
        self.convention = convention
        self.families = families
        self.base = base
        self.scale = scale
        self.offset_ms = offset_ms
        self.family_scales: dict[str, float] = dict(family_scales or {})  # absent: 1.0 (see `calibrate`)
        self.calibration_fit: Choice | None = None  # how the calibration was chosen, when it was fitted
        self.measured_subnets: list[SubnetMeasurement] = []  # the whole subnets it was calibrated on
        self.info = info or {}
        self.training: list[Block] = []  # the blocks it was fitted on (saved beside it, for held-out evaluation)
        self._regressor_bytes: bytes | None = None  # the regressors as saved (or as they will be)

    @classmethod
    def fit(cls, name: str, convention: Convention, blocks: Sequence[Block], ms: Sequence[float] | np.ndarray, *,
            base: Any | None = None, folds: int = 5, info: dict[str, Any] | None = None) -> LearnedPredictor:
        """Fit one regressor per family present in `blocks` (latencies `ms`); `base` enables transfer."""
        y = np.asarray(ms, dtype=np.float64)
        if len(blocks) != len(y) or not len(y):
            raise FitError("fit needs as many latencies as blocks, and at least one")
        if not (np.isfinite(y).all() and (y > 0).all()):
            raise FitError("measured latencies must be positive and finite")
        base_all = None if base is None else base.predict_blocks(blocks)
        if base is not None and base_all is not None and np.isnan(base_all).any():
            raise FitError(f"the base predictor {base.name} has no latency for {int(np.isnan(base_all).sum())} "
                           "of the measured blocks")
        families = {}
        for family in FAMILIES:
            idx = [i for i, b in enumerate(blocks) if b.family == family]
            if not idx:
                continue
            X = feature_matrix([blocks[i] for i in idx], family)
            base_ms = None if base_all is None else base_all[idx]
            families[family] = _fit_family(X, y[idx], family, base_ms, folds)
        predictor = cls(name, convention, families, base, info=info)
        predictor.training = list(dict.fromkeys(blocks))
        return predictor

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        out = np.full(len(blocks), np.nan)
        base_all = None if self.base is None else self.base.predict_blocks(blocks)
        for family, model in self.families.items():
            idx = [i for i, b in enumerate(blocks) if b.family == family]
            if not idx:
                continue
            X = feature_matrix([blocks[i] for i in idx], family)
            base_ms = None if base_all is None else base_all[idx]
            prior = _prior(X, family, model.linear_prior, base_ms)
            scale = self.family_scales.get(family, 1.0)
            out[idx] = prior * np.exp(model.regressor.predict(_design(X, base_ms))) * scale
        return out

    def calibrate(self, fit: Choice, subnets: Sequence[SubnetMeasurement] = ()) -> None:
        """Apply a model-level calibration chosen over the predictor's per-family sums (features in the order of
        `FAMILIES`): one scale when every family's weight is the same, else per-family scales (scale 1)."""
        weights = [float(w) for w in fit.fit.weights]
        if len(set(weights)) == 1:
            self.scale, self.family_scales = weights[0], {}
        else:
            self.scale, self.family_scales = 1.0, dict(zip(FAMILIES, weights, strict=True))
        self.offset_ms = float(fit.fit.offset_ms)
        self.calibration_fit = fit
        self.measured_subnets = list(subnets)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "convention": self.convention,
                "base": None if self.base is None else self.base.describe(),
                "calibration": self._calibration(),
                "families": {f: {"regressor": m.choice, "samples": m.n_samples,
                                 "cv_rmse": round(m.cv_rmse, 5) if np.isfinite(m.cv_rmse) else None,
                                 "cv_within_5pct": None if np.isnan(m.cv_within5) else round(m.cv_within5, 4)}
                             for f, m in self.families.items()},
                **self.info,
                **({"calibration_subnets": [r.to_dict() for r in self.measured_subnets]}
                   if self.measured_subnets else {})}

    def _calibration(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scale": self.scale, "offset_ms": self.offset_ms}
        if self.family_scales:
            out["family_scales"] = dict(self.family_scales)
        if self.calibration_fit is not None:
            out.update(self.calibration_fit.to_dict())
        return out

    def content_id(self) -> str:
        """sha256 of what its predictions depend on, wherever its files lie: the fitted regressors (as saved), each
        family's regressor choice and linear prior, the convention, the calibration and the base's content id."""
        determining = {"convention": self.convention, "scale": self.scale, "offset_ms": self.offset_ms,
                       "families": {f: [m.choice, m.linear_prior] for f, m in sorted(self.families.items())},
                       "base": None if self.base is None else self.base.content_id()}
        if self.family_scales:  # absent for a predictor with one scale, so its id stays what it was
            determining["family_scales"] = dict(sorted(self.family_scales.items()))
        digest = hashlib.sha256(self._regressors_saved())
        digest.update(json.dumps(determining, sort_keys=True).encode())
        return digest.hexdigest()

    def _regressors_saved(self) -> bytes:
        """The regressors serialised with skops: read from the file when loaded, else dumped once."""
        if self._regressor_bytes is None:
            import skops.io as sio

            self._regressor_bytes = sio.dumps({f: m.regressor for f, m in self.families.items()})
        return self._regressor_bytes

    def summary(self, directory: str | Path) -> dict[str, Any]:
        """The description of this predictor saved in `directory`, as a document of its own."""
        return {**header(SUMMARY_KIND, SUMMARY_VERSION), **self.describe(), "path": str(directory)}

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``predictor.json`` + ``regressors.skops`` into `directory` (atomically, each file)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(directory / "regressors.skops") as tmp:
            tmp.write_bytes(self._regressors_saved())
        meta = {**header(DOCUMENT_KIND, FORMAT_VERSION), **self.describe(),
                "linear_prior": {f: m.linear_prior for f, m in self.families.items()},
                "features": {f: list(feature_names(f)) for f in self.families},
                "tools": {p: importlib.metadata.version(p) for p in ("scikit-learn", "skops", "numpy")}}
        with atomic_output(directory / "training.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(b.to_dict(), sort_keys=True) + "\n" for b in self.training),
                           encoding="utf-8")
        write_json_atomic(directory / "predictor.json", meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, resolve_base: Any = None) -> LearnedPredictor:
        """Read a saved predictor; `resolve_base(description)` returns its base predictor when it has one."""
        import skops.io as sio

        directory = Path(directory)
        try:
            meta = json.loads((directory / "predictor.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise PredictorFileError(f"{directory}: no readable predictor.json ({e.__class__.__name__})") from None
        try:
            check_header(meta, DOCUMENT_KIND, FORMAT_VERSION, str(directory / "predictor.json"))
        except DocumentError as e:  # the header's own message, with what to do about it
            raise PredictorFileError(f"{e}; rebuild the predictor") from None
        saved = meta.get("tools", {}).get("scikit-learn", "?")
        try:
            path = directory / "regressors.skops"
            data = path.read_bytes()
            refused = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
            if refused:
                more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
                raise PredictorFileError(f"{path}: refuses to load type {_quote(refused[0])}{more}, which "
                                         "elasticvit-deploy never writes (a tampered file?); rebuild the predictor")
            regressors = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
        except PredictorFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to read is reported as one incompatibility line
            raise PredictorFileError(
                f"{directory}: cannot read its regressors (saved with scikit-learn {saved}, this is "
                f"{importlib.metadata.version('scikit-learn')}: {e.__class__.__name__}); refit or rebuild it"
            ) from None
        families = {}
        for f, d in meta["families"].items():
            linear = meta["linear_prior"].get(f)
            rmse, within5 = d["cv_rmse"], d["cv_within_5pct"]
            families[f] = FamilyModel(regressors[f], d["regressor"], None if linear is None else tuple(linear),
                                      np.inf if rmse is None else rmse, np.nan if within5 is None else within5,
                                      d["samples"])
        base = None
        if meta.get("base") is not None:
            if resolve_base is None:
                raise PredictorFileError(f"{directory}: needs its base predictor {meta['base'].get('name')!r}")
            base = resolve_base(meta["base"])
        info = {k: meta[k] for k in ("device", "space", "created", "source", "measured_on", "runtime", "flags",
                                     "statistic") if k in meta}
        predictor = cls(meta["name"], meta["convention"], families, base, info=info)
        _load_calibration(predictor, meta, directory)
        predictor._regressor_bytes = data
        return predictor


def _load_calibration(predictor: LearnedPredictor, meta: dict[str, Any], directory: Path) -> None:
    """The saved calibration (scale, offset, optional per-family scales, how it was chosen, on which subnets)."""
    cal = meta.get("calibration", {})
    try:
        predictor.scale, predictor.offset_ms = float(cal.get("scale", 1.0)), float(cal.get("offset_ms", 0.0))
        scales = {str(f): float(v) for f, v in cal.get("family_scales", {}).items()}
        if set(scales) - set(FAMILIES):
            raise ValueError(f"unknown families {sorted(set(scales) - set(FAMILIES))}")
        predictor.family_scales = scales
        if "choice" in cal:
            weights = tuple(scales.get(f, 1.0) * predictor.scale for f in FAMILIES)
            predictor.calibration_fit = Choice.from_dict(cal, LinearFit(weights, predictor.offset_ms))
        rows = meta.get("calibration_subnets") or []
        if rows:
            space = get_space(str(meta["space"]))
            predictor.measured_subnets = [SubnetMeasurement(parse_arch(r["arch"], space), float(r["ms"]), r.get("cv"))
                                          for r in rows]
    except (KeyError, TypeError, ValueError, AttributeError, ArchError) as e:
        raise PredictorFileError(f"{directory / 'predictor.json'}: unreadable calibration ({e.__class__.__name__}: "
                                 f"{shorten(str(e))}); rebuild the predictor") from None
