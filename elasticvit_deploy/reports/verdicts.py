"""PASS / WARN / FAIL per model: against its latency budget and against the baseline, using the measurement noise.

Budget: PASS when the whole 95% CI of the median is within the budget; WARN when the median is within but the CI
reaches over it (the noise cannot rule out a miss); FAIL when the median is over. Without a CI the median decides.

Regression (same device fingerprint and model name in the baseline), judged on the raw rounds (each round's mean
latency) when both sides have at least 5 of them:

- two one-sided Mann-Whitney U tests (is the current build slower? faster?) and a 95% CI of the ratio
  median(current) / median(baseline) from a percentile bootstrap (2000 resamples, fixed seed: the same inputs
  always give the same verdict and interval);
- a slowdown is significant when the slower test has p < 0.05 and the ratio CI lies wholly above 1;
- FAIL: a significant slowdown, with p < 0.01 (a failed gate blocks a merge, so it asks for more certainty),
  whose ratio CI reaches the threshold (upper bound >= 1 + threshold: the data are consistent with a slowdown of
  at least the threshold), so a true 5% regression on a quiet phone fails at the default 5% threshold. WARN: a
  significant slowdown with 0.01 <= p < 0.05 whose CI reaches the threshold ("not certain enough to fail"), or
  whose whole CI stays below 1 + threshold (a real slowdown, smaller than the threshold);
- noise gate: when the coefficient of variation (std / mean of the rounds) of either side is over the limit
  (`max_cv`, default 10%), a significant slowdown FAILs only when even the ratio CI's lower bound is at or beyond
  1 + threshold and the distribution-free 95% CIs of the two medians (order statistics, which a heavy-tailed
  noise or a few rounds widen, as a bootstrap of few rounds does not) are apart by the threshold too; otherwise
  it is WARN "too noisy to judge". A change that is not significant but whose ratio CI
  reaches beyond 1 + threshold is also WARN "too noisy to judge" (a slowdown beyond the threshold cannot be ruled
  out);
- PASS otherwise: unchanged within the noise, or faster (the faster test significant and the CI wholly below 1).

With fewer than 5 rounds on a side (a search result has none) the 95% CIs of the two medians are compared: the
change is significant when they do not overlap (without CIs: when it exceeds the threshold). FAIL when slower by
more than the threshold and significant; WARN when slower and significant but within the threshold, or slower by
more than the threshold but within the noise; PASS otherwise. The reason says so.

A regression verdict's `details` record how it was reached: `test` ("mann-whitney" or "ci-overlap"), `p_value`
(of the one-sided test in the `alternative` direction, "slower" or "faster"), `ratio`, `ratio_ci95`, `cv`
([baseline, current]) and `rounds` ([baseline, current]), those that apply.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import mannwhitneyu

from ..errors import shorten
from .inputs import ModelResult, ReportInputError

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
ORDER = {PASS: 0, WARN: 1, FAIL: 2}

MIN_ROUNDS = 5             # rounds each side needs for the distribution test
ALPHA = 0.05               # significance level of the one-sided Mann-Whitney U tests
FAIL_ALPHA = 0.01          # ... and the stricter one a FAIL needs: a failed gate blocks a merge
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240601  # fixed: a report is reproducible from its inputs
DEFAULT_MAX_CV = 0.10


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "reason": self.reason}
        if self.details:
            out["details"] = dict(self.details)
        return out


def parse_budgets(specs: tuple[str, ...]) -> list[tuple[str, float]]:
    """``MODEL=MS`` pairs (MODEL may be a glob such as ``*-fp32.tflite``); ReportInputError names a bad one."""
    out = []
    for spec in specs:
        pattern, sep, value = spec.rpartition("=")
        try:
            ms = float(value)
        except ValueError:
            ms = -1.0
        if not sep or not pattern or not ms > 0:
            raise ReportInputError(f"--budget {shorten(spec)}: expected MODEL=MS with MS > 0 (e.g. mobile.tflite=30)")
        out.append((pattern, ms))
    return out


def budget_for(result: ModelResult, budgets: list[tuple[str, float]]) -> float | None:
    """The last matching --budget wins; else the budget the result came with (a search's)."""
    found = result.budget_ms
    stem = result.model.rsplit(".", 1)[0]
    for pattern, ms in budgets:
        if fnmatch.fnmatchcase(result.model, pattern) or fnmatch.fnmatchcase(stem, pattern):
            found = ms
    return found


def budget_verdict(result: ModelResult, budget: float | None) -> Verdict | None:
    if budget is None:
        return None
    hi = result.ci95_ms[1] if result.ci95_ms else result.median_ms
    what = "median" if result.statistic == "median" else result.statistic
    if result.median_ms > budget:
        return Verdict(FAIL, f"{what} {result.median_ms:.2f} ms > budget {budget:g} ms")
    if hi > budget:
        return Verdict(WARN, f"median {result.median_ms:.2f} ms within {budget:g} ms, but its 95% CI reaches "
                             f"{hi:.2f} ms")
    return Verdict(PASS, f"{what} {result.median_ms:.2f} ms <= {budget:g} ms")


@dataclass(frozen=True)
class RoundsComparison:
    """The distribution test of current rounds against baseline rounds."""

    p_slower: float
    p_faster: float
    ratio: float                        # median(current) / median(baseline)
    ratio_ci95: tuple[float, float]     # percentile bootstrap
    cv: tuple[float, float]             # baseline, current
    rounds: tuple[int, int]             # baseline, current


def _usable_rounds(result: ModelResult) -> np.ndarray:
    x = np.asarray(result.rounds_ms, dtype=np.float64)
    return x[np.isfinite(x) & (x > 0)]


def _cv(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / x.mean())


def _p(current: np.ndarray, base: np.ndarray, alternative: str) -> float:
    p = float(mannwhitneyu(current, base, alternative=alternative).pvalue)
    return p if math.isfinite(p) else 1.0


def ratio_ci(current: ArrayLike, base: ArrayLike, resamples: int = BOOTSTRAP_RESAMPLES,
             seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% percentile-bootstrap CI of median(current) / median(base), both resampled with replacement; the
    generator is seeded, so the same inputs give the same interval."""
    rng = np.random.default_rng(seed)
    cur, bas = np.asarray(current, dtype=np.float64), np.asarray(base, dtype=np.float64)
    cur_medians = np.median(rng.choice(cur, size=(resamples, len(cur))), axis=1)
    base_medians = np.median(rng.choice(bas, size=(resamples, len(bas))), axis=1)
    lo, hi = np.percentile(cur_medians / base_medians, [2.5, 97.5])
    return float(lo), float(hi)


def compare_rounds(result: ModelResult, base: ModelResult) -> RoundsComparison | None:
    """The distribution test of `result`'s rounds against `base`'s; None when a side has fewer than MIN_ROUNDS."""
    cur, bas = _usable_rounds(result), _usable_rounds(base)
    if len(cur) < MIN_ROUNDS or len(bas) < MIN_ROUNDS:
        return None
    return RoundsComparison(p_slower=_p(cur, bas, "greater"), p_faster=_p(cur, bas, "less"),
                            ratio=float(np.median(cur) / np.median(bas)), ratio_ci95=ratio_ci(cur, bas),
                            cv=(_cv(bas), _cv(cur)), rounds=(len(bas), len(cur)))


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _apart(result: ModelResult, base: ModelResult, limit: float) -> bool:
    """Whether the distribution-free 95% CIs of the two medians are apart by at least `limit` (a ratio)."""
    if result.ci95_ms is None or base.ci95_ms is None:
        return True
    return result.ci95_ms[0] >= base.ci95_ms[1] * limit


def _distribution_verdict(c: RoundsComparison, result: ModelResult, base: ModelResult, threshold_pct: float,
                          max_cv: float, runtime: str) -> Verdict:
    lo, hi = c.ratio_ci95
    limit = 1 + threshold_pct / 100
    slower = c.p_slower < ALPHA and lo > 1
    faster = c.p_faster < ALPHA and hi < 1
    p = c.p_faster if faster else c.p_slower
    details = {"test": "mann-whitney", "alternative": "faster" if faster else "slower", "p_value": p,
               "ratio": c.ratio, "ratio_ci95": [lo, hi], "cv": list(c.cv), "rounds": list(c.rounds)}
    what = f"{_pct(c.ratio)} vs baseline {base.median_ms:.2f} ms"
    stats = f"Mann-Whitney p={p:.2g}, ratio 95% CI {lo:.3f}–{hi:.3f}"
    cvs = f"CV {c.cv[0] * 100:.1f}% (baseline) and {c.cv[1] * 100:.1f}% (current)"
    noisy = max(c.cv) > max_cv
    if slower and noisy and (lo < limit or not _apart(result, base, limit)):
        return Verdict(WARN, f"too noisy to judge: {cvs}, over the {max_cv * 100:g}% limit; {what} is "
                             f"significant ({stats}) but may be under the {threshold_pct:g}% threshold{runtime}",
                       details)
    if slower and hi >= limit and c.p_slower < FAIL_ALPHA:  # a noisy slowdown gets here only with lo >= limit
        beyond = "beyond" if lo >= limit else "whose 95% CI reaches"
        return Verdict(FAIL, f"{what}: a significant slowdown {beyond} the {threshold_pct:g}% threshold "
                             f"({stats}){runtime}", details)
    if slower and hi >= limit:
        return Verdict(WARN, f"{what}: a likely slowdown that may reach the {threshold_pct:g}% threshold, not "
                             f"certain enough to fail (p >= {FAIL_ALPHA:g}; {stats}){runtime}", details)
    if slower:
        return Verdict(WARN, f"{what}: a real slowdown of {_pct(c.ratio)}, below the {threshold_pct:g}% "
                             f"threshold ({stats}){runtime}", details)
    if hi > limit:
        return Verdict(WARN, f"too noisy to judge: {what} is not significant ({stats}), but a slowdown beyond the "
                             f"{threshold_pct:g}% threshold cannot be ruled out ({cvs}){runtime}", details)
    return Verdict(PASS, f"{what}{' (faster' if faster else ' (within the noise'}, {stats}){runtime}", details)


def _overlap_verdict(result: ModelResult, base: ModelResult, threshold_pct: float, runtime: str) -> Verdict:
    change = (result.median_ms / base.median_ms - 1) * 100
    cis = (result.ci95_ms, base.ci95_ms) if result.ci95_ms and base.ci95_ms else None
    if cis is not None:
        (lo, hi), (base_lo, base_hi) = cis
        significant = lo > base_hi or hi < base_lo
    else:
        significant = abs(change) > threshold_pct
    n_base, n_cur = len(_usable_rounds(base)), len(_usable_rounds(result))
    details: dict[str, Any] = {"test": "ci-overlap", "ratio": result.median_ms / base.median_ms,
                               "rounds": [n_base, n_cur]}
    if base.cv is not None and result.cv is not None:
        details["cv"] = [base.cv, result.cv]
    what = f"{change:+.1f}% vs baseline {base.median_ms:.2f} ms"
    note = (f" ({n_base} vs {n_cur} rounds: too few for a distribution test; "
            f"{'CIs' if cis is not None else 'medians'} compared){runtime}")
    if change > threshold_pct and significant:
        return Verdict(FAIL, f"{what}, beyond the {threshold_pct:g}% threshold and the noise{note}", details)
    if change > 0 and significant:
        return Verdict(WARN, f"{what}: a real slowdown, within the {threshold_pct:g}% threshold{note}", details)
    if change > threshold_pct:
        return Verdict(WARN, f"{what}: over the {threshold_pct:g}% threshold but within the noise{note}", details)
    return Verdict(PASS, f"{what}{' (faster)' if change < 0 and significant else ''}{note}", details)


def regression_verdict(result: ModelResult, base: ModelResult | None, threshold_pct: float,
                       max_cv: float = DEFAULT_MAX_CV) -> Verdict | None:
    """`result` against its baseline (None without one), by the rule in this module's docstring."""
    if base is None:
        return None
    runtime = "" if result.runtime == base.runtime else f" (runtime changed: {base.runtime} -> {result.runtime})"
    comparison = compare_rounds(result, base)
    if comparison is None:
        return _overlap_verdict(result, base, threshold_pct, runtime)
    return _distribution_verdict(comparison, result, base, threshold_pct, max_cv, runtime)


def worst(*verdicts: Verdict | None) -> str:
    present = [v.status for v in verdicts if v is not None]
    return max(present, key=ORDER.__getitem__) if present else PASS


def judge(results: list[ModelResult], baseline: list[ModelResult], budgets: list[tuple[str, float]],
          threshold_pct: float, max_cv: float = DEFAULT_MAX_CV) -> list[dict[str, Any]]:
    """One row per result: the result, its budget, baseline, the two verdicts and the overall status."""
    base = {(b.device_id, b.model): b for b in baseline}
    rows = []
    for r in results:
        budget = budget_for(r, budgets)
        b = base.get((r.device_id, r.model))
        bv, rv = budget_verdict(r, budget), regression_verdict(r, b, threshold_pct, max_cv)
        rows.append({"result": r, "budget_ms": budget, "baseline": b, "baseline_ms": b.median_ms if b else None,
                     "budget_verdict": bv, "regression_verdict": rv, "status": worst(bv, rv)})
    return rows
