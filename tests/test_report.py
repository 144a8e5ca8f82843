"""Reports: verdicts against budgets and baselines, the files per phone, the CI gate, bad input, and the HTML page
rendered in headless Chromium."""

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.reports.inputs import ModelResult, ReportInputError, read_results
from elasticvit_deploy.reports.verdicts import budget_verdict, judge, parse_budgets, regression_verdict
from supernet.documents import check_header, header

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _result(median, ci=None, model="m.tflite", device="fp1", runtime="rt1", budget=None, predicted=None):
    return ModelResult(device, {"fingerprint": device, "serial": f"serial-{device}", "alias": f"phone-{device}"},
                       runtime, model, median, ci, 0.01, [median * 0.99, median, median * 1.01], predicted, budget)


def _measure_doc(rows):
    """`measure --json` output for (device, model, median, ci) rows."""
    return {**header("measurements", 1),
            "results": [{**header("measurement", 1), "model": f"/models/{m}", "model_sha256": "0" * 64,
                         "runtime": "benchmark_model@abc",
                         "device": {"fingerprint": d, "serial": f"serial-{d}", "alias": f"phone-{d}",
                                    "model": "Pixel 4", "kind": "phone"},
                         "flags": {}, "cached": False, "median_ms": med, "ci95_ms": ci, "cv": 0.02,
                         "rounds_ms": [ci[0], med, ci[1]]} for d, m, med, ci in rows],
            "failures": [], "skipped": []}


def test_budget_verdicts():
    assert budget_verdict(_result(10.0, (9.5, 10.5)), None) is None
    assert budget_verdict(_result(10.0, (9.5, 10.5)), 11).status == "PASS"
    warn = budget_verdict(_result(10.0, (9.5, 10.5)), 10.2)
    assert warn.status == "WARN" and "10.50" in warn.reason
    assert budget_verdict(_result(10.3, (9.5, 10.5)), 10.2).status == "FAIL"
    assert budget_verdict(_result(10.3), 10.2).status == "FAIL" and budget_verdict(_result(10.1), 10.2).status == "PASS"


def test_regression_verdicts_use_the_noise():
    base = _result(10.0, (9.8, 10.2))
    assert regression_verdict(_result(12.0, (11.8, 12.2)), base, 5).status == "FAIL"       # +20%, significant
    assert regression_verdict(_result(10.4, (10.3, 10.5)), base, 5).status == "WARN"       # +4%, significant
    assert regression_verdict(_result(10.8, (9.0, 12.0)), base, 5).status == "WARN"       # +8%, noisy
    assert regression_verdict(_result(10.1, (9.9, 10.3)), base, 5).status == "PASS"       # within noise
    faster = regression_verdict(_result(8.0, (7.9, 8.1)), base, 5)
    assert faster.status == "PASS" and "faster" in faster.reason
    changed = regression_verdict(_result(10.0, (9.8, 10.2), runtime="rt2"), base, 5)
    assert "runtime changed" in changed.reason
    assert regression_verdict(_result(10.0), None, 5) is None
    rows = judge([_result(12.0, (11.8, 12.2), budget=11.0), _result(5.0, device="other")], [base], [], 5)
    assert [r["status"] for r in rows] == ["FAIL", "PASS"] and rows[1]["baseline_ms"] is None


def test_budget_specs():
    assert parse_budgets(("a.tflite=30", "*-int8*=12.5")) == [("a.tflite", 30.0), ("*-int8*", 12.5)]
    for bad in ("a.tflite", "=3", "a=0", "a=x"):
        with pytest.raises(ReportInputError, match="MODEL=MS"):
            parse_budgets((bad,))
    rows = judge([_result(10.0, model="net-int8.tflite")], [], parse_budgets(("net-int8=9", "*int8*=20")), 5)
    assert rows[0]["budget_ms"] == 20 and rows[0]["status"] == "PASS"


