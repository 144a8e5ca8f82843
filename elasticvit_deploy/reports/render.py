"""Report pages per phone: JSON, Markdown (a pull-request comment) and a self-contained HTML page with plots
(PNG images embedded as data URIs: the page opens anywhere, offline, with no other file).

Beside the verdicts a page shows, where the results have them: each model's trend across the history's labels,
how its regression verdict was reached (the test, p-value, ratio of medians and its CI, CVs, rounds), its memory
footprint, model size and init time, and its op profile (the slowest op types and nodes, and how their share of
the time changed against the baseline's profile).

Every user string (model file names, device names and fingerprints, runtimes, labels, op names, search targets) is
shown as literal text: escaped for Markdown and HTML, and drawn in the plots without mathtext or TeX."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..farm.profile_output import OpNode, OpTypeTime
from .history import History, TrendPoint
from .inputs import ModelResult
from .plots import flat, latency_plot, pareto_plot, predicted_plot, trend_plot
from .verdicts import FAIL, PASS, WARN

ICON = {PASS: "✅", WARN: "⚠️", FAIL: "❌"}
TOP = 5  # op types and nodes shown per profile
MEMORY = (("init_mb", "init memory"), ("overall_mb", "overall memory"), ("peak_mb", "peak memory"))


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "device"


_CODE_SAFE = re.compile(r"[\w.@:/+=,()?-]+(?: [\w.@:/+=,()?-]+)*")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#$@])")


def md_text(text: Any) -> str:
    """`text` as literal Markdown inline text (a table cell, a heading): Markdown punctuation backslash-escaped
    (no emphasis, links, code, math, mentions or table breaks), `&` and `<` as entities (no HTML), on one line."""
    return _MD_SPECIAL.sub(r"\\\1", flat(text)).replace("&", "&amp;").replace("<", "&lt;")


def md_code(text: Any) -> str:
    """`text` as a code span when it is plain (names, fingerprints, versions), else as `md_text`."""
    line = flat(text)
    return f"`{line}`" if _CODE_SAFE.fullmatch(line) else md_text(line)


def html_inline(text: Any) -> str:
    """`text` as literal inline HTML on one line, also inside Markdown (a <summary> of a comment): `$` and `@` as
    entities too, so no math and no mentions."""
    return html.escape(flat(text)).replace("$", "&#36;").replace("@", "&#64;")


def _fmt(v: float | None, unit: str = " ms") -> str:
    return "n/a" if v is None else f"{v:.2f}{unit}"


def _latency(r: Any) -> str:
    return f"{r.median_ms:.2f} ms" + ("" if r.statistic == "median" else f" ({r.statistic})")


def _ci(row: dict[str, Any]) -> str:
    ci = row["result"].ci95_ms
    return "n/a" if not ci else f"{ci[0]:.2f}–{ci[1]:.2f}"


def _reason(row: dict[str, Any]) -> str:
    parts = [v.reason for v in (row["budget_verdict"], row["regression_verdict"]) if v is not None]
    return "; ".join(parts) or "no budget or baseline"


@dataclass(frozen=True)
class OpChange:
    """One op type or node of a profile beside the same one (by name) in the baseline's profile."""

    name: str                       # the op type, or the node's name as the tool printed it
    type: str
    count: int | None               # nodes of this type (op types only)
    share: float | None             # fraction of the time, 0..1; None when gone (only in the baseline's profile)
    avg_ms: float | None
    base_share: float | None        # None when new (or without a baseline profile)
    base_avg_ms: float | None
    mark: str                       # "new", "gone", or "" (in both profiles, or no baseline profile)

    @property
    def share_delta_pp(self) -> float | None:
        """The change of the share in percentage points; None unless in both profiles."""
        if self.share is None or self.base_share is None:
            return None
        return (self.share - self.base_share) * 100

    @property
    def avg_ms_delta(self) -> float | None:
        if self.avg_ms is None or self.base_avg_ms is None:
            return None
        return self.avg_ms - self.base_avg_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share_delta_pp": self.share_delta_pp, "avg_ms_delta": self.avg_ms_delta}


