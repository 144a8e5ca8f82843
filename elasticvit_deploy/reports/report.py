"""A benchmark report for CI: verdicts per model and phone, written as JSON, Markdown and HTML per phone, plus
``summary.md`` (compact, for a pull-request comment or a job summary), ``summary.json`` (the next run's baseline),
``junit.xml`` (one test per model x check, for CI test views) and ``index.html`` (every phone at a glance).

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

from .history import History
from .inputs import ModelResult, ReportInputs
from .junit import write_junit
from .render import (
    ICON,
    Phone,
    compared_text,
    device_header,
    html_inline,
    html_page,
    markdown,
    md_code,
    md_text,
    profile_change,
    row_dict,
    safe_name,
    status_cells,
)
from .site import index_page
from .verdicts import DEFAULT_MAX_CV, FAIL, PASS, WARN, judge

KIND = "report-summary"
VERSION = 1
PAGE_KIND = "report-page"
PAGE_VERSION = 1
COMMENT_LIMIT = 65_536   # GitHub's limit on a comment, counted here in UTF-8 bytes (never fewer than it counts)
RESERVED = {"summary", "index", "junit"}   # stems of the report's own files


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
                 threshold_pct: float, out: Path, history: History | None = None,
                 max_cv: float = DEFAULT_MAX_CV) -> dict[str, Any]:
    """Judge every result (regressions with the noise limit `max_cv`), write the report into a fresh directory and
    swap it in for `out`; return the summary (also written as summary.json). With a `history` the pages show each
    model's trend across its labels. OutputDirError when `out` cannot be written (nothing changed there)."""
    target = Path(os.path.abspath(out))  # its parent holds the staging directory, also for "." or "a/.."
    _check_replaceable(target)
    created = not target.exists()
    prepare_out_dir(target)
    staged = None
    try:
        staged = StagedDir(target)
        rows = judge(current.results, baseline, budgets, threshold_pct, max_cv)
        summary = _write_report(current, rows, threshold_pct, history, staged.path, out)
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


def _phones(rows: list[dict[str, Any]], threshold_pct: float, history: History | None) -> list[Phone]:
    """The rows per phone (in the order they first appear), each under a file stem and a name of its own (a phone
    whose name another one took gets its fingerprint's start in both), with each row's op profile change and
    JSON form computed once."""
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_device[row["result"].device_id].append(row)
    phones, stems = [], set()
    for device_id, device_rows in by_device.items():
        head = device_header(device_rows)
        stem, name = safe_name(head["name"]), head["name"]
        if stem in stems or stem in RESERVED:
            stem, name = f"{stem}-{safe_name(device_id)[:12]}", f"{name} ({device_id[:12]})"
        stems.add(stem)
        changes = [profile_change(row["result"], row["baseline"]) for row in device_rows]
        models = [row_dict(row, change, history) for row, change in zip(device_rows, changes, strict=True)]
        phones.append(Phone(stem, name, head, device_rows, changes, models,
                            markdown(head, device_rows, changes, threshold_pct, history)))
    return phones


def _write_report(current: ReportInputs, rows: list[dict[str, Any]], threshold_pct: float, history: History | None,
                  staging: Path, out: Path) -> dict[str, Any]:
    """Write every file into `staging` (naming them by their place in `out`); return the summary."""
    phones = _phones(rows, threshold_pct, history)
    entries = []
    for phone in phones:
        head, stem = phone.head, phone.stem
        fronts = {t: f for t, f in current.fronts.items() if t == head["name"]}
        page = {**header(PAGE_KIND, PAGE_VERSION), "device": head, "threshold_pct": threshold_pct,
                "labels": history.labels if history else head["labels"], "models": phone.models}
        _write_json(staging / f"{stem}.json", page)
        (staging / f"{stem}.md").write_text(phone.markdown, encoding="utf-8")
        (staging / f"{stem}.html").write_text(html_page(f"elasticvit-deploy report: {head['title']}", phone,
                                                       fronts, threshold_pct, history), encoding="utf-8")
        entries.append({"name": head["name"], **({"simulated": head["simulated"]} if head["simulated"] else {}),
                        "fingerprint": head["fingerprint"],
                        "files": {k: str(out / f"{stem}.{k}") for k in ("json", "md", "html")},
                        "status": phone.counts})
    (staging / "summary.md").write_text(summary_markdown(phones, history), encoding="utf-8")
    write_junit(phones, staging / "junit.xml")
    (staging / "index.html").write_text(index_page(phones, history, threshold_pct), encoding="utf-8")
    labels = history.labels if history else list(dict.fromkeys(r.label for r in current.results if r.label))
    summary = {**header(KIND, VERSION), "threshold_pct": threshold_pct, "labels": labels,
               "compared": compared_text([p.head for p in phones], history), "phones": entries,
               "files": {"junit": str(out / "junit.xml"), "index": str(out / "index.html")},
               "results": [r.to_dict() for r in current.results], "fronts": current.fronts,
               "verdicts": [model for phone in phones for model in phone.models],
               "failed": {"budget": any(r["budget_verdict"] is not None and r["budget_verdict"].status == FAIL
                                        for r in rows),
                          "regression": any(r["regression_verdict"] is not None
                                            and r["regression_verdict"].status == FAIL for r in rows)}}
    _write_json(staging / "summary.json", summary)
    return summary


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _title(phones: list[Phone], history: History | None) -> str:
    """The heading, with the labels compared."""
    compared = compared_text([p.head for p in phones], history, md_code)
    return "## elasticvit-deploy benchmark report" + (f": {compared}" if compared else "")


