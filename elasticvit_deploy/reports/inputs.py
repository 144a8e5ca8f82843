"""What a report reads: measurement results in any of the forms the toolkit writes, normalised per phone.

Accepted files (JSON):
- `elasticvit-deploy measure --json` output: ``{"results": [...], "failures": [...], "skipped": [...]}``;
- `elasticvit-deploy results export` output: a list of stored measurements (with every round);
- `elasticvit-deploy search` ``result.json``: its chosen subnets (measured ones with `--verify`, `live` or `hybrid`;
  their budgets come along) and its Pareto fronts;
- a report's own ``summary.json`` (so the last report is the next run's baseline).

The same model file measured on the same device is one entry: a measurement's statistics, with the predicted
latency and budget of a search result for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..jsontext import JSONTextError, load_json_text


class ReportInputError(ValueError):
    """A results file that cannot be read or is none of the accepted forms."""


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

    def __post_init__(self) -> None:
        if not self.median_ms > 0:
            raise ValueError(f"latency of {self.model} must be a positive number, got {self.median_ms}")

    @property
    def device_name(self) -> str:
        d = self.device
        name = str(d.get("alias") or d.get("serial") or self.device_id)
        return f"{name} (simulated)" if d.get("simulated") and "sim" not in name else name

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95_ms"] = list(self.ci95_ms) if self.ci95_ms else None
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelResult:
        ci = d.get("ci95_ms")
        return cls(str(d["device_id"]), dict(d["device"]), str(d["runtime"]), str(d["model"]), float(d["median_ms"]),
                   (float(ci[0]), float(ci[1])) if ci else None, _number(d.get("cv")),
                   [float(x) for x in d.get("rounds_ms") or []], _number(d.get("predicted_ms")),
                   _number(d.get("budget_ms")), str(d.get("source", "")), str(d.get("statistic", "median")))


def _number(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass
class ReportInputs:
    results: list[ModelResult] = field(default_factory=list)
    fronts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # target -> Pareto front


def _device_id(device: dict[str, Any]) -> str:
    return str(device.get("fingerprint") or device.get("serial") or "unknown")


def _from_summary(device: dict[str, Any], runtime: str, model: str, s: dict[str, Any], source: str,
                  rounds: list[float] | None = None) -> ModelResult:
    ci = s.get("median_ci95_ms")
    return ModelResult(_device_id(device), dict(device), str(runtime), Path(model).name, float(s["median_ms"]),
                       (float(ci[0]), float(ci[1])) if ci else None, _number(s.get("cv")),
                       [float(x) for x in (s.get("round_ms") or rounds or [])], source=source)


def _measure_output(doc: dict[str, Any], source: str) -> list[ModelResult]:
    return [_from_summary(r["device"], r["runtime_version"], r["model"], r, source) for r in doc["results"]]


def _store_export(rows: list[dict[str, Any]], source: str) -> list[ModelResult]:
    return [_from_summary(r["device"], r["runtime_version"], r["model_name"], r["summary"], source, r.get("samples"))
            for r in rows if r.get("complete") and r.get("summary")]


def _search_result(doc: dict[str, Any], source: str) -> tuple[list[ModelResult], dict[str, list]]:
    out = []
    for c in doc["choices"]:
        if c.get("arch") is None or c.get("measured_ms") is None:
            continue
        device = dict(c.get("measured_on") or {})
        device.setdefault("alias", str(c["target"]))
        name = Path(c["model"]).name if c.get("model") else f"{c['target']}-{float(c['budget_ms']):g}ms"
        out.append(ModelResult(_device_id(device), device, str(device.get("runtime", "")), name,
                               float(c["measured_ms"]), None, None, [], _number(c.get("predicted_ms")),
                               float(c["budget_ms"]), source, str(device.get("statistic") or "median")))
    return out, dict(doc.get("pareto") or {})


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
        merged[key] = full
    return list(merged.values())


def read_results(paths: list[Path]) -> ReportInputs:
    """Read and normalise every file; ReportInputError names the file and what is wrong with it."""
    inputs = ReportInputs()
    for path in paths:
        try:
            doc = load_json_text(path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            raise ReportInputError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ReportInputError(f"{path}: not a JSON results file ({e})") from None
        except JSONTextError as e:
            raise ReportInputError(f"{path}: not a JSON results file ({str(e).removeprefix(f'{path}: ')})") from None
        try:
            if isinstance(doc, list):
                inputs.results += _store_export(doc, str(path))
            elif isinstance(doc, dict) and doc.get("kind") == "elasticvit-deploy-report":
                inputs.results += [ModelResult.from_dict(r) for r in doc["results"]]
                inputs.fronts.update(doc.get("fronts") or {})
            elif isinstance(doc, dict) and "choices" in doc:
                results, fronts = _search_result(doc, str(path))
                inputs.results += results
                inputs.fronts.update(fronts)
            elif isinstance(doc, dict) and "results" in doc:
                inputs.results += _measure_output(doc, str(path))
            else:
                raise ReportInputError(f"{path}: not measure --json output, a results export, a search "
                                       f"result.json or a report summary.json")
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, ReportInputError):
                raise
            raise ReportInputError(f"{path}: malformed results ({type(e).__name__}: {e})") from None
    inputs.results = _merge(inputs.results)
    return inputs
