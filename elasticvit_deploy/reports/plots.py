"""The report's plots as PNG data URIs (embedded in the pages, so a page opens anywhere, offline, with no other file).

Every user string (model file names, device names, labels) is drawn literally: no mathtext, no TeX."""

from __future__ import annotations

import base64
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .history import History, TrendPoint
from .verdicts import FAIL, PASS, WARN

COLOR = {PASS: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def flat(text: Any) -> str:
    """`text` on one line: control characters (newlines, tabs, escapes) become single spaces."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def _tick(text: Any, limit: int = 32) -> str:
    """A short axis label: `text` on one line, at most `limit` characters (its middle cut out, so names that
    differ at their ends stay apart)."""
    line = flat(text)
    head = (limit - 1) // 2
    return line if len(line) <= limit else line[:head] + "…" + line[len(line) - (limit - 1 - head):]


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


def _yerr(points: Sequence[tuple[float, tuple[float, float] | None]]) -> list[list[float]]:
    """Error bar lengths below and above each (median, CI) pair; none without a CI."""
    lo = [m - ci[0] if ci else 0.0 for m, ci in points]
    hi = [ci[1] - m if ci else 0.0 for m, ci in points]
    return [lo, hi]


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
        ax.set_yticks(range(len(rows)), [_tick(row["result"].model, 48) for row in rows], fontsize=8)
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
        ax.legend(lines, [flat(t) for t in fronts])  # given explicitly: a label starting with "_" is shown too
        fig.tight_layout()
        return _png(fig)


def trend_plot(model: str, points: Sequence[TrendPoint], labels: Sequence[str], status: str) -> str:
    """One model's median and 95% CI at each label it was measured under, on the axis of all `labels` (oldest
    first); the point at the last label, the one judged, drawn in its verdict's colour."""
    where = {label: i for i, label in enumerate(labels)}
    shown = [p for p in points if p.label in where]
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(6.4, 3.2))
        xs = [where[p.label] for p in shown]
        pairs = [(p.median_ms, p.ci95_ms) for p in shown]
        ax.errorbar(xs, [p.median_ms for p in shown], yerr=_yerr(pairs), fmt="o-", color="tab:blue", capsize=3,
                    lw=1)
        judged = [p for p in shown if p.label == labels[-1]]
        for p in judged:
            ax.errorbar([where[p.label]], [p.median_ms], yerr=_yerr([(p.median_ms, p.ci95_ms)]), fmt="D",
                        markersize=8, color=COLOR[status], capsize=4)
            ax.annotate("judged", (where[p.label], p.median_ms), textcoords="offset points", xytext=(6, 6),
                        fontsize=8, color=COLOR[status])
        ax.set_xticks(range(len(labels)), [_tick(label, 24) for label in labels], rotation=30, ha="right",
                      fontsize=7)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set(ylabel="median (ms), 95% CI", title=f"{_tick(model, 60)}: trend across labels")
        fig.tight_layout()
        return _png(fig)


def cross_phone_plot(phones: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> str | None:
    """Every model on every phone in one figure: per model a group of bars (one colour per phone) of the median
    with its 95% CI, and each budget as a red mark over its bar."""
    models = list(dict.fromkeys(row["result"].model for _, rows in phones for row in rows))
    if not models:
        return None
    with _pyplot() as plt:
        n = len(phones)
        width = 0.8 / n
        fig, ax = plt.subplots(figsize=(min(40.0, max(7.0, 0.35 * len(models) * n + 2)), 4.6))
        colours = plt.get_cmap("tab10" if n <= 10 else "tab20")
        handles, names, budget_handle = [], [], None
        for i, (name, rows) in enumerate(phones):
            by_model = {row["result"].model: row for row in rows}
            placed = [(models.index(m) - 0.4 + width * (i + 0.5), row) for m, row in by_model.items()]
            pairs = [(row["result"].median_ms, row["result"].ci95_ms) for _, row in placed]
            bars = ax.bar([x for x, _ in placed], [m for m, _ in pairs], width, yerr=_yerr(pairs), capsize=2,
                          color=colours(i % colours.N))
            handles.append(bars)
            names.append(_tick(name, 40))
            marks = [(x, row["budget_ms"]) for x, row in placed if row["budget_ms"] is not None]
            if marks:
                budget_handle = ax.scatter([x for x, _ in marks], [b for _, b in marks], marker="_", color="red",
                                           s=max(40.0, 400.0 * width), linewidths=2, zorder=3)
        if budget_handle is not None:
            handles.append(budget_handle)
            names.append("budget")
        ax.set_xticks(range(len(models)), [_tick(m) for m in models], rotation=30, ha="right", fontsize=7)
        ax.set(ylabel="median latency (ms), 95% CI", title="all models on all phones")
        ax.legend(handles, names, fontsize=7)  # given explicitly: a name starting with "_" is shown too
        fig.tight_layout()
        return _png(fig)


def trends_overview_plot(history: History, phone_names: dict[str, str]) -> str | None:
    """One panel per phone: every model's median across the history's labels (those with two points or more)."""
    panels: dict[str, list[tuple[str, list[TrendPoint]]]] = {}
    for (device_id, model), points in history.trends.items():
        if len(points) >= 2 and device_id in phone_names:
            panels.setdefault(device_id, []).append((model, points))
    if not panels or not history.labels:
        return None
    where = {label: i for i, label in enumerate(history.labels)}
    with _pyplot() as plt:
        fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 2.8 * len(panels) + 0.6), squeeze=False)
        for ax, (device_id, lines) in zip(axes[:, 0], panels.items(), strict=True):
            handles = []
            for _, points in lines:
                shown = [p for p in points if p.label in where]
                handles.append(ax.plot([where[p.label] for p in shown], [p.median_ms for p in shown],
                                       marker="o", lw=1)[0])
            ax.set_xticks(range(len(history.labels)), [_tick(label, 24) for label in history.labels],
                          rotation=30, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(history.labels) - 0.5)
            ax.set(ylabel="median (ms)", title=_tick(phone_names[device_id], 60))
            ax.legend(handles, [_tick(model) for model, _ in lines], fontsize=6, loc="upper left")
        fig.tight_layout()
        return _png(fig)