def _phone_line(phone: Phone) -> str:
    figures, slowest = status_cells(phone, md_code)
    return (f"| {md_text(phone.head['title'])} | {' | '.join(figures)} | {ICON[phone.status]} {phone.status} | "
            f"{slowest} |")


def _fold(summary: str, body: str) -> str:
    """`body` (Markdown) folded under `summary` (inline HTML); the blank lines let GitHub render the Markdown."""
    return f"<details><summary>{summary}</summary>\n\n{body.rstrip()}\n\n</details>\n"


def _cut_note(phone: Phone) -> str:
    files = ", ".join(f"[{md_code(f'{phone.stem}.{ext}')}]({phone.stem}.{ext})" for ext in ("md", "html"))
    return f"\n\nCut to fit a comment: the phone's whole details are in {files} in the report directory.\n"


def _rest_note(left: int) -> str:
    return (f"\nThe details of {left} phone(s) do not fit a comment: see [`index.html`](index.html) and the phone "
            f"files in the report directory.\n") if left else ""


def _cut(phone: Phone, summary: str, room: int) -> str | None:
    """The phone's details cut (at a line) to fit `room` bytes with a note naming its files; None if not even
    the note fits."""
    note = _cut_note(phone)
    left = room - _size(_fold(summary, note))
    if left < 0:
        return None
    kept = []
    for line in phone.markdown.splitlines():
        left -= _size(line) + 1
        if left < 0:
            break
        kept.append(line)
    return _fold(summary, "\n".join(kept).rstrip() + note)


def _cap(sizes: list[int], room: int) -> int:
    """The largest size each block may take so that all fit in `room`: blocks under it whole, the others cut to
    it (an even share of what the whole ones leave)."""
    left = room
    for i, size in enumerate(sorted(sizes)):
        if size * (len(sizes) - i) > left:
            return left // (len(sizes) - i)
        left -= size
    return room


def summary_markdown(phones: list[Phone], history: History | None, limit: int = COMMENT_LIMIT) -> str:
    """The report in brief, for a pull-request comment or a job summary (at most `limit` UTF-8 bytes): the labels
    compared, one line per phone (its models, counts, worst status, slowest model), then each phone's page folded
    in <details>. When they do not all fit, the largest are cut to an even share of the room, each with a note
    naming the phone's files; those not even the note fits for are left out, and a last note says so."""
    if not phones:
        return _title(phones, history) + "\n\nNo measured models.\n"
    text = (f"{_title(phones, history)}\n\n| phone | models | pass | warn | fail | status | slowest (median) |\n"
            f"|---|---:|---:|---:|---:|---|---|\n")
    reserve = _size(_rest_note(len(phones)))
    for i, phone in enumerate(phones):
        line = _phone_line(phone) + "\n"
        if _size(text) + _size(line) > limit - reserve:
            return text + (f"\n{len(phones) - i} more phone(s) do not fit a comment: see [`index.html`](index.html) "
                           f"in the report directory.\n")  # shorter than the reserve
        text += line
    summaries = [f"{ICON[p.status]} {html_inline(p.head['title'])}: {p.counts[PASS]} pass, {p.counts[WARN]} warn, "
                 f"{p.counts[FAIL]} fail" for p in phones]
    blocks = ["\n" + _fold(summary, p.markdown) for p, summary in zip(phones, summaries, strict=True)]
    cap = _cap([_size(b) for b in blocks], limit - _size(text) - reserve)
    left_out = 0
    for phone, summary, block in zip(phones, summaries, blocks, strict=True):
        if _size(block) > cap:
            cut = _cut(phone, summary, cap - 1)
            if cut is None:
                left_out += 1
                continue
            block = "\n" + cut
        text += block
    return text + _rest_note(left_out)
