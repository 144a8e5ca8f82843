"""The report's CI outputs: junit.xml (valid JUnit, one test per model x check), the compact summary.md, index.html
(every phone page linked, the cross-phone chart), the phone pages' trends, regression test details, resources and
op profiles, summary.json as the next baseline, and index.html and a phone page rendered in headless Chromium."""

import base64
import html
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import junitparser
import pytest

from elasticvit_deploy.farm.profile_output import ProfileRun
from elasticvit_deploy.reports.history import History, TrendPoint
from elasticvit_deploy.reports.inputs import ModelResult, ReportInputs, read_results
from elasticvit_deploy.reports.render import md_text
from elasticvit_deploy.reports.report import build_report, summary_markdown
from elasticvit_deploy.reports.verdicts import judge
from supernet.documents import check_header

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SPREAD = [1.0, 1.01, 0.99, 1.005, 0.995, 1.002, 0.998]   # seven rounds around a median, CV ~0.7%
HOSTILE_LABEL = "v2<script>|`x`$a$ @someone"
HOSTILE_OP = "[a|b<script>]:3"


def _types(rows):
    return [{"type": t, "count": c, "avg_ms": ms, "share": share} for t, c, ms, share in rows]


def _nodes(rows):
    return [{"type": t, "name": n, "avg_ms": ms, "share": share} for t, n, ms, share in rows]


# the current profile drops DEPTHWISE_CONV_2D and gains SOFTMAX; the baseline's has no node HOSTILE_OP
PROFILE_DOC = {"ops": {"types": _types([("CONV_2D", 10, 5.0, 0.5), ("FULLY_CONNECTED", 2, 2.0, 0.2),
                                        ("ADD", 4, 1.0, 0.1), ("SOFTMAX", 1, 0.8, 0.08), ("MEAN", 1, 0.7, 0.07),
                                        ("RESHAPE", 3, 0.5, 0.05)]),
                       "nodes": _nodes([("CONV_2D", "[conv1]:0", 3.0, 0.3), ("FULLY_CONNECTED", "[fc]:9", 2.0, 0.2),
                                        ("CONV_2D", HOSTILE_OP, 1.5, 0.15), ("ADD", "[add]:4", 1.0, 0.1),
                                        ("SOFTMAX", "[softmax]:10", 0.8, 0.08), ("CONV_2D", "[conv2]:1", 0.5, 0.05)]),
                       "total_ms": 10.0},
               "memory_mb": {"peak_mb": 60.5}, "simulated": None, "tool": "benchmark_model"}
BASE_PROFILE_DOC = {"ops": {"types": _types([("CONV_2D", 10, 4.0, 0.45), ("DEPTHWISE_CONV_2D", 3, 2.0, 0.2),
                                             ("FULLY_CONNECTED", 2, 2.0, 0.22), ("ADD", 4, 1.0, 0.13)]),
                            "nodes": _nodes([("CONV_2D", "[conv1]:0", 2.5, 0.3),
                                             ("FULLY_CONNECTED", "[fc]:9", 2.0, 0.24),
                                             ("DEPTHWISE_CONV_2D", "[dw]:2", 2.0, 0.24),
                                             ("ADD", "[add]:4", 1.0, 0.12)]),
                            "total_ms": 8.5},
                    "memory_mb": {"peak_mb": 58.0}, "simulated": None, "tool": "benchmark_model"}
PROFILE, BASE_PROFILE = ProfileRun.from_dict(PROFILE_DOC), ProfileRun.from_dict(BASE_PROFILE_DOC)


def _result(median, model="a.tflite", device="fpA", label="v3", budget=None, profile=None, **extra):
    rounds = [median * s for s in SPREAD]
    rounds_sorted = sorted(rounds)
    return ModelResult(device, {"fingerprint": device, "alias": f"phone-{device}", "model": "Pixel 4"},
                       "benchmark_model@abc", model, sorted(rounds)[3], (rounds_sorted[1], rounds_sorted[5]), 0.007,
                       rounds, budget_ms=budget, label=label, profile=profile, **extra)


