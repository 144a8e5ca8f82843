"""PASS / WARN / FAIL per model: against its latency budget and against the baseline, using the measurement noise.

Budget: PASS when the whole 95% CI of the median is within the budget; WARN when the median is within but the CI
reaches over it (the noise cannot rule out a miss); FAIL when the median is over. Without a CI the median decides.

Regression (same device fingerprint and model name in the baseline): the change is significant when the two 95% CIs
do not overlap (without CIs: when the change exceeds the threshold). FAIL when slower by more than the threshold and
significant; WARN when slower and significant but within the threshold, or slower by more than the threshold but
within the noise; PASS otherwise (faster, unchanged, or within the noise).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from ..errors import shorten
from .inputs import ModelResult, ReportInputError

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
ORDER = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "reason": self.reason}


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


def regression_verdict(result: ModelResult, base: ModelResult | None, threshold_pct: float) -> Verdict | None:
    if base is None:
        return None
    change = (result.median_ms / base.median_ms - 1) * 100
    if result.ci95_ms and base.ci95_ms:
        significant = result.ci95_ms[0] > base.ci95_ms[1] or result.ci95_ms[1] < base.ci95_ms[0]
    else:
        significant = abs(change) > threshold_pct
    what = f"{change:+.1f}% vs baseline {base.median_ms:.2f} ms"
    runtime = "" if result.runtime == base.runtime else f" (runtime changed: {base.runtime} -> {result.runtime})"
    if change > threshold_pct and significant:
        return Verdict(FAIL, f"{what}, beyond the {threshold_pct:g}% threshold and the noise{runtime}")
    if change > 0 and significant:
        return Verdict(WARN, f"{what}: a real slowdown, within the {threshold_pct:g}% threshold{runtime}")
    if change > threshold_pct:
        return Verdict(WARN, f"{what}: over the {threshold_pct:g}% threshold but within the noise{runtime}")
    return Verdict(PASS, f"{what}{' (faster)' if change < 0 and significant else ''}{runtime}")


def worst(*verdicts: Verdict | None) -> str:
    present = [v.status for v in verdicts if v is not None]
    return max(present, key=ORDER.__getitem__) if present else PASS


def judge(results: list[ModelResult], baseline: list[ModelResult], budgets: list[tuple[str, float]],
          threshold_pct: float) -> list[dict[str, Any]]:
    """One row per result: the result, its budget, baseline, the two verdicts and the overall status."""
    base = {(b.device_id, b.model): b for b in baseline}
    rows = []
    for r in results:
        budget = budget_for(r, budgets)
        b = base.get((r.device_id, r.model))
        bv, rv = budget_verdict(r, budget), regression_verdict(r, b, threshold_pct)
        rows.append({"result": r, "budget_ms": budget, "baseline_ms": b.median_ms if b else None,
                     "budget_verdict": bv, "regression_verdict": rv, "status": worst(bv, rv)})
    return rows
