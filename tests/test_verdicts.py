"""Regression verdicts on the raw rounds: Mann-Whitney U, the bootstrap CI of the ratio of medians, the noise gate,
the CI rule for few rounds, and determinism."""

import numpy as np
import pytest

from elasticvit_deploy.farm.stats import summarize
from elasticvit_deploy.reports.inputs import ModelResult
from elasticvit_deploy.reports.verdicts import judge, ratio_ci, regression_verdict


def _rounds(seed, n=10, median=10.0, cv=0.01):
    """`n` round means around `median` with relative spread `cv`, from a seeded generator."""
    return list(median * (1 + cv * np.random.default_rng(seed).standard_normal(n)))


def _result(rounds, runtime="rt1", device="fp1", model="m.tflite"):
    s = summarize(rounds)
    return ModelResult(device, {"fingerprint": device, "alias": f"phone-{device}"}, runtime, model, s.median_ms,
                       s.ci95_ms, s.cv, list(rounds))


def _verdict(base_rounds, rounds, threshold=5.0, **kw):
    return regression_verdict(_result(rounds), _result(base_rounds), threshold, **kw)


def test_a_true_5pct_regression_on_a_quiet_phone_fails():
    v = _verdict(_rounds(1), _rounds(2, median=10.5))
    assert v.status == "FAIL", v.reason
    d = v.details
    assert d["test"] == "mann-whitney" and d["alternative"] == "slower" and d["p_value"] < 0.05
    assert d["rounds"] == [10, 10] and all(c < 0.02 for c in d["cv"])
    lo, hi = d["ratio_ci95"]
    assert 1 < lo < d["ratio"] < hi and hi >= 1.05
    assert "+" in v.reason and "threshold" in v.reason


def test_the_same_shift_on_a_noisy_phone_is_too_noisy_to_judge():
    v = _verdict(_rounds(1, cv=0.2), _rounds(2, median=10.5, cv=0.2))
    assert v.status == "WARN" and v.reason.startswith("too noisy to judge"), v.reason
    assert "CV" in v.reason and "ratio 95% CI" in v.reason
    assert max(v.details["cv"]) > 0.10


def test_a_noisy_significant_slowdown_fails_only_when_even_the_ci_is_beyond_the_threshold():
    base, slower = _rounds(1, n=30, cv=0.12), _rounds(2, n=30, median=11.0, cv=0.12)
    gated = _verdict(base, slower, 5.0)                 # +10% at CV ~12%: significant, CI reaches under +5%
    assert gated.status == "WARN" and gated.reason.startswith("too noisy to judge"), gated.reason
    assert gated.details["p_value"] < 0.05 and 1 < gated.details["ratio_ci95"][0] < 1.05
    assert _verdict(base, slower, 5.0, max_cv=0.5).status == "FAIL"     # a looser noise limit judges it
    far = _verdict(base, _rounds(2, median=20.0, cv=0.12), 5.0)         # +100%: beyond the threshold anyway
    assert far.status == "FAIL" and far.details["ratio_ci95"][0] >= 1.05 and max(far.details["cv"]) > 0.10


def test_no_change_on_a_quiet_phone_passes():
    v = _verdict(_rounds(1), _rounds(2))
    assert v.status == "PASS", v.reason
    assert v.details["ratio_ci95"][0] < 1 < v.details["ratio_ci95"][1]


def test_a_small_real_slowdown_warns_below_the_threshold():
    v = _verdict(_rounds(1), _rounds(2, median=10.2))
    assert v.status == "WARN" and "a real slowdown of +" in v.reason and "below the 5% threshold" in v.reason
    assert 1 < v.details["ratio_ci95"][0] and v.details["ratio_ci95"][1] < 1.05


def test_a_not_significant_change_that_may_exceed_the_threshold_is_too_noisy():
    v = _verdict(_rounds(1, n=6, cv=0.06), _rounds(2, n=6, median=10.2, cv=0.06))
    assert v.status == "WARN" and v.reason.startswith("too noisy to judge"), v.reason
    assert "cannot be ruled out" in v.reason and v.details["ratio_ci95"][1] > 1.05