def _inputs():
    """Phone A: a.tflite 20% slower than its baseline (FAIL) within its budget, b.tflite 2% slower (a significant
    slowdown under the 5% threshold: WARN) over its budget (FAIL), c.tflite with neither budget nor baseline.
    Phone B: a.tflite unchanged (PASS) with a budget its CI reaches over (WARN)."""
    current = [_result(12.0, profile=PROFILE, budget=30, init_ms=40.0, memory_mb={"init_mb": 12.0, "peak_mb": 60.5},
                       model_bytes=4_500_000),
               _result(10.2, model="b.tflite", budget=9),
               _result(5.0, model="c.tflite"),
               _result(10.0, device="fpB", budget=10.01)]
    baseline = [_result(10.0, label="v2", profile=BASE_PROFILE), _result(10.0, model="b.tflite", label="v2"),
                _result(10.0, device="fpB", label="v1")]
    trends = {("fpA", "a.tflite"): [TrendPoint("v1", 9.9, (9.8, 10.0), 7), TrendPoint("v2", 10.0, (9.9, 10.1), 7),
                                    TrendPoint("v3", 12.0, (11.9, 12.1), 7)],
              ("fpA", "b.tflite"): [TrendPoint("v2", 10.0, (9.9, 10.1), 7), TrendPoint("v3", 10.2, (10.1, 10.3), 7)],
              ("fpA", "c.tflite"): [TrendPoint("v3", 5.0, (4.95, 5.05), 7)],
              ("fpB", "a.tflite"): [TrendPoint("v1", 10.0, (9.9, 10.1), 7), TrendPoint("v3", 10.0, (9.9, 10.1), 7)]}
    return ReportInputs(current), baseline, History(["v1", "v2", "v3"], trends)


@pytest.fixture
def report(tmp_path):
    current, baseline, history = _inputs()
    out = tmp_path / "rep"
    summary = build_report(current, baseline, [], 5, out, history)
    return out, summary


def test_the_verdicts_the_outputs_show():
    current, baseline, _ = _inputs()
    rows = judge(current.results, baseline, [], 5)
    got = [(r["result"].device_id, r["result"].model, r["budget_verdict"] and r["budget_verdict"].status,
            r["regression_verdict"] and r["regression_verdict"].status) for r in rows]
    assert got == [("fpA", "a.tflite", "PASS", "FAIL"), ("fpA", "b.tflite", "FAIL", "WARN"),
                   ("fpA", "c.tflite", None, None), ("fpB", "a.tflite", "WARN", "PASS")]
    assert rows[0]["regression_verdict"].details["test"] == "mann-whitney"


COUNTS = ("tests", "failures", "errors", "skipped")


def _check_junit_schema(root):
    """The common JUnit XML schema: <testsuites> of <testsuite name tests failures errors skipped> holding an
    optional <properties> of <property name value>, then <testcase name classname time>, each with at most a
    <failure message type> and <system-out>; integer counts that add up."""
    assert root.tag == "testsuites" and set(root.attrib) >= {"name", *COUNTS}
    totals = dict.fromkeys(COUNTS, 0)
    for suite in root:
        assert suite.tag == "testsuite" and set(suite.attrib) >= {"name", "timestamp", "time", *COUNTS}
        children = [c.tag for c in suite]
        assert children == sorted(children, key=lambda t: t != "properties") and children.count("properties") <= 1
        for prop in suite.iter("property"):
            assert set(prop.attrib) == {"name", "value"}
        cases = suite.findall("testcase")
        assert len(cases) == int(suite.get("tests")) and len(children) == len(cases) + children.count("properties")
        for case in cases:
            assert set(case.attrib) == {"name", "classname", "time"} and float(case.get("time")) >= 0
            tags = [c.tag for c in case]
            assert tags in ([], ["failure"], ["system-out"])
            for failure in case.findall("failure"):
                assert set(failure.attrib) == {"message", "type"} and failure.get("message")
        assert int(suite.get("failures")) == sum(len(c.findall("failure")) for c in cases)
        assert suite.get("errors") == "0" and suite.get("skipped") == "0"
        for key in COUNTS:
            totals[key] += int(suite.get(key))
    assert {k: int(root.get(k)) for k in COUNTS} == totals