@dataclass(frozen=True)
class ProfileChange:
    """A result's op profile: its slowest op types and nodes, each against the baseline's profile when it has
    one (`compared`)."""

    types: tuple[OpChange, ...]
    nodes: tuple[OpChange, ...]
    compared: bool
    total_ms: float | None
    tool: str | None
    simulated: str | None           # a simulated phone's profile: what its timings rest on

    def to_dict(self) -> dict[str, Any]:
        return {"types": [t.to_dict() for t in self.types], "nodes": [n.to_dict() for n in self.nodes],
                "compared": self.compared, "total_ms": self.total_ms, "tool": self.tool, "simulated": self.simulated}


@dataclass(frozen=True)
class _Op:
    name: str
    type: str
    count: int | None
    share: float
    avg_ms: float


def _type_ops(types: Sequence[OpTypeTime]) -> list[_Op]:
    return [_Op(t.type, t.type, t.count, t.share, t.avg_ms) for t in types]


def _node_ops(nodes: Sequence[OpNode]) -> list[_Op]:
    return [_Op(n.name, n.type, None, n.share, n.avg_ms) for n in nodes]


def _changes(top: list[_Op], base: list[_Op] | None, base_top: list[_Op], every: list[_Op]) -> tuple[OpChange, ...]:
    """The `top` ops beside their namesakes among the baseline profile's ops `base` (None: no baseline profile),
    then the baseline's top ops (`base_top`) that the current profile (`every` op) no longer has, marked gone."""
    by_name = {op.name: op for op in base or ()}
    present = {op.name for op in every}
    out = []
    for op in top:
        old = by_name.get(op.name)
        out.append(OpChange(op.name, op.type, op.count, op.share, op.avg_ms, old.share if old else None,
                            old.avg_ms if old else None, "new" if base is not None and old is None else ""))
    out += [OpChange(b.name, b.type, b.count, None, None, b.share, b.avg_ms, "gone")
            for b in base_top if b.name not in present]
    return tuple(out)


def profile_change(result: ModelResult, base: ModelResult | None) -> ProfileChange | None:
    """`result`'s op profile (its `TOP` slowest op types and nodes) against `base`'s; None when `result` has no
    op tables."""
    profile = result.profile
    if profile is None or profile.ops is None:
        return None
    ops = profile.ops
    old = base.profile.ops if base is not None and base.profile is not None else None
    types = _changes(_type_ops(ops.top_types(TOP)), _type_ops(old.types) if old else None,
                     _type_ops(old.top_types(TOP)) if old else [], _type_ops(ops.types))
    nodes = _changes(_node_ops(ops.top_nodes(TOP)), _node_ops(old.nodes) if old else None,
                     _node_ops(old.top_nodes(TOP)) if old else [], _node_ops(ops.nodes))
    return ProfileChange(types, nodes, old is not None, ops.total_ms, profile.tool or None, profile.simulated or None)


def trend_of(row: dict[str, Any], history: History | None) -> list[TrendPoint]:
    """The row's trend across the history's labels: its points when there are two or more, else none."""
    if history is None:
        return []
    points = history.trends.get((row["result"].device_id, row["result"].model), [])
    return list(points) if len(points) >= 2 else []


def _point_dict(point: TrendPoint) -> dict[str, Any]:
    return {**asdict(point), "ci95_ms": list(point.ci95_ms) if point.ci95_ms else None}


def row_dict(row: dict[str, Any], change: ProfileChange | None, history: History | None = None) -> dict[str, Any]:
    """A judged row as JSON: the result's figures, its budget, baseline, verdicts (with the regression test's
    details), status, trend (with a history) and its op profile against the baseline's (`change`, the row's
    `profile_change`)."""
    base = row["baseline"]
    return {**row["result"].to_dict(), "budget_ms": row["budget_ms"], "baseline_ms": row["baseline_ms"],
            "baseline_label": base.label if base else None,
            "budget_verdict": row["budget_verdict"].to_dict() if row["budget_verdict"] else None,
            "regression_verdict": row["regression_verdict"].to_dict() if row["regression_verdict"] else None,
            "status": row["status"], "trend": [_point_dict(p) for p in trend_of(row, history)],
            "profile_change": change.to_dict() if change else None}


