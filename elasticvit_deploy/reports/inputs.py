"""What a report reads: measurement results in any of the documents the toolkit writes, normalised per phone.

Each file is recognised by its document header (``{"format": "elasticvit-deploy.<kind>", "version": N}``):
- ``measurements``: `elasticvit-deploy measure --json` output (its results are ``measurement`` documents);
- ``results-export``: `elasticvit-deploy results export` output (stored measurements, with every round);
- ``search-result``: `elasticvit-deploy search`'s ``result.json``: its chosen subnets (measured ones with
  `--verify`, `live` or `hybrid`; their budgets come along) and its Pareto fronts;
- ``report-summary``: a report's own ``summary.json`` (so the last report is the next run's baseline).

The same model file measured on the same device is one entry: a measurement's statistics, with the predicted
latency and budget of a search result for it. A result measured on a simulated phone keeps what its timings rest
on (`simulated`, e.g. "table pixel1"); the report shows it beside the device's name. Where a document has them, a
result also keeps its label (the batch `measure --label` tagged), init time, memory footprint (init, overall and
peak MB; the peak from the profiling run), model file size and op profile (`measure --profile`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from supernet.documents import check_header, document_kind

from ..errors import BadInput, shorten
from ..farm.profile_output import ProfileRun
from ..jsontext import JSONTextError, load_json_text

__all__ = ["ModelResult", "ReportInputError", "ReportInputs", "memory_with_peak", "read_results", "stored_result"]

MEASUREMENTS, MEASUREMENT, EXPORT, SEARCH, SUMMARY = ("measurements", "measurement", "results-export",
                                                      "search-result", "report-summary")
VERSIONS = {MEASUREMENTS: 1, MEASUREMENT: 1, EXPORT: 1, SEARCH: 1, SUMMARY: 1}


class ReportInputError(BadInput):
    """What a report was given cannot be used: a results file that cannot be read or is none of the accepted
    documents, a latency that is not positive, a budget that is not MODEL=MS."""


@dataclass
class ModelResult:
    """One model measured on one device."""

    device_id: str                      # the device fingerprint (stable across serial changes)
    device: dict[str, Any]
    runtime: str
    model: str                          # file name, the key budgets and baselines match on
    median_ms: float
    ci95_ms: tuple[float, float] | None
    cv: float | None
    rounds_ms: list[float] = field(default_factory=list)
    predicted_ms: float | None = None
    budget_ms: float | None = None
    source: str = ""
    statistic: str = "median"           # "best": the fastest inference (a search on a shared host reads that)
    simulated: str | None = None        # a simulated phone's timing basis, e.g. "table pixel1"
    label: str | None = None            # the batch it was measured in (`measure --label`)
    init_ms: float | None = None
    memory_mb: dict[str, float] = field(default_factory=dict)   # init_mb / overall_mb / peak_mb, those known
    model_bytes: int | None = None
    profile: ProfileRun | None = None       # the profiling run's op tables and memory (`measure --profile`)

    def __post_init__(self) -> None:
        if not self.median_ms > 0:
            raise ReportInputError(f"latency of {shorten(self.model)} must be a positive number, got "
                                   f"{shorten(self.median_ms)}")

    @property
    def device_name(self) -> str:
        d = self.device
        name = str(d.get("alias") or d.get("serial") or self.device_id)
        return f"{name} (simulated)" if d.get("simulated") and "sim" not in name else name

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON: its fields by name, the profile as `ProfileRun.to_dict()`."""
        return {**asdict(replace(self, profile=None)), "ci95_ms": list(self.ci95_ms) if self.ci95_ms else None,
                "profile": self.profile.to_dict() if self.profile is not None else None}


@dataclass
class ReportInputs:
    results: list[ModelResult] = field(default_factory=list)
    fronts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # device name -> Pareto front