def test_junit_has_one_test_per_model_and_check(report):
    out, summary = report
    assert summary["files"]["junit"] == str(out / "junit.xml")
    assert (out / "junit.xml").read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.parse(out / "junit.xml").getroot()
    _check_junit_schema(root)
    assert (root.get("tests"), root.get("failures")) == ("6", "2")
    suites = {s.get("name"): s for s in root}
    assert list(suites) == ["phone-fpA", "phone-fpB"]
    a = suites["phone-fpA"]
    assert {p.get("name"): p.get("value") for p in a.iter("property")}["fingerprint"] == "fpA"
    cases = {c.get("name"): c for c in a.findall("testcase")}
    assert list(cases) == ["a.tflite budget", "a.tflite regression", "b.tflite budget", "b.tflite regression"]
    assert {c.get("classname") for c in cases.values()} == {"phone-fpA"}  # c.tflite: no check applies
    reasons = {(v["model"], k): v[f"{k}_verdict"]["reason"] for v in summary["verdicts"] if v["device_id"] == "fpA"
               for k in ("budget", "regression") if v[f"{k}_verdict"]}
    assert list(cases["a.tflite budget"]) == []                                     # PASS
    failure = cases["a.tflite regression"].find("failure")                          # FAIL
    assert failure.get("message") == reasons[("a.tflite", "regression")] and failure.get("type") == "regression"
    assert "p_value: " in failure.text and "baseline_label: v2" in failure.text
    assert cases["b.tflite budget"].find("failure").get("message") == reasons[("b.tflite", "budget")]
    warn = cases["b.tflite regression"]                                             # WARN: passes, says why
    assert warn.find("failure") is None
    out_text = warn.find("system-out").text
    assert reasons[("b.tflite", "regression")] in out_text and "status: WARN" in out_text
    assert "ratio_ci95: " in out_text and "rounds: 7, 7" in out_text
    b_cases = [(c.get("name"), [x.tag for x in c]) for c in suites["phone-fpB"].findall("testcase")]
    assert b_cases == [("a.tflite budget", ["system-out"]), ("a.tflite regression", [])]
    assert (suites["phone-fpB"].get("tests"), suites["phone-fpB"].get("failures")) == ("2", "0")


def test_junit_reads_with_junitparser(report):
    """A JUnit reader we did not write (junitparser, as CI plugins use) reads the counts and failures."""
    out, _ = report
    suites = list(junitparser.JUnitXml.fromfile(str(out / "junit.xml")))
    assert [(s.name, s.tests, s.failures, s.errors, s.skipped) for s in suites] == [
        ("phone-fpA", 4, 2, 0, 0), ("phone-fpB", 2, 0, 0, 0)]
    failed = [c.name for s in suites for c in s if any(isinstance(r, junitparser.Failure) for r in c.result)]
    assert failed == ["a.tflite regression", "b.tflite budget"]


def test_junit_keeps_two_phones_of_one_name_apart(tmp_path):
    """The same phone with a new fingerprint: two groups of one name, with files and test suites of their own."""
    results = [ModelResult(fp, {"fingerprint": fp, "alias": "pixel"}, "rt", "a.tflite", 10.0, (9.9, 10.1), 0.01,
                           [10.0], budget_ms=5) for fp in ("fp-old-0123456789", "fp-new-9876543210")]
    summary = build_report(ReportInputs(results), [], [], 5, tmp_path / "rep")
    assert [p["files"]["json"] for p in summary["phones"]] == [str(tmp_path / "rep" / "pixel.json"),
                                                                str(tmp_path / "rep" / "pixel-fp-new-98765.json")]
    root = ET.parse(tmp_path / "rep" / "junit.xml").getroot()
    _check_junit_schema(root)
    assert [s.get("name") for s in root] == ["pixel", "pixel (fp-new-98765)"]
    assert [{c.get("classname") for c in s.iter("testcase")} for s in root] == [{"pixel"}, {"pixel (fp-new-98765)"}]
    suites = list(junitparser.JUnitXml.fromfile(str(tmp_path / "rep" / "junit.xml")))
    assert [(s.name, s.tests, s.failures) for s in suites] == [("pixel", 1, 1), ("pixel (fp-new-98765)", 1, 1)]


