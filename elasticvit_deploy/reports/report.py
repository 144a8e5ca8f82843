"""A benchmark report for CI: verdicts per model and phone, written as JSON, Markdown and HTML per phone, plus
``summary.md`` (all phones, for a pull-request comment) and ``summary.json`` (the next run's baseline)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from supernet.atomic import atomic_output, write_json_atomic

from .inputs import ModelResult, ReportInputs
from .render import device_header, html_page, markdown, row_dict, safe_name
from .verdicts import FAIL, judge

KIND = "elasticvit-deploy-report"
VERSION = 1


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def build_report(current: ReportInputs, baseline: list[ModelResult], budgets: list[tuple[str, float]],
                 threshold_pct: float, out: Path) -> dict[str, Any]:
    """Judge every result, write every file into `out`, and return the summary (also written as summary.json)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = judge(current.results, baseline, budgets, threshold_pct)
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_device[row["result"].device_id].append(row)
    phones, md_parts, names = [], [], set()
    for device_id, device_rows in by_device.items():
        head = device_header(device_rows)
        name = safe_name(head["name"])
        if name in names or name == "summary":
            name = f"{name}-{safe_name(device_id)[:12]}"
        names.add(name)
        fronts = {t: f for t, f in current.fronts.items() if t == head["name"]}
        page = {"device": head, "threshold_pct": threshold_pct, "models": [row_dict(r) for r in device_rows]}
        md = markdown(device_rows, threshold_pct)
        write_json_atomic(out / f"{name}.json", page)
        _write_text(out / f"{name}.md", md)
        _write_text(out / f"{name}.html", html_page(f"elasticvit-deploy report: {head['name']}", device_rows,
                                                    fronts, threshold_pct))
        md_parts.append(md)
        phones.append({"name": head["name"], "fingerprint": device_id,
                       "files": {k: str(out / f"{name}.{k}") for k in ("json", "md", "html")},
                       "status": {s: sum(r["status"] == s for r in device_rows) for s in ("PASS", "WARN", "FAIL")}})
    summary_md = "## elasticvit-deploy benchmark report\n\n" + ("\n".join(md_parts) or "No measured models.\n")
    _write_text(out / "summary.md", summary_md)
    summary = {"kind": KIND, "version": VERSION, "threshold_pct": threshold_pct, "phones": phones,
               "results": [r.to_dict() for r in current.results], "fronts": current.fronts,
               "verdicts": [row_dict(r) for r in rows],
               "failed": {"budget": any(r["budget_verdict"] is not None and r["budget_verdict"].status == FAIL
                                        for r in rows),
                          "regression": any(r["regression_verdict"] is not None
                                            and r["regression_verdict"].status == FAIL for r in rows)}}
    write_json_atomic(out / "summary.json", summary)
    return summary