def test_faster_passes_as_faster():
    v = _verdict(_rounds(1), _rounds(2, median=9.0))
    assert v.status == "PASS" and "faster" in v.reason
    assert v.details["alternative"] == "faster" and v.details["p_value"] < 0.05 and v.details["ratio_ci95"][1] < 1


def test_a_threshold_decides_between_warn_and_fail():
    base, slower = _rounds(1), _rounds(2, median=10.5)
    assert _verdict(base, slower, 20.0).status == "WARN"
    assert _verdict(base, slower, 0.0).status == "FAIL"


def test_few_rounds_use_the_ci_rule():
    base = _result([9.9, 10.0, 10.1])
    v = regression_verdict(_result([12.0, 12.1, 12.2]), base, 5)
    assert v.status == "FAIL" and v.details["test"] == "ci-overlap" and v.details["rounds"] == [3, 3]
    assert "(3 vs 3 rounds: too few for a distribution test; CIs compared)" in v.reason
    mixed = regression_verdict(_result(_rounds(2, median=10.0)), base, 5)   # 10 rounds vs 3
    assert mixed.details["test"] == "ci-overlap" and "3 vs 10 rounds" in mixed.reason
    searched = ModelResult("fp1", {}, "rt1", "m.tflite", 12.0, None, None, [])
    no_rounds = regression_verdict(searched, base, 5)
    assert no_rounds.status == "FAIL" and "(3 vs 0 rounds: too few" in no_rounds.reason   # +20%, no CI
    assert "medians compared" in no_rounds.reason


def test_runtime_change_is_noted():
    v = regression_verdict(_result(_rounds(2), runtime="rt2"), _result(_rounds(1)), 5)
    assert "runtime changed: rt1 -> rt2" in v.reason


def test_same_inputs_give_the_same_verdict_and_ci():
    base, now = _rounds(3), _rounds(4, median=10.3)
    first, second = _verdict(base, now), _verdict(list(base), list(now))
    assert first == second and first.to_dict() == second.to_dict()
    assert ratio_ci(now, base) == ratio_ci(now, base)
    assert ratio_ci(now, base, seed=1) != ratio_ci(now, base)      # the seed is what fixes it


def test_judge_rows_carry_the_baseline_and_the_noise_limit():
    base = _result(_rounds(1, n=30, cv=0.12))
    now = _result(_rounds(2, n=30, median=11.0, cv=0.12))
    other = _result(_rounds(5), device="fp2")
    rows = judge([now, other], [base], [], 5.0)
    assert rows[0]["baseline"] is base and rows[0]["baseline_ms"] == base.median_ms and rows[1]["baseline"] is None
    assert rows[0]["status"] == "WARN" and rows[1]["regression_verdict"] is None
    assert judge([now], [base], [], 5.0, max_cv=0.5)[0]["status"] == "FAIL"
    assert rows[0]["regression_verdict"].to_dict()["details"]["test"] == "mann-whitney"


@pytest.mark.parametrize("seed", range(5))
def test_a_true_5pct_regression_fails_for_other_seeds_too(seed):
    assert _verdict(_rounds(100 + seed, n=20), _rounds(200 + seed, n=20, median=10.5)).status == "FAIL"


def test_a_likely_slowdown_short_of_p_001_warns_instead_of_failing():
    """Rounds of a shared phone where the current side happened to catch background load: significant at 0.05
    (p ~ 0.011), its CI reaching the threshold, but not certain enough to block a merge."""
    base = [9.52, 9.78, 9.78, 9.81, 9.82, 9.93, 9.99, 10.16, 10.28, 10.32]
    current = [9.7, 9.92, 10.01, 10.25, 10.35, 10.36, 10.55, 10.78, 12.0, 12.58]
    v = _verdict(base, current)
    assert v.status == "WARN" and "not certain enough to fail" in v.reason, v.reason
    assert 0.01 <= v.details["p_value"] < 0.05 and v.details["ratio_ci95"][1] >= 1.05
    assert _verdict(base, [x * 1.06 for x in base]).status == "FAIL"  # the same phone, a clean 6% shift
