"""Latency statistics shared by phones and the host: summary figures and a distribution-free CI of the median."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom


@dataclass(frozen=True)
class LatencySummary:
    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float               # std / mean
    min_ms: float
    max_ms: float
    ci95_ms: tuple[float, float]  # 95% CI of the median (`median_ci`)
    ci95_rel: float               # half-width of the CI over the median


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic confidence interval of the median (no normality assumption): [x_(j), x_(k)] with j, k
    the binomial(n, 1/2) quantiles. Spans the whole sample when n is too small for the confidence asked."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    alpha = 1 - confidence
    j = int(binom.ppf(alpha / 2, n, 0.5))           # 1-based rank of the lower bound
    k = int(binom.ppf(1 - alpha / 2, n, 0.5)) + 1   # 1-based rank of the upper bound
    j, k = max(j, 1), min(k, n)
    return float(x[j - 1]), float(x[k - 1])


def summarize(samples: Sequence[float]) -> LatencySummary:
    """The statistics of latency samples (ms); ValueError for none."""
    if not len(samples):
        raise ValueError("no latency samples to summarize")
    x = np.asarray(samples, dtype=np.float64)
    median = float(np.median(x))
    lo, hi = median_ci(samples)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return LatencySummary(runs=len(x), median_ms=median, p90_ms=float(np.percentile(x, 90)), mean_ms=mean,
                          std_ms=std, cv=std / mean if mean > 0 else 0.0, min_ms=float(x.min()),
                          max_ms=float(x.max()), ci95_ms=(lo, hi),
                          ci95_rel=(hi - lo) / 2 / median if median > 0 else float("inf"))


def is_stable(samples: Sequence[float], eps_percent: float) -> bool:
    """True when the 95% CI of the median lies within +-eps_percent of the median."""
    return len(samples) >= 5 and summarize(samples).ci95_rel * 100 <= eps_percent
