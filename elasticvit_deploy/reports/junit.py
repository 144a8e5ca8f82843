"""The report as JUnit XML (``junit.xml``), the test-results format CI systems show (GitHub Actions test
reporters, GitLab's `artifacts:reports:junit`, Jenkins' `junit` step).

One <testsuite> per phone (its properties: fingerprint, runtimes, labels, simulated basis), one <testcase> per model
and check that applies ("MODEL budget", "MODEL regression"; classname = the phone). A phone is named as in the
report, with its fingerprint's start where its file stem needed it (a name another phone took first, e.g. the same
phone with a new fingerprint), so CI views keep the two apart. A FAIL is a <failure> whose message is the verdict's
reason; a WARN passes, with its reason and figures in <system-out>; a PASS is a bare testcase. No test is skipped
or errors: checks that do not apply (no budget, no baseline) are not emitted."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .plots import flat
from .render import Phone
from .verdicts import FAIL, WARN, Verdict

SUITES_NAME = "elasticvit-deploy benchmark report"
CHECKS = ("budget", "regression")
# characters XML 1.0 cannot hold (most control characters, surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: Any) -> str:
    """`text` with the characters XML cannot hold replaced (ElementTree escapes the rest)."""
    return _NOT_XML.sub("\ufffd", str(text))


def _name(text: Any) -> str:
    return _xml(flat(text))


def _figures(row: dict[str, Any], check: str, verdict: Verdict) -> list[str]:
    """What a check's verdict rests on, one `name: value` line each."""
    r = row["result"]
    lines = [f"status: {verdict.status}", f"reason: {verdict.reason}", f"median_ms: {r.median_ms:.4g}"]
    if r.ci95_ms:
        lines.append(f"ci95_ms: {r.ci95_ms[0]:.4g}, {r.ci95_ms[1]:.4g}")
    if check == "budget":
        lines.append(f"budget_ms: {row['budget_ms']:g}")
    else:
        lines.append(f"baseline_ms: {row['baseline_ms']:.4g}")
        if row["baseline"].label:
            lines.append(f"baseline_label: {row['baseline'].label}")
        lines += [f"{key}: {_value(value)}" for key, value in verdict.details.items()]
    return lines


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(_value, value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _testcase(suite: ET.Element, phone: str, row: dict[str, Any], check: str, verdict: Verdict) -> None:
    case = ET.SubElement(suite, "testcase", name=_name(f"{row['result'].model} {check}"), classname=_name(phone),
                         time="0")
    figures = _xml("\n".join(_figures(row, check, verdict)))
    if verdict.status == FAIL:
        ET.SubElement(case, "failure", message=_name(verdict.reason), type=check).text = figures
    elif verdict.status == WARN:
        ET.SubElement(case, "system-out").text = figures


def _suite(root: ET.Element, phone: Phone, timestamp: str) -> tuple[int, int]:
    """Add the phone's testsuite; return its tests and failures."""
    head = phone.head
    verdicts = [(row, check, row[f"{check}_verdict"]) for row in phone.rows for check in CHECKS
                if row[f"{check}_verdict"] is not None]
    failures = sum(v.status == FAIL for _, _, v in verdicts)
    suite = ET.SubElement(root, "testsuite", name=_name(phone.name), tests=str(len(verdicts)),
                          failures=str(failures), errors="0", skipped="0", time="0", timestamp=timestamp)
    properties = ET.SubElement(suite, "properties")
    shown = {"fingerprint": head["fingerprint"], "device_model": head["model"], "simulated": head["simulated"],
             "runtimes": ", ".join(head["runtimes"]), "labels": ", ".join(head["labels"]),
             "baseline_labels": ", ".join(head["baseline_labels"])}
    for key, value in shown.items():
        if value:
            ET.SubElement(properties, "property", name=key, value=_name(value))
    for row, check, verdict in verdicts:
        _testcase(suite, phone.name, row, check, verdict)
    return len(verdicts), failures


def junit_tree(phones: Sequence[Phone], timestamp: str | None = None) -> ET.ElementTree:
    """The report's verdicts as a JUnit XML tree; `timestamp` (ISO 8601, default now in UTC) dates each suite."""
    stamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites", name=SUITES_NAME)
    totals = [_suite(root, phone, stamp) for phone in phones]
    root.set("tests", str(sum(t for t, _ in totals)))
    root.set("failures", str(sum(f for _, f in totals)))
    root.set("errors", "0")
    root.set("skipped", "0")
    root.set("time", "0")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(phones: Sequence[Phone], path: Path) -> None:
    """Write `junit_tree(phones)` to `path` (UTF-8, with an XML declaration)."""
    junit_tree(phones).write(path, encoding="utf-8", xml_declaration=True)