def test_cli_report_per_phone_files_and_ci_gate(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_measure_doc([("fpA", "a.tflite", 10.0, [9.9, 10.1]),
                                             ("fpA", "b.tflite", 20.0, [19.8, 20.2])])))
    now = tmp_path / "now.json"
    now.write_text(json.dumps(_measure_doc([("fpA", "a.tflite", 12.5, [12.4, 12.6]),
                                            ("fpA", "b.tflite", 20.1, [19.9, 20.3]),
                                            ("fpB", "a.tflite", 30.0, [29.0, 31.0])])))
    out = tmp_path / "report"
    r = _cli("report", now, "--baseline", base, "--budget", "a=25", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert {p["name"]: p["status"] for p in summary["phones"]} == {
        "phone-fpA": {"PASS": 1, "WARN": 0, "FAIL": 1}, "phone-fpB": {"PASS": 0, "WARN": 0, "FAIL": 1}}
    assert summary["failed"] == {"budget": True, "regression": True}
    for phone in ("phone-fpA", "phone-fpB"):
        for ext in ("json", "md", "html"):
            assert (out / f"{phone}.{ext}").stat().st_size > 200
    md = (out / "summary.md").read_text()
    assert "| `a.tflite` | 12.50 ms" in md and "+25.0% vs baseline" in md and "30.00 ms > budget 25 ms" in md
    assert "FAIL" in md and "fingerprint `fpA`" in md and "benchmark_model@abc" in md
    page = json.loads((out / "phone-fpA.json").read_text())
    assert check_header(page, "report-page", 1) and page["device"]["fingerprint"] == "fpA" and len(page["models"]) == 2
    assert check_header(json.loads((out / "summary.json").read_text()), "report-summary", 1) == 1
    assert _cli("report", now, "--baseline", base, "--out", out, "--fail-on", "regression").exit_code == 1
    assert _cli("report", now, "--out", out, "--fail-on", "regression").exit_code == 0  # no baseline: nothing to fail
    assert _cli("report", now, "--out", out, "--budget", "*=100", "--fail-on", "budget").exit_code == 0
    # the report's own summary.json is the next baseline: identical numbers, no regression
    again = _cli("report", now, "--baseline", out / "summary.json", "--out", tmp_path / "r2", "--fail-on",
                 "regression", "--json")
    assert again.exit_code == 0 and not json.loads(again.stdout)["failed"]["regression"]


def test_cli_report_bad_input_is_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "empty.json").write_text(json.dumps(_measure_doc([])))
    (tmp_path / "broken.json").write_text(json.dumps({**header("measurements", 1),
                                                      "results": [{**header("measurement", 1), "model": "x"}]}))
    zero = _measure_doc([("fpA", "a.tflite", 0.0, [0.0, 0.0])])
    (tmp_path / "zero.json").write_text(json.dumps(zero))
    headerless = _measure_doc([("fpA", "a.tflite", 1.0, [0.9, 1.1])])
    del headerless["format"], headerless["version"]
    (tmp_path / "headerless.json").write_text(json.dumps(headerless))
    (tmp_path / "newer.json").write_text(json.dumps({**_measure_doc([]), "version": 2}))
    (tmp_path / "state.json").write_text(json.dumps({**header("search-state", 2), "results": []}))
    (tmp_path / "text.json").write_text(json.dumps({**_measure_doc([("fpA", "a.tflite", 1.0, [0.9, 1.1])]),
                                                    "results": [{**zero["results"][0], "median_ms": "fast"}]}))
    cases = [((tmp_path / "missing.json",), "no such file"), ((tmp_path / "bad.json",), "not a JSON results file"),
             ((tmp_path / "other.json",), "not measure --json output"), ((tmp_path / "empty.json",), "no measured"),
             ((tmp_path / "broken.json",), "malformed results (measurements.results[0] has no device)"),
             ((tmp_path / "zero.json",), "positive number"),
             ((tmp_path / "empty.json", "--budget", "x"), "MODEL=MS"),
             ((tmp_path / "headerless.json",), "not measure --json output"),
             ((tmp_path / "newer.json",), "elasticvit-deploy.measurements version 2 is not readable"),
             ((tmp_path / "state.json",), "(a 'search-state' document)"),
             ((tmp_path / "text.json",), "measurements.results[0].median_ms is 'fast', not a finite number")]
    for args, message in cases:
        r = _cli("report", *args, "--out", tmp_path / "o")
        assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1, (args, r.output)


