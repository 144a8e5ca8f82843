"""Report pages per phone: JSON, Markdown (a pull-request comment) and a self-contained HTML page with plots
(PNG images embedded as data URIs: the page opens anywhere, offline, with no other file).

Every user string (model file names, device names and fingerprints, runtimes, search targets) is shown as literal
text: escaped for Markdown and HTML, and drawn in the plots without mathtext or TeX."""

from __future__ import annotations

import base64
import html
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .verdicts import FAIL, PASS, WARN

ICON = {PASS: "✅", WARN: "⚠️", FAIL: "❌"}
COLOR = {PASS: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e"}


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "device"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_CODE_SAFE = re.compile(r"[\w.@:/+=,()?-]+(?: [\w.@:/+=,()?-]+)*")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#$@])")


def _flat(text: Any) -> str:
    """`text` on one line: control characters (newlines, tabs, escapes) become single spaces."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def md_text(text: Any) -> str:
    """`text` as literal Markdown inline text (a table cell, a heading): Markdown punctuation backslash-escaped
    (no emphasis, links, code, math, mentions or table breaks), `&` and `<` as entities (no HTML), on one line."""
    return _MD_SPECIAL.sub(r"\\\1", _flat(text)).replace("&", "&amp;").replace("<", "&lt;")


def md_code(text: Any) -> str:
    """`text` as a code span when it is plain (names, fingerprints, versions), else as `md_text`."""
    flat = _flat(text)
    return f"`{flat}`" if _CODE_SAFE.fullmatch(flat) else md_text(flat)


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


def row_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {**row["result"].to_dict(), "budget_ms": row["budget_ms"], "baseline_ms": row["baseline_ms"],
            "budget_verdict": row["budget_verdict"].to_dict() if row["budget_verdict"] else None,
            "regression_verdict": row["regression_verdict"].to_dict() if row["regression_verdict"] else None,
            "status": row["status"]}


def device_header(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The device of one page: its name, the timing bases of its simulated results (`simulated`, None for a real
    device) and the title showing both, its identity and runtimes."""
    first = rows[0]["result"]
    simulated = "; ".join(dict.fromkeys(r["result"].simulated for r in rows if r["result"].simulated)) or None
    return {"name": first.device_name, "simulated": simulated,
            "title": f"{first.device_name} (simulated: {simulated})" if simulated else first.device_name,
            "fingerprint": first.device_id,
            "model": first.device.get("model"), "manufacturer": first.device.get("manufacturer"),
            "soc": first.device.get("soc"), "build_fingerprint": first.device.get("build_fingerprint"),
            "runtimes": sorted({r["result"].runtime for r in rows if r["result"].runtime})}


def markdown(rows: Sequence[dict[str, Any]], threshold_pct: float, title: bool = True) -> str:
    head = device_header(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in (PASS, WARN, FAIL)}
    lines = []
    if title:
        icon = ICON[FAIL] if counts[FAIL] else ICON[WARN] if counts[WARN] else ICON[PASS]
        lines.append(f"### {md_text(head['title'])}: {icon} {counts[PASS]} pass, {counts[WARN]} warn, "
                     f"{counts[FAIL]} fail")
    lines += ["", f"Device {md_code(head['model'] or '?')} (fingerprint {md_code(head['fingerprint'])}), runtime "
              f"{', '.join(md_code(r) for r in head['runtimes']) or 'n/a'}; regression threshold {threshold_pct:g}%.",
              "", "| model | median | 95% CI | CV | predicted | budget | baseline | verdict |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        r = row["result"]
        cv = "n/a" if r.cv is None else f"{r.cv * 100:.1f}%"
        lines.append(f"| {md_code(r.model)} | {_latency(r)} | {_ci(row)} | {cv} | {_fmt(r.predicted_ms)} | "
                     f"{_fmt(row['budget_ms'])} | {_fmt(row['baseline_ms'])} | {ICON[row['status']]} "
                     f"{row['status']}: {md_text(_reason(row))} |")
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@contextmanager
def _pyplot() -> Iterator[Any]:
    """pyplot with every string drawn literally: a `$` in a model name is no mathtext formula (which can fail to
    parse), no TeX; a glyph the font lacks draws as a box without a warning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        yield plt


def latency_plot(rows: Sequence[dict[str, Any]]) -> str:
    """Each model's round means (box) or median with its CI, and its budget (red mark)."""
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.4))
        for y, row in enumerate(rows):
            r = row["result"]
            if len(r.rounds_ms) >= 2:
                ax.boxplot([r.rounds_ms], positions=[y], orientation="horizontal", widths=0.5, manage_ticks=False)
            lo, hi = r.ci95_ms or (r.median_ms, r.median_ms)
            ax.errorbar([r.median_ms], [y], xerr=[[r.median_ms - lo], [hi - r.median_ms]], fmt="o",
                        color=COLOR[row["status"]], capsize=3)
            if row["budget_ms"] is not None:
                ax.plot([row["budget_ms"]], [y], marker="|", markersize=18, color="red")
        ax.set_yticks(range(len(rows)), [_flat(row["result"].model) for row in rows], fontsize=8)
        ax.set_xlabel("latency (ms): rounds (box), median and 95% CI (dot), budget (red)")
        ax.set_title("latency distribution per model")
        fig.tight_layout()
        return _png(fig)