def _kind_of(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class _Fields:
    """One JSON object of a results file: its fields checked as they are read, ReportInputError naming the file,
    the place in it and what is wrong otherwise."""

    def __init__(self, data: Any, source: str, place: str):
        if not isinstance(data, dict):
            raise _malformed(source, f"{place} is {_kind_of(data)}, not an object")
        self.data, self.source, self.place = data, source, place

    def _bad(self, key: str, what: str) -> ReportInputError:
        return _malformed(self.source, f"{self.place}.{key} {what}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise _malformed(self.source, f"{self.place} has no {key}")
        return self.data[key]

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key) if default is None else self.data.get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, f"is {_kind_of(value)}, not a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def number(self, key: str) -> float:
        return _number(self.raw(key), partial(self._bad, key))

    def optional_number(self, key: str) -> float | None:
        return self.number(key) if self.has(key) else None

    def record(self, key: str) -> _Fields:
        return _Fields(self.raw(key), self.source, f"{self.place}.{key}")

    def records(self, key: str, label: str | None = None) -> list[_Fields]:
        """The objects of the list at `key` (named `label` in messages, default `key`)."""
        items = self.raw(key)
        label = label or key
        if not isinstance(items, list):
            raise self._bad(label, f"is {_kind_of(items)}, not a list")
        return [_Fields(item, self.source, f"{self.place}.{label}[{i}]") for i, item in enumerate(items)]

    def numbers(self, key: str) -> list[float]:
        items = self.data.get(key) or []
        if not isinstance(items, list):
            raise self._bad(key, f"is {_kind_of(items)}, not a list")
        return [_number(x, partial(self._bad, f"{key}[{i}]")) for i, x in enumerate(items)]

    def profile(self, key: str = "profile") -> ProfileRun | None:
        """The stored op profile at `key` (`ProfileRun.to_dict()`), or None when absent."""
        if not self.has(key):
            return None
        record = self.record(key)   # an object, or "is a list, not an object"
        try:
            return ProfileRun.from_dict(record.data)
        except BadInput as e:
            raise self._bad(key, f"is {e}") from None

    def figures(self, key: str) -> dict[str, float]:
        """An object of named numbers (e.g. `memory_mb`), empty when absent."""
        if not self.has(key):
            return {}
        record = self.record(key)
        return {str(name): record.number(name) for name in record.data}

    def optional_count(self, key: str) -> int | None:
        """A non-negative whole number (e.g. a size in bytes), or None when absent."""
        if not self.has(key):
            return None
        value = self.number(key)
        if value < 0 or value != int(value):
            raise self._bad(key, f"is {shorten(self.data[key])}, not a whole number >= 0")
        return int(value)

    def last_text(self, key: str) -> str | None:
        """The last string of the list at `key` (e.g. a measurement's labels), or None when absent or empty."""
        items = self.data.get(key) or []
        if not isinstance(items, list):
            raise self._bad(key, f"is {_kind_of(items)}, not a list")
        if items and not isinstance(items[-1], str):
            raise self._bad(f"{key}[{len(items) - 1}]", f"is {_kind_of(items[-1])}, not a string")
        return items[-1] if items else None

    def interval(self, key: str) -> tuple[float, float] | None:
        """A [lo, hi] pair, or None when absent."""
        if not self.has(key):
            return None
        value = self.numbers(key)
        if len(value) != 2:
            raise self._bad(key, f"holds {len(value)} numbers, not [lo, hi]")
        return value[0], value[1]


def _number(value: Any, bad: Callable[[str], ReportInputError]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(f"is {shorten(value)}, not a finite number")
    return float(value)


def _malformed(source: str, what: str) -> ReportInputError:
    return ReportInputError(f"{source}: malformed results ({what})")


def _device_id(device: dict[str, Any]) -> str:
    return str(device.get("fingerprint") or device.get("serial") or "unknown")


def memory_with_peak(memory_mb: dict[str, float], profile: ProfileRun | None) -> dict[str, float]:
    """The timed rounds' memory figures, with the peak the profiling run measured when they have none."""
    out = dict(memory_mb)
    peak = profile.peak_mb if profile is not None else None
    if peak is not None and math.isfinite(peak):
        out.setdefault("peak_mb", peak)
    return out


def _measured(device: _Fields, runtime: str, model: str, figures: _Fields, rounds_ms: list[float], source: str,
              label: str | None, profile: ProfileRun | None) -> ModelResult:
    return ModelResult(_device_id(device.data), dict(device.data), runtime, Path(model).name,
                       figures.number("median_ms"), figures.interval("ci95_ms"), figures.optional_number("cv"),
                       rounds_ms, source=source, simulated=figures.optional_text("simulated"), label=label,
                       init_ms=figures.optional_number("init_ms"),
                       memory_mb=memory_with_peak(figures.figures("memory_mb"), profile),
                       model_bytes=figures.optional_count("model_bytes"), profile=profile)


def _measurements(doc: _Fields) -> tuple[list[ModelResult], dict[str, list]]:
    out = []
    for r in doc.records("results"):
        check_header(r.data, MEASUREMENT, VERSIONS[MEASUREMENT], f"{doc.source}: {r.place}")
        out.append(_measured(r.record("device"), r.text("runtime"), r.text("model"), r, r.numbers("rounds_ms"),
                             doc.source, r.optional_text("label"), r.profile()))
    return out, {}


def _stored(m: _Fields, label: str | None) -> ModelResult | None:
    if m.data.get("complete") is not True or not m.has("summary"):
        return None
    summary = m.record("summary")
    rounds_ms = summary.numbers("rounds_ms") or m.numbers("rounds_ms")
    return _measured(m.record("device"), m.text("runtime"), m.text("model_name"), summary, rounds_ms, m.source,
                     label or m.last_text("labels"), m.profile())


def stored_result(record: dict[str, Any], source: str, label: str | None = None) -> ModelResult | None:
    """A stored measurement's record (`StoredMeasurement.to_dict()`, a results export's entry) as a result under
    `label` (default: its last label); None while it is incomplete. ReportInputError names `source` and the
    field when the record is malformed."""
    return _stored(_Fields(record, source, "measurement"), label)


def _export(doc: _Fields) -> tuple[list[ModelResult], dict[str, list]]:
    results = (_stored(m, None) for m in doc.records("measurements"))
    return [r for r in results if r is not None], {}


def _fronts(doc: _Fields, key: str) -> dict[str, list[dict[str, Any]]]:
    """Pareto fronts by device name: lists of points with a `latency_ms` and a `score`."""
    if not doc.has(key):
        return {}
    fronts = doc.record(key)
    out = {}
    for name in fronts.data:
        points = fronts.records(name, name if name.isidentifier() else shorten(name, 40))
        for p in points:  # both are plotted
            p.number("latency_ms")
            p.number("score")
        out[str(name)] = [p.data for p in points]
    return out


def _search_result(doc: _Fields) -> tuple[list[ModelResult], dict[str, list]]:
    out = []
    for c in doc.records("choices"):
        if c.data.get("arch") is None or not c.has("measured_ms"):
            continue
        device = dict(c.record("measured_on").data) if c.has("measured_on") else {}
        searched_for = c.text("device")
        device.setdefault("alias", searched_for)
        budget = c.number("budget_ms")
        name = Path(c.text("model")).name if c.has("model") else f"{searched_for}-{budget:g}ms"
        out.append(ModelResult(_device_id(device), device, str(device.get("runtime", "")), name,
                               c.number("measured_ms"), None, None, [], c.optional_number("predicted_ms"), budget,
                               doc.source, str(device.get("statistic") or "median")))
    return out, _fronts(doc, "pareto")


def _summary_result(r: _Fields) -> ModelResult:
    return ModelResult(r.text("device_id"), dict(r.record("device").data), r.text("runtime"), r.text("model"),
                       r.number("median_ms"), r.interval("ci95_ms"), r.optional_number("cv"), r.numbers("rounds_ms"),
                       r.optional_number("predicted_ms"), r.optional_number("budget_ms"), r.text("source", ""),
                       r.text("statistic", "median"), r.optional_text("simulated"), r.optional_text("label"),
                       r.optional_number("init_ms"), r.figures("memory_mb"), r.optional_count("model_bytes"),
                       r.profile())


def _report_summary(doc: _Fields) -> tuple[list[ModelResult], dict[str, list]]:
    return [_summary_result(r) for r in doc.records("results")], _fronts(doc, "fronts")


_READERS = {MEASUREMENTS: _measurements, EXPORT: _export, SEARCH: _search_result, SUMMARY: _report_summary}


def _merge(results: list[ModelResult]) -> list[ModelResult]:
    """One entry per (device, model): a full measurement's statistics, with the prediction and budget a search
    result brings for the same file on the same device."""
    merged: dict[tuple[str, str], ModelResult] = {}
    for r in results:
        key = (r.device_id, r.model)
        old = merged.get(key)
        if old is None:
            merged[key] = r
            continue
        full, other = (r, old) if (r.ci95_ms is not None or old.ci95_ms is None) else (old, r)
        full.predicted_ms = full.predicted_ms if full.predicted_ms is not None else other.predicted_ms
        full.budget_ms = full.budget_ms if full.budget_ms is not None else other.budget_ms
        if not full.runtime:
            full.runtime = other.runtime
        full.simulated = full.simulated or other.simulated
        merged[key] = full
    return list(merged.values())


def _load(path: Path) -> Any:
    try:
        return load_json_text(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise ReportInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: not a JSON results file ({e})") from None
    except JSONTextError as e:
        raise ReportInputError(f"{path}: not a JSON results file ({str(e).removeprefix(f'{path}: ')})") from None


def _read(doc: Any, source: str) -> tuple[list[ModelResult], dict[str, list]]:
    """The results and Pareto fronts of one document, by the kind its header names."""
    kind = document_kind(doc)
    if kind not in _READERS:
        found = f" (a {shorten(kind)} document)" if kind else ""
        raise ReportInputError(f"{source}: not measure --json output, a results export, a search result.json or "
                               f"a report summary.json{found}")
    check_header(doc, kind, VERSIONS[kind], source)
    return _READERS[kind](_Fields(doc, source, kind))


def read_results(paths: list[Path]) -> ReportInputs:
    """Read and normalise every file; ReportInputError (or DocumentError, for a version this release cannot read)
    names the file and what is wrong with it."""
    inputs = ReportInputs()
    for path in paths:
        results, fronts = _read(_load(path), str(path))
        inputs.results += results
        inputs.fronts.update(fronts)
    inputs.results = _merge(inputs.results)
    return inputs