def test_report_on_a_real_host_measurement(tiny_tflite, tmp_path):
    r = _cli("measure", tiny_tflite, "--device", "host", "--runs", "5", "--warmup", "1", "--rounds", "3", "--json")
    assert r.exit_code == 0, r.output
    (tmp_path / "m.json").write_text(r.stdout)
    r = _cli("report", tmp_path / "m.json", "--budget", "tiny=1000", "--out", tmp_path / "rep", "--json")
    assert r.exit_code == 0, r.output
    verdict = json.loads(r.stdout)["verdicts"][0]
    assert verdict["model"] == "tiny.tflite" and verdict["status"] == "PASS" and len(verdict["rounds_ms"]) == 3
    assert verdict["device"]["kind"] == "host"


def test_search_results_bring_their_budgets_predictions_and_fronts(tmp_path):
    choice = {"device": "phone-fpA", "budget_ms": 30, "arch": {"resolution": 128}, "predicted_ms": 21.0,
              "measured_ms": 20.1, "model": "/x/b.tflite", "measured_on": {"fingerprint": "fpA", "runtime": "rt"}}
    unmeasured = {**choice, "measured_ms": None, "model": None}
    front = {"phone-fpA": [{"latency_ms": 10.0, "score": 100.0}]}
    (tmp_path / "result.json").write_text(json.dumps({**header("search-result", 1), "choices": [choice, unmeasured],
                                                      "pareto": front}))
    inputs = read_results([tmp_path / "result.json"])
    (r,) = inputs.results
    assert (r.model, r.device_id, r.budget_ms, r.median_ms, r.runtime) == ("b.tflite", "fpA", 30.0, 20.1, "rt")
    assert r.predicted_ms == 21.0 and r.device_name == "phone-fpA" and inputs.fronts == front
    (tmp_path / "result.json").write_text(json.dumps({**header("search-result", 1), "choices": [choice],
                                                      "pareto": {"p": [{"latency_ms": 1}]}}))
    with pytest.raises(ReportInputError, match=r"malformed results \(search-result.pareto.p\[0\] has no score\)"):
        read_results([tmp_path / "result.json"])
    (tmp_path / "result.json").write_text(json.dumps({"choices": [choice], "pareto": front}))  # no header
    with pytest.raises(ReportInputError, match="not measure --json output, a results export, a search result"):
        read_results([tmp_path / "result.json"])


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (scripts/setup.sh installs it)")
def test_html_renders_in_headless_chromium(tmp_path):
    now = tmp_path / "now.json"
    now.write_text(json.dumps(_measure_doc([("fpA", "a.tflite", 12.5, [12.4, 12.6]),
                                            ("fpA", "b.tflite", 20.1, [19.9, 20.3])])))
    search = {**header("search-result", 1),
              "choices": [{"device": "phone-fpA", "budget_ms": 30, "arch": {"resolution": 128}, "mflops": 100.0,
                           "predicted_ms": 21.0, "measured_ms": 20.1, "model": "/x/b.tflite",
                           "measured_on": {"fingerprint": "fpA", "alias": "phone-fpA", "runtime": "rt"}},
                          {"device": "phone-fpA", "budget_ms": 9, "arch": {"resolution": 128}, "mflops": 50.0,
                           "predicted_ms": 8.0, "measured_ms": 8.5, "model": "/x/c.tflite",
                           "measured_on": {"fingerprint": "fpA", "alias": "phone-fpA", "runtime": "rt",
                                           "statistic": "best"}}],
              "pareto": {"phone-fpA": [{"latency_ms": 10.0, "score": 100.0}, {"latency_ms": 20.0, "score": 200.0}]}}
    (tmp_path / "search.json").write_text(json.dumps(search))
    out = tmp_path / "rep"
    assert _cli("report", now, tmp_path / "search.json", "--out", out).exit_code == 0
    page = out / "phone-fpA.html"
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    for plot in ("latency", "predicted", "pareto"):
        assert f'id="plot-{plot}"' in dom
    assert dom.count('data-rendered="yes"') == 3 and 'data-rendered="no"' not in dom
    assert dom.count("<tr>") >= 4 + 7 and "a.tflite" in dom and "fpA" in dom
    assert "8.50 ms (best)" in dom  # a search's fastest-inference figure is not shown as a median