def device_header(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The device of one page: its name, the timing bases of its simulated results (`simulated`, None for a real
    device) and the title showing both, its identity, runtimes and the labels of its results and baselines."""
    first = rows[0]["result"]
    simulated = "; ".join(dict.fromkeys(r["result"].simulated for r in rows if r["result"].simulated)) or None
    return {"name": first.device_name, "simulated": simulated,
            "title": f"{first.device_name} (simulated: {simulated})" if simulated else first.device_name,
            "fingerprint": first.device_id,
            "model": first.device.get("model"), "manufacturer": first.device.get("manufacturer"),
            "soc": first.device.get("soc"), "build_fingerprint": first.device.get("build_fingerprint"),
            "runtimes": sorted({r["result"].runtime for r in rows if r["result"].runtime}),
            "labels": list(dict.fromkeys(r["result"].label for r in rows if r["result"].label)),
            "baseline_labels": list(dict.fromkeys(r["baseline"].label for r in rows
                                                  if r["baseline"] is not None and r["baseline"].label))}


def counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {s: sum(r["status"] == s for r in rows) for s in (PASS, WARN, FAIL)}


def worst_status(rows: Sequence[dict[str, Any]]) -> str:
    c = counts(rows)
    return FAIL if c[FAIL] else WARN if c[WARN] else PASS


@dataclass(frozen=True)
class Phone:
    """One phone's part of a report: the stem of its files in the report directory, its name distinct among the
    report's phones, its device header, its judged rows with each one's op profile change and JSON form, and its
    Markdown page."""

    stem: str
    name: str                                   # head["name"], with the fingerprint's start where the stem has it
    head: dict[str, Any]
    rows: list[dict[str, Any]]
    changes: list[ProfileChange | None]         # each row's `profile_change`
    models: list[dict[str, Any]]                # each row's `row_dict`
    markdown: str

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.rows)

    @property
    def status(self) -> str:
        return worst_status(self.rows)

    @property
    def slowest(self) -> ModelResult:
        return max((row["result"] for row in self.rows), key=lambda r: r.median_ms)


def status_cells(phone: Phone, code: Callable[[str], str]) -> tuple[list[str], str]:
    """The figures of a phone's status line as cell texts: its models, pass, warn and fail counts; and its slowest
    model (through `code`, which quotes it for Markdown or HTML) with that model's median."""
    c, slowest = phone.counts, phone.slowest
    return ([str(len(phone.rows)), str(c[PASS]), str(c[WARN]), str(c[FAIL])],
            f"{code(slowest.model)} {slowest.median_ms:.2f} ms")


def labels_compared(heads: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The labels the results of these device headers were measured under, and those of their baselines (first
    seen first)."""
    judged = dict.fromkeys(label for head in heads for label in head["labels"])
    against = dict.fromkeys(label for head in heads for label in head["baseline_labels"])
    return list(judged), list(against)


def compared_text(heads: Sequence[dict[str, Any]], history: History | None, code: Callable[[str], str] = str) -> str:
    """Which labels were compared, as one phrase ("" when no result has a label): the labels judged, those they
    were judged against (with a history and none: why there are no regression verdicts), and the labels the
    trends run over; each label through `code` (which quotes it for Markdown or HTML)."""
    judged, against = labels_compared(heads)
    if not judged:
        return ""
    text = ", ".join(map(code, judged))
    if against:
        text += " against " + ", ".join(map(code, against))
    elif history is not None:
        why = "the only label selected" if len(history.labels) == 1 else "no earlier selected label has its models"
        text += f": {why}, so no regression verdicts"
    if history is not None and len(history.labels) >= 2:
        text += (f"; trends over {len(history.labels)} labels, {code(history.labels[0])} to "
                 f"{code(history.labels[-1])}")
    return text


def _mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} MB" if v >= 1 else f"{v:.3f} MB"


def _resources(r: ModelResult) -> list[str]:
    """Init time, the memory figures and the model size, as cell texts."""
    size = None if r.model_bytes is None else r.model_bytes / 1e6
    return [_fmt(r.init_ms), *(_mb(r.memory_mb.get(key)) for key, _ in MEMORY), _mb(size)]


def _has_resources(r: ModelResult) -> bool:
    return r.init_ms is not None or bool(r.memory_mb) or r.model_bytes is not None


_RESOURCE_HEADS = ["init time", *(title for _, title in MEMORY), "model size"]
_TEST_HEADS = ["test", "p-value", "ratio", "ratio 95% CI", "CV (baseline, now)", "rounds (baseline, now)"]
_OP_HEADS = ["share", "avg", "Δ share", "Δ avg"]


def _test_cells(details: dict[str, Any]) -> list[str]:
    """The regression test's figures as cell texts ("n/a" for those that do not apply)."""
    p = details.get("p_value")
    ratio, ci, cv, rounds = (details.get(k) for k in ("ratio", "ratio_ci95", "cv", "rounds"))
    test = str(details.get("test", "n/a")) + (f" ({details['alternative']})" if details.get("alternative") else "")
    return [test, "n/a" if p is None else f"{p:.3g}", "n/a" if ratio is None else f"{ratio:.3f}",
            "n/a" if not ci else f"{ci[0]:.3f}–{ci[1]:.3f}",
            "n/a" if not cv else " / ".join(f"{x * 100:.1f}%" for x in cv),
            "n/a" if not rounds else " / ".join(str(n) for n in rounds)]


def _op_cells(op: OpChange, compared: bool) -> list[str]:
    """Share, average time and their changes against the baseline's profile, as cell texts."""
    share = "—" if op.share is None else f"{op.share * 100:.1f}%"
    avg = "—" if op.avg_ms is None else f"{op.avg_ms:.3f} ms"
    if not compared:
        return [share, avg, "n/a", "n/a"]
    if op.mark:
        was = "" if op.base_share is None else f" (was {op.base_share * 100:.1f}%)"
        return [share, avg, op.mark + was, op.mark]
    pp, ms = op.share_delta_pp, op.avg_ms_delta
    return [share, avg, "n/a" if pp is None else f"{pp:+.1f} pp", "n/a" if ms is None else f"{ms:+.3f} ms"]


def _profile_note(change: ProfileChange) -> str:
    parts = [f"total {change.total_ms:.2f} ms" if change.total_ms is not None else None,
             f"tool {change.tool}" if change.tool else None,
             f"simulated: {change.simulated}" if change.simulated else None,
             "changes against the baseline's profile" if change.compared else "no baseline profile to compare with"]
    return "; ".join(p for p in parts if p)


def _md_table(heads: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table whose cells are already escaped."""
    return [f"| {' | '.join(heads)} |", f"|{'---|' * len(heads)}", *(f"| {' | '.join(r)} |" for r in rows)]


@dataclass(frozen=True)
class _Code:
    """Text shown as code (a model file name, an op name): a code span in Markdown, <code> in HTML."""

    text: str


_Text = str | _Code


@dataclass(frozen=True)
class _Table:
    css: str                                # its class in HTML
    heads: list[str]
    rows: list[list[_Text]]


@dataclass(frozen=True)
class _Section:
    heading: tuple[_Text, ...]              # its parts, shown separated by spaces
    note: str | None
    tables: list[_Table]


def _sections(rows: Sequence[dict[str, Any]], changes: Sequence[ProfileChange | None]) -> list[_Section]:
    """The regression test, resource and op profile sections of a page, those the rows have data for; unescaped,
    for `_md_sections` and `_html_sections` to render."""
    out = []
    tested = [row for row in rows if row["regression_verdict"] is not None and row["regression_verdict"].details]
    if tested:
        out.append(_Section(("Regression tests",), None, [
            _Table("tests", ["model", *_TEST_HEADS], [[_Code(row["result"].model),
                                                       *_test_cells(row["regression_verdict"].details)]
                                                      for row in tested])]))
    sized = [row["result"] for row in rows if _has_resources(row["result"])]
    if sized:
        out.append(_Section(("Init time, memory and model size",), None, [
            _Table("resources", ["model", *_RESOURCE_HEADS], [[_Code(r.model), *_resources(r)] for r in sized])]))
    for row, change in zip(rows, changes, strict=True):
        if change is None:
            continue
        out.append(_Section(("Op profile of", _Code(row["result"].model)), _profile_note(change), [
            _Table("profile-types", ["op type", "count", *_OP_HEADS],
                   [[_Code(t.name), "—" if t.count is None else str(t.count), *_op_cells(t, change.compared)]
                    for t in change.types]),
            _Table("profile-nodes", ["node", "op type", *_OP_HEADS],
                   [[_Code(n.name), _Code(n.type), *_op_cells(n, change.compared)] for n in change.nodes])]))
    return out


def _md(text: _Text) -> str:
    return md_code(text.text) if isinstance(text, _Code) else md_text(text)


def _md_sections(rows: Sequence[dict[str, Any]], changes: Sequence[ProfileChange | None],
                 history: History | None) -> list[str]:
    """The trend table, then the regression test, resource and profile sections, those the rows have data for."""
    lines: list[str] = []
    trends = [(row, trend_of(row, history)) for row in rows]
    trends = [(row, points) for row, points in trends if points]
    if history is not None and trends:
        labels = history.labels
        heads = ["model", *(md_code(label) + (" (judged)" if i == len(labels) - 1 else "")
                            for i, label in enumerate(labels))]
        cells = []
        for row, points in trends:
            at = {p.label: p for p in points}
            cells.append([md_code(row["result"].model),
                          *(_trend_cell(at[label]) if label in at else "" for label in labels)])
        lines += ["", "#### Median (95% CI) across labels, oldest first", "", *_md_table(heads, cells)]
    for section in _sections(rows, changes):
        lines += ["", f"#### {' '.join(map(_md, section.heading))}"]
        if section.note is not None:
            lines += ["", md_text(section.note)]
        for table in section.tables:
            lines += ["", *_md_table(table.heads, [[_md(c) for c in r] for r in table.rows])]
    return lines


def _trend_cell(point: TrendPoint) -> str:
    ci = f" ({point.ci95_ms[0]:.2f}–{point.ci95_ms[1]:.2f})" if point.ci95_ms else ""
    return f"{point.median_ms:.2f}{ci}"


def markdown(head: dict[str, Any], rows: Sequence[dict[str, Any]], changes: Sequence[ProfileChange | None],
             threshold_pct: float, history: History | None = None) -> str:
    """The Markdown page of one phone: its `head` (`device_header`), its judged `rows` with their `changes`
    (each row's `profile_change`), the labels compared, and the sections the rows have data for."""
    c = counts(rows)
    compared = compared_text([head], history, md_code)
    lines = [f"### {md_text(head['title'])}: {ICON[worst_status(rows)]} {c[PASS]} pass, {c[WARN]} warn, "
             f"{c[FAIL]} fail",
             "", f"Device {md_code(head['model'] or '?')} (fingerprint {md_code(head['fingerprint'])}), runtime "
             f"{', '.join(md_code(r) for r in head['runtimes']) or 'n/a'}; regression threshold {threshold_pct:g}%"
             + (f"; judged {compared}." if compared else "."),
             "", "| model | median | 95% CI | CV | predicted | budget | baseline | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        r = row["result"]
        cv = "n/a" if r.cv is None else f"{r.cv * 100:.1f}%"
        lines.append(f"| {md_code(r.model)} | {_latency(r)} | {_ci(row)} | {cv} | {_fmt(r.predicted_ms)} | "
                     f"{_fmt(row['budget_ms'])} | {_fmt(row['baseline_ms'])} | {ICON[row['status']]} "
                     f"{row['status']}: {md_text(_reason(row))} |")
    lines += _md_sections(rows, changes, history)
    return "\n".join(lines) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:4px 8px;font-size:14px}
th{background:#f6f8fa}td.num{text-align:right}.PASS{color:#1a7f37}.WARN{color:#9a6700}.FAIL{color:#cf222e}
img{max-width:100%;display:block;margin:1em 0}code{background:#f6f8fa;padding:1px 4px}"""
# Marks each plot once the browser has decoded it, so a headless check can see the page really renders.
_SCRIPT = """window.addEventListener('load',function(){document.querySelectorAll('img.plot').forEach(function(i){
i.setAttribute('data-rendered',i.complete&&i.naturalWidth>0?'yes':'no')});});"""


def page_start(title: str) -> str:
    """The head of a self-contained page (its style, and the script marking decoded plots) and its heading."""
    e = html.escape
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>\n<h1>{e(title)}</h1>")


def plot_img(plot_id: str, alt: str, uri: str) -> str:
    """An embedded plot; `plot_id` and `alt` are escaped."""
    e = html.escape
    return f"<img class='plot' id='{e(plot_id)}' alt='{e(alt)}' src='{uri}'>"


def html_table(table_class: str, heads: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table: `heads` are escaped, the cells of `rows` are HTML already (escape user strings first)."""
    e = html.escape
    return "\n".join([f"<table class='{e(table_class)}'><tr>{''.join(f'<th>{e(h)}</th>' for h in heads)}</tr>",
                      *(f"<tr>{''.join(f'<td>{c}</td>' for c in r)}</tr>" for r in rows), "</table>"])


def code_html(text: Any) -> str:
    """`text` escaped in a <code> element."""
    return f"<code>{html.escape(str(text))}</code>"


def _html(text: _Text) -> str:
    return code_html(text.text) if isinstance(text, _Code) else html.escape(text)


def _html_sections(rows: Sequence[dict[str, Any]], changes: Sequence[ProfileChange | None],
                   history: History | None) -> list[str]:
    """The trend plots, then the regression test, resource and profile sections, those the rows have data for."""
    parts = []
    trends = [(i, row, trend_of(row, history)) for i, row in enumerate(rows)]
    if history is not None and any(points for _, _, points in trends):
        parts.append("<h2>Trends across labels</h2>")
        for i, row, points in trends:
            if points:
                model = row["result"].model
                parts.append(plot_img(f"plot-trend-{i}", f"trend of {model}",
                                      trend_plot(model, points, history.labels, row["status"])))
    for section in _sections(rows, changes):
        parts.append(f"<h2>{' '.join(map(_html, section.heading))}</h2>")
        if section.note is not None:
            parts.append(f"<p>{html.escape(section.note)}</p>")
        parts += [html_table(t.css, t.heads, [[_html(c) for c in r] for r in t.rows]) for t in section.tables]
    return parts


def html_page(title: str, phone: Phone, fronts: dict[str, list[dict[str, Any]]], threshold_pct: float,
              history: History | None = None) -> str:
    """The self-contained HTML page of one phone: its device table, its results with their verdicts, the plots
    and the sections its rows have data for."""
    e = html.escape
    head, rows = phone.head, phone.rows
    parts = [page_start(title), "<table class='device'>"]
    for key in ("name", *(("simulated",) if head["simulated"] else ()), "model", "manufacturer", "soc",
                "fingerprint", "build_fingerprint"):
        parts.append(f"<tr><th>{e(key)}</th><td><code>{e(str(head[key] or 'n/a'))}</code></td></tr>")
    parts.append(f"<tr><th>runtimes</th><td>{e(', '.join(head['runtimes']) or 'n/a')}</td></tr>")
    for key in ("labels", "baseline_labels"):
        if head[key]:
            parts.append(f"<tr><th>{e(key.replace('_', ' '))}</th><td>{', '.join(map(code_html, head[key]))}"
                         f"</td></tr>")
    parts.append(f"<tr><th>regression threshold</th><td>{threshold_pct:g}%</td></tr></table>")
    parts.append("<table class='results'><tr><th>model</th><th>median</th><th>95% CI</th><th>CV</th>"
                 "<th>predicted</th><th>budget</th><th>baseline</th><th>verdict</th><th>why</th></tr>")
    for row in rows:
        r = row["result"]
        cv = "n/a" if r.cv is None else f"{r.cv * 100:.1f}%"
        parts.append(f"<tr><td><code>{e(r.model)}</code></td><td class='num'>{e(_latency(r))}</td>"
                     f"<td class='num'>{e(_ci(row))}</td><td class='num'>{cv}</td>"
                     f"<td class='num'>{_fmt(r.predicted_ms)}</td><td class='num'>{_fmt(row['budget_ms'])}</td>"
                     f"<td class='num'>{_fmt(row['baseline_ms'])}</td>"
                     f"<td class='{row['status']}'><b>{row['status']}</b></td><td>{e(_reason(row))}</td></tr>")
    parts.append("</table>")
    plots = [("latency", latency_plot(rows)), ("predicted", predicted_plot(rows)), ("pareto", pareto_plot(fronts))]
    for name, uri in plots:
        if uri is not None:
            parts.append(plot_img(f"plot-{name}", f"{name} plot", uri))
    parts += _html_sections(rows, phone.changes, history)
    parts.append("</body></html>")
    return "\n".join(parts)