def test_junit_holds_any_name_as_valid_xml(tmp_path):
    names = ["a\x01b<c>&d\"e'.tflite", "]]>\x1b[31m.tflite", "x\ufffe\nz.tflite"]
    results = [_result(10.0, model=m, budget=5) for m in names]
    build_report(ReportInputs(results), [], [], 5, tmp_path / "rep")
    root = ET.parse(tmp_path / "rep" / "junit.xml").getroot()
    _check_junit_schema(root)
    got = [c.get("name") for c in root.iter("testcase")]
    assert got == ["a b<c>&d\"e'.tflite budget", "]]> [31m.tflite budget", "x\ufffd z.tflite budget"]
    assert all(c.find("failure").get("message").startswith("median 10.00 ms > budget 5") for c in root.iter("testcase"))


def _details(md):
    return re.findall(r"<details><summary>(.*?)</summary>\n\n(.*?)\n\n</details>", md, re.S)


def test_summary_md_is_one_line_per_phone_with_details_folded(report):
    out, _ = report
    md = (out / "summary.md").read_text()
    lines = md.splitlines()
    assert lines[0] == ("## elasticvit-deploy benchmark report: `v3` against `v2`, `v1`; trends over 3 labels, `v1` "
                        "to `v3`")
    table = lines[2:lines.index("", 2)]
    assert table[0] == "| phone | models | pass | warn | fail | status | slowest (median) |" and len(table) == 4
    assert table[2] == "| phone-fpA | 3 | 1 | 0 | 2 | ❌ FAIL | `a.tflite` 12.00 ms |"
    assert table[3] == "| phone-fpB | 1 | 0 | 1 | 0 | ⚠️ WARN | `a.tflite` 10.00 ms |"
    folded = _details(md)
    assert [s for s, _ in folded] == ["❌ phone-fpA: 1 pass, 0 warn, 2 fail", "⚠️ phone-fpB: 0 pass, 1 warn, 0 fail"]
    assert folded[0][1] == (out / "phone-fpA.md").read_text().rstrip()  # each phone's page, whole
    assert md.count("<details>") == md.count("</details>") == 2


def test_summary_md_cuts_details_to_fit_a_comment(tmp_path):
    current = [_result(10.0 + i, model=f"{'long-model-name-' * 8}{i}.tflite", budget=30) for i in range(60)]
    current += [_result(10.0, device=f"fp{i}") for i in range(3)]
    build_report(ReportInputs(current), [], [], 5, tmp_path / "rep")
    full = (tmp_path / "rep" / "summary.md").read_text()
    assert len(full.encode()) > 12_000 and "Cut to fit" not in full
    phones = _phones_of(current)
    cut = summary_markdown(phones, None, limit=6_000)
    assert len(cut.encode()) <= 6_000 and cut.count("<details>") == cut.count("</details>") == 4
    assert "the phone's whole details are in [`phone-fpA.md`](phone-fpA.md), [`phone-fpA.html`](phone-fpA.html)" in cut
    assert _details(cut)[1][1] == (tmp_path / "rep" / "phone-fp0.md").read_text().rstrip()  # later phones fit whole
    tight = summary_markdown(phones, None, limit=1_200)
    assert len(tight.encode()) <= 1_200 and tight.count("| phone-fp") == 4 and "<details>" not in tight
    assert "do not fit a comment: see [`index.html`](index.html)" in tight


