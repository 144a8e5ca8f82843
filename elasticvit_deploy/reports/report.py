"""A benchmark report for CI: verdicts per model and phone, written as JSON, Markdown and HTML per phone, plus
``summary.md`` (all phones, for a pull-request comment) and ``summary.json`` (the next run's baseline).

The report directory is published whole: built in a temporary sibling and swapped in for an earlier report only
when complete, so a failure (a full disk, Ctrl-C) leaves the earlier report as it was and no partial one."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from supernet.arch import shorten
from supernet.atomic import OutputDirError, StagedDir, prepare_out_dir
from supernet.documents import document_kind, header

from .inputs import ModelResult, ReportInputs
from .render import device_header, html_page, markdown, row_dict, safe_name
from .verdicts import FAIL, judge

KIND = "report-summary"
VERSION = 1
PAGE_KIND = "report-page"
PAGE_VERSION = 1


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _is_report(directory: Path) -> bool:
    """Whether `directory` holds a report (its summary.json is a report-summary document)."""
    try:
        return document_kind(json.loads((directory / "summary.json").read_text(encoding="utf-8"))) == KIND
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def _check_replaceable(out: Path) -> None:
    """Only an empty directory or an earlier report is replaced: never a directory of other files."""
    if out.is_dir() and any(out.iterdir()) and not _is_report(out):
        raise OutputDirError(f"{shorten(str(out))}: not a report directory (it holds other files); give a new or "
                             f"empty directory, or an earlier report's")


def build_report(current: ReportInputs, baseline: list[ModelResult], budgets: list[tuple[str, float]],
                 threshold_pct: float, out: Path) -> dict[str, Any]:
    """Judge every result, write the report into a fresh directory and swap it in for `out`; return the summary
    (also written as summary.json). OutputDirError when `out` cannot be written (nothing changed there)."""
    target = Path(os.path.abspath(out))  # its parent holds the staging directory, also for "." or "a/.."
    _check_replaceable(target)
    created = not target.exists()
    prepare_out_dir(target)
    staged = None
    try:
        staged = StagedDir(target)
        summary = _write_report(current, baseline, budgets, threshold_pct, staged.path, out)
        staged.commit()
    except BaseException as e:
        if staged is not None:
            staged.discard()
        if created and target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if isinstance(e, OSError):
            raise OutputDirError(f"{shorten(str(out))}: cannot write the report ({e.strerror or e}); nothing "
                                 f"changed there") from None
        raise
    return summary


def _write_report(current: ReportInputs, baseline: list[ModelResult], budgets: list[tuple[str, float]],
                  threshold_pct: float, staging: Path, out: Path) -> dict[str, Any]:
    """Write every file into `staging` (naming them by their place in `out`); return the summary."""
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
        page = {**header(PAGE_KIND, PAGE_VERSION), "device": head, "threshold_pct": threshold_pct,
                "models": [row_dict(r) for r in device_rows]}
        md = markdown(device_rows, threshold_pct)
        _write_json(staging / f"{name}.json", page)
        (staging / f"{name}.md").write_text(md, encoding="utf-8")
        (staging / f"{name}.html").write_text(html_page(f"elasticvit-deploy report: {head['title']}", device_rows,
                                                      fronts, threshold_pct), encoding="utf-8")
        md_parts.append(md)
        phones.append({"name": head["name"], **({"simulated": head["simulated"]} if head["simulated"] else {}),
                       "fingerprint": device_id,
                       "files": {k: str(out / f"{name}.{k}") for k in ("json", "md", "html")},
                       "status": {s: sum(r["status"] == s for r in device_rows) for s in ("PASS", "WARN", "FAIL")}})
    summary_md = "## elasticvit-deploy benchmark report\n\n" + ("\n".join(md_parts) or "No measured models.\n")
    (staging / "summary.md").write_text(summary_md, encoding="utf-8")
    summary = {**header(KIND, VERSION), "threshold_pct": threshold_pct, "phones": phones,
               "results": [r.to_dict() for r in current.results], "fronts": current.fronts,
               "verdicts": [row_dict(r) for r in rows],
               "failed": {"budget": any(r["budget_verdict"] is not None and r["budget_verdict"].status == FAIL
                                        for r in rows),
                          "regression": any(r["regression_verdict"] is not None
                                            and r["regression_verdict"].status == FAIL for r in rows)}}
    _write_json(staging / "summary.json", summary)
    return summary
