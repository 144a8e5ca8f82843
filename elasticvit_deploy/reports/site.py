"""The report's front page (``index.html``), self-contained like the phone pages: the labels compared, a status
line per phone linking its pages, the report's other files, one chart of every model on every phone, and (with a
history) every phone's trends across the labels."""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import quote

from .history import History
from .plots import cross_phone_plot, trends_overview_plot
from .render import Phone, code_html, compared_text, html_table, page_start, plot_img, status_cells

TITLE = "elasticvit-deploy benchmark report"
OTHER_FILES = (("summary.md", "summary for a pull-request comment"), ("summary.json", "summary, the next baseline"),
               ("junit.xml", "JUnit XML for CI test views"))


def _link(href: str, text: str) -> str:
    """A relative link to a file of the report (`href` percent-quoted and escaped, `text` escaped)."""
    return f"<a href='{html.escape(quote(href), quote=True)}'>{html.escape(text)}</a>"


def _labels(phones: Sequence[Phone], history: History | None) -> str:
    compared = compared_text([p.head for p in phones], history, code_html)
    return f"<p>Judged {compared}.</p>" if compared else ""


def _status_row(phone: Phone) -> list[str]:
    figures, slowest = status_cells(phone, code_html)
    files = " ".join(_link(f"{phone.stem}.{ext}", ext) for ext in ("html", "md", "json"))
    return [_link(f"{phone.stem}.html", phone.head["title"]), code_html(phone.head["fingerprint"]), *figures,
            f"<b class='{phone.status}'>{phone.status}</b>", slowest, files]


def index_page(phones: Sequence[Phone], history: History | None, threshold_pct: float) -> str:
    """The front page of a report of `phones` (relative links to their files)."""
    parts = [page_start(TITLE), _labels(phones, history),
             f"<p>{len(phones)} phone(s); regression threshold {threshold_pct:g}%.</p>",
             html_table("phones", ["phone", "fingerprint", "models", "pass", "warn", "fail", "status",
                                   "slowest (median)", "files"], [_status_row(p) for p in phones]),
             "<ul class='files'>",
             *(f"<li>{_link(name, name)}: {html.escape(what)}</li>" for name, what in OTHER_FILES), "</ul>"]
    chart = cross_phone_plot([(p.head["title"], p.rows) for p in phones])
    if chart is not None:
        parts += ["<h2>All models on all phones</h2>", plot_img("plot-cross-phone", "all models on all phones", chart)]
    if history is not None:
        trends = trends_overview_plot(history, {p.head["fingerprint"]: p.head["title"] for p in phones})
        if trends is not None:
            parts += ["<h2>Trends across labels</h2>", plot_img("plot-trends", "trends across labels", trends)]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