def _phones_of(results):
    from elasticvit_deploy.reports.report import _phones

    return _phones(judge(results, [], [], 5), 5, None)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.tables = [], {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.links.append(a["href"])
        elif tag == "img":
            self.images[a["id"]] = a["src"]
        elif tag == "table":
            self.tables.append(a.get("class"))


def _png_size(uri):
    data = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_index_links_every_phone_page_and_embeds_the_charts(report):
    out, summary = report
    assert summary["files"]["index"] == str(out / "index.html")
    page = _Page()
    page.feed((out / "index.html").read_text())
    for phone in ("phone-fpA", "phone-fpB"):
        for ext in ("html", "md", "json"):
            assert f"{phone}.{ext}" in page.links
    assert {"summary.md", "summary.json", "junit.xml"} <= set(page.links)
    assert all((out / href).is_file() for href in page.links)  # relative, and every one leads to a file
    assert set(page.images) == {"plot-cross-phone", "plot-trends"} and page.tables == ["phones"]
    width, height = _png_size(page.images["plot-cross-phone"])
    assert width > 500 and height > 300


def test_phone_pages_show_trends_tests_resources_and_profiles(report):
    out, _ = report
    md = (out / "phone-fpA.md").read_text()
    assert "regression threshold 5%; judged `v3` against `v2`; trends over 3 labels, `v1` to `v3`." in md
    trend = md.split("#### Median (95% CI) across labels, oldest first\n\n")[1].splitlines()
    assert trend[0] == "| model | `v1` | `v2` | `v3` (judged) |"
    assert trend[2] == "| `a.tflite` | 9.90 (9.80–10.00) | 10.00 (9.90–10.10) | 12.00 (11.90–12.10) |"
    assert trend[3] == "| `b.tflite` |  | 10.00 (9.90–10.10) | 10.20 (10.10–10.30) |" and trend[4] == ""  # c: 1 point
    tests = md.split("#### Regression tests\n\n")[1].splitlines()
    assert tests[0] == ("| model | test | p-value | ratio | ratio 95% CI | CV (baseline, now) | "
                        "rounds (baseline, now) |")
    assert re.fullmatch(r"\| `a\.tflite` \| mann-whitney \(slower\) \| 0\.000\d+ \| 1\.200 \| 1\.1\d\d–1\.2\d\d \| "
                        r"0\.7% / 0\.7% \| 7 / 7 \|", tests[2]), tests[2]
    resources = md.split("#### Init time, memory and model size\n\n")[1].splitlines()
    assert resources[0] == "| model | init time | init memory | overall memory | peak memory | model size |"
    assert resources[2] == "| `a.tflite` | 40.00 ms | 12.0 MB | n/a | 60.5 MB | 4.5 MB |" and resources[3] == ""
    profile = md.split("#### Op profile of `a.tflite`\n\n")[1].splitlines()
    assert profile[0] == "total 10.00 ms; tool benchmark\\_model; changes against the baseline's profile"
    types = profile[2:2 + 2 + 5 + 1]
    assert types[2] == "| `CONV_2D` | 10 | 50.0% | 5.000 ms | +5.0 pp | +1.000 ms |"
    assert types[3] == "| `FULLY_CONNECTED` | 2 | 20.0% | 2.000 ms | -2.0 pp | +0.000 ms |"
    assert types[5] == "| `SOFTMAX` | 1 | 8.0% | 0.800 ms | new | new |"
    assert types[7] == "| `DEPTHWISE_CONV_2D` | 3 | — | — | gone (was 20.0%) | gone |"
    nodes = profile[11:]
    assert nodes[0] == "| node | op type | share | avg | Δ share | Δ avg |"
    assert nodes[4] == f"| {md_text(HOSTILE_OP)} | `CONV_2D` | 15.0% | 1.500 ms | new | new |"
    assert nodes[7] == f"| {md_text('[dw]:2')} | `DEPTHWISE_CONV_2D` | — | — | gone (was 24.0%) | gone |"
    assert len(nodes) == 8  # the top 5, then the baseline's top node that is gone
    page = json.loads((out / "phone-fpA.json").read_text())
    a = page["models"][0]
    assert page["labels"] == ["v1", "v2", "v3"] and a["baseline_label"] == "v2"
    assert [p["label"] for p in a["trend"]] == ["v1", "v2", "v3"] and a["trend"][0]["ci95_ms"] == [9.8, 10.0]
    assert a["regression_verdict"]["details"]["rounds"] == [7, 7] and page["models"][2]["trend"] == []
    conv = a["profile_change"]["types"][0]
    assert conv["name"] == "CONV_2D" and conv["share_delta_pp"] == pytest.approx(5.0)
    assert conv["avg_ms_delta"] == pytest.approx(1.0) and a["memory_mb"]["peak_mb"] == 60.5
    html_page = (out / "phone-fpA.html").read_text()
    parsed = _Page()
    parsed.feed(html_page)
    assert set(parsed.images) == {"plot-latency", "plot-trend-0", "plot-trend-1"}
    assert {"tests", "resources", "profile-types", "profile-nodes"} <= set(parsed.tables)
    assert html.escape(HOSTILE_OP) in html_page and "<script>]" not in html_page


def test_no_history_no_profile_keeps_the_pages_as_they_were(tmp_path):
    """Without a history, baseline, profile or resources: no extra section, image or table."""
    results = [ModelResult("fpA", {"alias": "p"}, "rt", "a.tflite", 10.0, (9.5, 10.5), 0.02, [9.5, 10.0, 10.5])]
    summary = build_report(ReportInputs(results), [], [], 5, tmp_path / "rep")
    md = (tmp_path / "rep" / "p.md").read_text()
    assert "####" not in md and "judged" not in md and summary["labels"] == [] and summary["compared"] == ""
    parsed = _Page()
    parsed.feed((tmp_path / "rep" / "p.html").read_text())
    assert list(parsed.images) == ["plot-latency"] and parsed.tables == ["device", "results"]
    index = _Page()
    index.feed((tmp_path / "rep" / "index.html").read_text())
    assert list(index.images) == ["plot-cross-phone"]


def test_hostile_labels_are_literal(tmp_path):
    current = [_result(10.0, label=HOSTILE_LABEL)]
    baseline = [_result(10.0, label="v1")]
    history = History(["v1", HOSTILE_LABEL], {("fpA", "a.tflite"): [TrendPoint("v1", 10.0, None, 7),
                                                                   TrendPoint(HOSTILE_LABEL, 10.0, None, 7)]})
    build_report(ReportInputs(current), baseline, [], 5, tmp_path / "rep", history)
    out = tmp_path / "rep"
    for name in ("summary.md", "phone-fpA.md"):
        md = (out / name).read_text()
        assert md_text(HOSTILE_LABEL) in md and "<script" not in md and "`x`" not in md
        assert "@someone" not in md.replace("\\@someone", "").replace("&#64;someone", "")
    for name in ("index.html", "phone-fpA.html"):
        page = (out / name).read_text()
        assert html.escape(HOSTILE_LABEL) in page and page.count("<script") == 1
    assert ET.parse(out / "junit.xml").getroot().find(".//property[@name='labels']").get("value") == HOSTILE_LABEL


def test_summary_json_stays_the_next_baseline(report, tmp_path):
    out, summary = report
    assert check_header(json.loads((out / "summary.json").read_text()), "report-summary", 1) == 1
    assert summary["labels"] == ["v1", "v2", "v3"]
    again = read_results([out / "summary.json"]).results
    a = next(r for r in again if (r.device_id, r.model) == ("fpA", "a.tflite"))
    assert (a.label, a.init_ms, a.model_bytes, a.memory_mb) == ("v3", 40.0, 4_500_000,
                                                                 {"init_mb": 12.0, "peak_mb": 60.5})
    assert a.profile == PROFILE and len(a.rounds_ms) == 7
    current, _, _ = _inputs()
    rerun = build_report(current, again, [], 5, tmp_path / "again")
    assert not rerun["failed"]["regression"]  # the same results against themselves


def _dump_dom(page):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (scripts/setup.sh installs it)")
def test_index_and_a_phone_page_render_in_headless_chromium(report):
    out, _ = report
    index = _dump_dom(out / "index.html")
    assert index.count('data-rendered="yes"') == 2 and 'data-rendered="no"' not in index
    assert 'id="plot-cross-phone"' in index and 'id="plot-trends"' in index
    assert index.count('href="phone-fpA.html"') == 2 and 'href="phone-fpB.html"' in index
    page = _dump_dom(out / "phone-fpA.html")
    assert page.count('data-rendered="yes"') == 3 and 'data-rendered="no"' not in page
    assert 'id="plot-trend-0"' in page and 'class="profile-types"' in page and 'class="profile-nodes"' in page
    assert "DEPTHWISE_CONV_2D" in page and "gone (was 20.0%)" in page and "+5.0 pp" in page