def predicted_plot(rows: Sequence[dict[str, Any]]) -> str | None:
    pts = [(row["result"].median_ms, row["result"].predicted_ms) for row in rows
           if row["result"].predicted_ms is not None]
    if not pts:
        return None
    measured, predicted = np.array(pts).T
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(4.8, 4.8))
        hi = float(max(measured.max(), predicted.max())) * 1.1
        ax.plot([0, hi], [0, hi], color="black", lw=1)
        ax.fill_between([0, hi], [0, hi * 0.9], [0, hi * 1.1], color="tab:green", alpha=0.15, label="±10%")
        ax.scatter(measured, predicted, color="tab:blue")
        ax.set(xlim=(0, hi), ylim=(0, hi), xlabel="measured median (ms)", ylabel="predicted (ms)",
               title="predicted vs measured")
        ax.legend(loc="upper left")
        fig.tight_layout()
        return _png(fig)


def pareto_plot(fronts: dict[str, list[dict[str, Any]]]) -> str | None:
    if not fronts:
        return None
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        lines = [ax.plot([p["latency_ms"] for p in front], [p["score"] for p in front], marker=".")[0]
                 for front in fronts.values()]
        ax.set(xlabel="latency (ms, as searched)", ylabel="accuracy or proxy", title="Pareto fronts (search)")
        ax.legend(lines, [_flat(t) for t in fronts])  # given explicitly: a label starting with "_" is shown too
        fig.tight_layout()
        return _png(fig)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:4px 8px;font-size:14px}
th{background:#f6f8fa}td.num{text-align:right}.PASS{color:#1a7f37}.WARN{color:#9a6700}.FAIL{color:#cf222e}
img{max-width:100%;display:block;margin:1em 0}code{background:#f6f8fa;padding:1px 4px}"""
# Marks each plot once the browser has decoded it, so a headless check can see the page really renders.
_SCRIPT = """window.addEventListener('load',function(){document.querySelectorAll('img.plot').forEach(function(i){
i.setAttribute('data-rendered',i.complete&&i.naturalWidth>0?'yes':'no')});});"""


def html_page(title: str, rows: Sequence[dict[str, Any]], fronts: dict[str, list[dict[str, Any]]],
              threshold_pct: float) -> str:
    e = html.escape
    head = device_header(rows)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>", f"<h1>{e(title)}</h1>",
             "<table class='device'>"]
    for key in ("name", *(("simulated",) if head["simulated"] else ()), "model", "manufacturer", "soc",
                "fingerprint", "build_fingerprint"):
        parts.append(f"<tr><th>{e(key)}</th><td><code>{e(str(head[key] or 'n/a'))}</code></td></tr>")
    parts.append(f"<tr><th>runtimes</th><td>{e(', '.join(head['runtimes']) or 'n/a')}</td></tr>"
                 f"<tr><th>regression threshold</th><td>{threshold_pct:g}%</td></tr></table>")
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
            parts.append(f"<img class='plot' id='plot-{name}' alt='{name} plot' src='{uri}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
