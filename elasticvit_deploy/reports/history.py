"""A report's inputs from the results store's labels (`measure --label L` tags each batch): the latest selected
label is the one judged, each of its model x phone results against the nearest earlier selected label that has
the same model on the same phone, and every model x phone gets its trend (median and 95% CI) across the labels.

Labels are selected explicitly (in the order given), as the K newest (by when each was first tagged), or all
(oldest first); a device filter keeps the phones whose alias or serial is given, or whose fingerprint starts with
what is given. A label holding several complete measurements of one model on one phone counts its newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import shorten
from ..farm.store import ResultsStore, StoredMeasurement
from .inputs import ModelResult, ReportInputError, ReportInputs, stored_result

__all__ = ["History", "TrendPoint", "no_labels", "read_history", "select_labels"]

Key = tuple[str, str]   # (device fingerprint, model file name)


@dataclass(frozen=True)
class TrendPoint:
    """One label's figures of one model x phone."""

    label: str
    median_ms: float
    ci95_ms: tuple[float, float] | None
    rounds: int


@dataclass
class History:
    labels: list[str]                                                       # oldest first; the last is judged
    trends: dict[Key, list[TrendPoint]] = field(default_factory=dict)      # points in label order


def _listed(names: Iterable[str], limit: int = 5) -> str:
    names = list(names)
    shown = ", ".join(shorten(n, 40) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def no_labels(path: Path) -> ReportInputError:
    """The error for a results store without labelled measurements (or none at `path` yet)."""
    return ReportInputError(f"no labelled measurements in {path}; run measure --label L first")


def select_labels(known: list[str], labels: list[str] | None = None, last: int | None = None) -> list[str]:
    """The labels to report, oldest first: `labels` as given, the `last` K of `known` (oldest first), or all of
    them. ReportInputError for no labels given, a label the store lacks, or `last` under 1."""
    if labels is not None:
        chosen = list(dict.fromkeys(labels))
        if not chosen:
            raise ReportInputError("--labels: give label names separated by commas (e.g. --labels v1.2,v1.3)")
        unknown = [name for name in chosen if name not in known]
        if unknown:
            raise ReportInputError(f"label {shorten(unknown[0], 60)} is not in the results store (known, newest "
                                   f"first: {_listed(reversed(known))})")
        return chosen
    if last is not None:
        if last < 1:
            raise ReportInputError(f"--last {last}: give a number of labels >= 1")
        return known[-last:]
    return list(known)


def _matches(m: StoredMeasurement, wanted: str) -> bool:
    return wanted in (m.device_alias, m.device_serial) or m.device_fingerprint.startswith(wanted)


def _device_name(m: StoredMeasurement) -> str:
    return m.device_alias or m.device_serial


def _filter_devices(by_label: dict[str, list[StoredMeasurement]], devices: tuple[str, ...]
                    ) -> dict[str, list[StoredMeasurement]]:
    """Only the measurements on the devices named; ReportInputError for a name no selected measurement has."""
    if not devices:
        return by_label
    everything = [m for ms in by_label.values() for m in ms]
    for wanted in devices:
        if not any(_matches(m, wanted) for m in everything):
            names = sorted({_device_name(m) for m in everything})
            raise ReportInputError(f"--device {shorten(wanted, 60)}: no measurement of the selected labels is on "
                                   f"a device with that alias, serial or fingerprint prefix (devices: "
                                   f"{_listed(names)})")
    return {label: [m for m in ms if any(_matches(m, w) for w in devices)] for label, ms in by_label.items()}


def _results(source: Path, label: str, measurements: list[StoredMeasurement]) -> dict[Key, ModelResult]:
    """The label's results by (device, model) as `judge` matches them: of several measurements of one model on
    one phone (`measurements` in the order they were started), the newest."""
    out: dict[Key, ModelResult] = {}
    for m in measurements:
        result = stored_result(m.to_dict(), f"{source} (measurement {m.id})", label)
        if result is not None:
            out[(result.device_id, result.model)] = result
    return out


def read_history(store: ResultsStore, labels: list[str] | None = None, last: int | None = None,
                 devices: tuple[str, ...] = ()) -> tuple[ReportInputs, list[ModelResult], History]:
    """The current results (the latest selected label's), their baselines (for each model x phone, the nearest
    earlier selected label's result) and the history of the selected labels. ReportInputError when the store has
    no labels, for an unknown label, a device no measurement is on, or a latest label with nothing to report."""
    known = [info.label for info in store.labels()]
    if not known:
        raise no_labels(store.path)
    chosen = select_labels(known, labels, last)
    by_label = _filter_devices({label: store.labelled(label) for label in chosen}, devices)
    results = {label: _results(store.path, label, by_label[label]) for label in chosen}
    latest = chosen[-1]
    if not results[latest]:
        where = " on the devices given" if devices else ""
        raise ReportInputError(f"label {shorten(latest, 60)} has no complete measurements{where} to report")
    baseline = []
    for key in results[latest]:
        earlier = next((results[label][key] for label in reversed(chosen[:-1]) if key in results[label]), None)
        if earlier is not None:
            baseline.append(earlier)
    trends: dict[Key, list[TrendPoint]] = {}
    for label in chosen:
        for key, r in results[label].items():
            trends.setdefault(key, []).append(TrendPoint(label, r.median_ms, r.ci95_ms, len(r.rounds_ms)))
    return ReportInputs(list(results[latest].values())), baseline, History(chosen, trends)
