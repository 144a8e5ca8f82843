"""Reports from the results store's labels: which labels are read, in which order, the baseline of every model x
phone, the trends, and `report --from-store` end to end with its bad-input errors."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm.profile_output import ProfileRun
from elasticvit_deploy.farm.store import ResultsStore, export_document, measurement_key
from elasticvit_deploy.farm.summary import summarize_rounds
from elasticvit_deploy.reports.history import read_history
from elasticvit_deploy.reports.inputs import ReportInputError, read_results
from supernet.documents import header

PIXEL = {"fingerprint": "fp-pixel-0123", "serial": "SERIAL1", "alias": "pixel", "model": "Pixel 4", "kind": "phone"}
XIAOMI = {"fingerprint": "fp-xiaomi-4567", "serial": "SERIAL2", "alias": "xiaomi", "model": "Mi 11", "kind": "phone"}


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _rounds(median, seed, n=10, cv=0.01):
    return [float(x) for x in median * (1 + cv * np.random.default_rng(seed).standard_normal(n))]


def _measure(store, label, device, model, rounds_ms, runtime="benchmark_model@abc", profile=None):
    """One complete measurement stored round by round and tagged `label`, as `measure --label` does."""
    flags = {"runs": 10, "label": label}
    mid = store.start(measurement_key("0" * 64, device["fingerprint"], runtime, flags), model_sha256="0" * 64,
                      model_name=model, device=device, runtime=runtime, flags=flags)
    infos = []
    for i, x in enumerate(rounds_ms):
        info = {"count": 10, "init_us": 4000 + i, "memory_mb": {"init_mb": 5.0, "overall_mb": 20.0}}
        store.add_round(mid, [x], info)
        infos.append(info)
    store.finish(mid, summarize_rounds(infos, rounds_ms, {"family": "benchmark_model"}, 10,
                                       model_bytes=123456).to_dict())
    if profile is not None:
        store.set_profile(mid, profile)
    store.tag(mid, label)
    return mid


@pytest.fixture
def store(tmp_path):
    """Three labels: v1 (a, b on the pixel; a on the xiaomi), v2 (a on the pixel), v3 (a, b, c on the pixel; a on
    the xiaomi); v3's a on the pixel is 5% slower than v2's."""
    s = ResultsStore(tmp_path / "results.sqlite")
    _measure(s, "v1", PIXEL, "a.tflite", _rounds(10.0, 1))
    _measure(s, "v1", PIXEL, "b.tflite", _rounds(20.0, 2))
    _measure(s, "v1", XIAOMI, "a.tflite", _rounds(15.0, 3))
    _measure(s, "v2", PIXEL, "a.tflite", _rounds(10.0, 4))
    _measure(s, "v3", PIXEL, "a.tflite", _rounds(10.5, 5),
             profile={"ops": None, "memory_mb": {"peak_mb": 31.5}, "simulated": None, "tool": "benchmark_model"})
    _measure(s, "v3", PIXEL, "b.tflite", _rounds(20.0, 6))
    _measure(s, "v3", PIXEL, "c.tflite", _rounds(30.0, 7))
    _measure(s, "v3", XIAOMI, "a.tflite", _rounds(15.0, 8))
    return s


def _by_key(results):
    return {(r.device["alias"], r.model): r for r in results}


def test_the_latest_label_is_judged_against_the_previous_label_having_the_model(store):
    current, baseline, history = read_history(store)
    assert history.labels == ["v1", "v2", "v3"]
    now, base = _by_key(current.results), _by_key(baseline)
    assert set(now) == {("pixel", "a.tflite"), ("pixel", "b.tflite"), ("pixel", "c.tflite"), ("xiaomi", "a.tflite")}
    assert {r.label for r in current.results} == {"v3"}
    assert base[("pixel", "a.tflite")].label == "v2"      # the nearest earlier label
    assert base[("pixel", "b.tflite")].label == "v1"      # v2 did not measure b
    assert base[("xiaomi", "a.tflite")].label == "v1"
    assert ("pixel", "c.tflite") not in base              # new in v3: no baseline
    a = now[("pixel", "a.tflite")]
    assert a.rounds_ms == pytest.approx(_rounds(10.5, 5), abs=1e-6) and a.device_id == PIXEL["fingerprint"]
    assert a.runtime == "benchmark_model@abc" and a.label == "v3"
    assert a.init_ms == pytest.approx(4.0045) and a.model_bytes == 123456
    assert a.memory_mb == {"init_mb": 5.0, "overall_mb": 20.0, "peak_mb": 31.5}   # the peak from the profile
    assert a.profile is not None and a.profile.tool == "benchmark_model" and a.profile.peak_mb == 31.5
    assert now[("pixel", "b.tflite")].profile is None and "peak_mb" not in now[("pixel", "b.tflite")].memory_mb
    trend = history.trends[(PIXEL["fingerprint"], "a.tflite")]
    assert [p.label for p in trend] == ["v1", "v2", "v3"] and [p.rounds for p in trend] == [10, 10, 10]
    assert trend[2].median_ms == a.median_ms and trend[2].ci95_ms == a.ci95_ms
    assert [p.label for p in history.trends[(PIXEL["fingerprint"], "b.tflite")]] == ["v1", "v3"]


def test_last_k_labels(store):
    current, baseline, history = read_history(store, last=2)
    assert history.labels == ["v2", "v3"]
    assert _by_key(baseline).keys() == {("pixel", "a.tflite")}        # v1 is not selected
    assert read_history(store, last=10)[2].labels == ["v1", "v2", "v3"]


def test_explicit_labels_keep_their_order(store):
    current, baseline, history = read_history(store, labels=["v3", "v1"])
    assert history.labels == ["v3", "v1"]                               # v1 is judged, against v3
    assert {r.label for r in current.results} == {"v1"} and {r.label for r in baseline} == {"v3"}
    assert [p.label for p in history.trends[(PIXEL["fingerprint"], "a.tflite")]] == ["v3", "v1"]
    with pytest.raises(ReportInputError, match=r"label 'nope' is not in the results store .*'v3', 'v2', 'v1'"):
        read_history(store, labels=["v1", "nope"])


def test_device_filter_matches_alias_serial_or_fingerprint_prefix(store):
    for wanted in ("xiaomi", "SERIAL2", "fp-xiao"):
        current, baseline, _ = read_history(store, devices=(wanted,))
        assert {r.device["alias"] for r in current.results + baseline} == {"xiaomi"}, wanted
    both = read_history(store, devices=("pixel", "xiaomi"))[0]
    assert {r.device["alias"] for r in both.results} == {"pixel", "xiaomi"}
    with pytest.raises(ReportInputError, match=r"--device 'oneplus'.*devices: 'pixel', 'xiaomi'"):
        read_history(store, devices=("oneplus",))


def test_a_label_measured_twice_counts_its_newest_measurement(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    _measure(s, "v1", PIXEL, "a.tflite", _rounds(10.0, 1))
    _measure(s, "v2", PIXEL, "a.tflite", _rounds(12.0, 2))
    _measure(s, "v2", PIXEL, "a.tflite", _rounds(11.0, 3), runtime="benchmark_model@def")
    current, baseline, history = read_history(s)
    assert len(current.results) == 1 and current.results[0].runtime == "benchmark_model@def"
    assert [p.label for p in history.trends[(PIXEL["fingerprint"], "a.tflite")]] == ["v1", "v2"]


def test_an_empty_store_says_what_to_do(tmp_path):
    with pytest.raises(ReportInputError, match="no labelled measurements in .*run measure --label L first"):
        read_history(ResultsStore(tmp_path / "empty.sqlite"))


PROFILE = {"ops": None, "memory_mb": {"peak_mb": 30.0}, "simulated": None, "tool": "benchmark_model"}


def _measure_doc(**extra):
    """`measure --json` output of one result with the fields of `extra`."""
    return {**header("measurements", 1), "failures": [], "skipped": [],
            "results": [{**header("measurement", 1), "model": "/models/a.tflite", "model_sha256": "0" * 64,
                         "runtime": "rt", "device": PIXEL, "flags": {}, "cached": False, "median_ms": 10.0,
                         "ci95_ms": [9.9, 10.1], "cv": 0.01, "rounds_ms": [9.9, 10.0, 10.1], **extra}]}


def test_every_reader_keeps_label_init_memory_size_and_profile(store, tmp_path):
    doc = tmp_path / "now.json"
    doc.write_text(json.dumps(_measure_doc(label="v7", init_ms=4.5, memory_mb={"init_mb": 5.0, "overall_mb": 20.0},
                                           model_bytes=1234, profile=PROFILE)))
    (r,) = read_results([doc]).results
    assert (r.label, r.init_ms, r.model_bytes, r.profile) == ("v7", 4.5, 1234, ProfileRun.from_dict(PROFILE))
    assert r.memory_mb == {"init_mb": 5.0, "overall_mb": 20.0, "peak_mb": 30.0}
    old = tmp_path / "old.json"
    old.write_text(json.dumps(_measure_doc()))      # a document from before these fields
    (o,) = read_results([old]).results
    assert (o.label, o.init_ms, o.memory_mb, o.model_bytes, o.profile) == (None, None, {}, None, None)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(export_document(store.labelled("v3"))))
    exported = _by_key(read_results([export]).results)
    a = exported[("pixel", "a.tflite")]
    assert a.label == "v3" and a.model_bytes == 123456 and a.memory_mb["peak_mb"] == 31.5
    assert a.profile is not None and a.profile.to_dict()["memory_mb"] == {"peak_mb": 31.5}
    for extra, message in [({"memory_mb": {"peak_mb": "big"}}, "results[0].memory_mb.peak_mb is 'big'"),
                           ({"model_bytes": -1}, "results[0].model_bytes is -1, not a whole number"),
                           ({"profile": [1]}, "results[0].profile is a list, not an object"),
                           ({"profile": {"tool": 3}}, "results[0].profile is not a stored op profile"),
                           ({"profile": {**PROFILE, "ops": {"nodes": []}}},
                            "results[0].profile is not an op profile"),
                           ({"label": 3}, "results[0].label is a number, not a string")]:
        doc.write_text(json.dumps(_measure_doc(**extra)))
        with pytest.raises(ReportInputError, match=re.escape(message)):
            read_results([doc])


def test_a_malformed_profile_is_a_one_line_error_naming_its_file(tmp_path):
    doc = tmp_path / "now.json"
    doc.write_text(json.dumps(_measure_doc(profile={**PROFILE, "memory_mb": {"peak_mb": "lots"}})))
    r = _cli("report", doc, "--out", tmp_path / "o")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.output, r.output
    assert r.stderr.startswith(f"error: {doc}: malformed results (measurements.results[0].profile is not a stored "
                               f"op profile (memory_mb"), r.stderr
    assert not (tmp_path / "o").exists()


def test_a_malformed_stored_profile_names_the_store_and_measurement(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    mid = _measure(s, "v1", PIXEL, "a.tflite", _rounds(10.0, 1), profile={"ops": None, "tool": 7})
    with pytest.raises(ReportInputError, match=re.escape(f"{s.path} (measurement {mid}): malformed results "
                                                         f"(measurement.profile is not a stored op profile")):
        read_history(s)


def test_cli_report_from_the_store(store, tmp_path):
    out = tmp_path / "report"
    r = _cli("report", "--from-store", "--store", store.path, "--out", out, "--fail-on", "regression")
    assert r.exit_code == 1, r.output                                   # a is 5% slower on a quiet phone
    assert "judged v3 against v2, v1" in r.stdout and "failing: regression" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {(v["device"]["alias"], v["model"]): v for v in summary["verdicts"]}
    a = verdicts[("pixel", "a.tflite")]
    assert a["status"] == "FAIL" and a["regression_verdict"]["details"]["test"] == "mann-whitney"
    assert a["baseline_ms"] == pytest.approx(np.median(_rounds(10.0, 4)))
    assert verdicts[("pixel", "b.tflite")]["status"] == "PASS"
    assert verdicts[("pixel", "c.tflite")]["baseline_ms"] is None
    # the summary is the next baseline: it keeps the labels, memory and profiles
    again = _by_key(read_results([out / "summary.json"]).results)
    assert again[("pixel", "a.tflite")].label == "v3" and again[("pixel", "a.tflite")].memory_mb["peak_mb"] == 31.5
    stored = _by_key(read_history(store)[0].results)[("pixel", "a.tflite")].profile
    assert stored is not None and again[("pixel", "a.tflite")].profile == stored
    # a noise limit below the quiet phone's CV turns the FAIL into "too noisy to judge"
    noisy = _cli("report", "--from-store", "--store", store.path, "--device", "pixel", "--max-cv", "0.1", "--out",
                 tmp_path / "r2", "--json")
    assert noisy.exit_code == 0, noisy.output
    reasons = [v["regression_verdict"]["reason"] for v in json.loads(noisy.stdout)["verdicts"]
               if v["model"] == "a.tflite"]
    assert len(reasons) == 1 and reasons[0].startswith("too noisy to judge")


def test_cli_a_single_label_is_reported_without_regression_verdicts(store, tmp_path):
    r = _cli("report", "--from-store", "--store", store.path, "--labels", "v2", "--out", tmp_path / "o",
             "--fail-on", "regression")
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and "judged v2: the only label selected, so no regression verdicts" in r.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [v["regression_verdict"] for v in summary["verdicts"]] == [None]


def test_cli_from_store_bad_input_is_one_line(store, tmp_path):
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty)
    results = tmp_path / "now.json"
    results.write_text("{}")
    out = tmp_path / "o"
    cases = [(("--from-store", "--store", store.path, results), "give RESULTS files or --from-store, not both"),
             ((), "give RESULTS files to report, or --from-store"),
             (("--from-store", "--store", store.path, "--labels", "v1", "--last", "2"), "exclude each other"),
             ((results, "--labels", "v1"), "--labels select(s) what to read from the results store: add --from-store"),
             ((results, "--last", "1"), "--last select(s)"),
             ((results, "--device", "pixel"), "--device select(s)"),
             (("--from-store", "--store", store.path, "--baseline", results), "--baseline and --from-store"),
             (("--from-store", "--store", empty), "no labelled measurements in"),
             (("--from-store", "--store", tmp_path / "missing.sqlite"), "no such results store"),
             (("--from-store", "--store", store.path, "--labels", "v9"), "label 'v9' is not in the results store"),
             (("--from-store", "--store", store.path, "--labels", " , "), "--labels: give label names"),
             (("--from-store", "--store", store.path, "--device", "oneplus"), "--device 'oneplus'"),
             (("--from-store", "--store", store.path, "--last", "0"), "--last")]
    for args, message in cases:
        r = _cli("report", *args, "--out", out)
        assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1, (args, r.output)
        assert "Traceback" not in r.output
    assert not (tmp_path / "missing.sqlite").exists() and not out.exists()


def test_cli_help_explains_the_store_options():
    text = _cli("report", "--help").stdout
    for option in ("--from-store", "--store", "--labels", "--last", "--device", "--max-cv", "Mann-Whitney",
                   "too noisy to judge"):
        assert option in text
