"""The figures a measurement reports, as one typed record: latency statistics over the rounds' means, the fastest
single inference, init time, the tool's memory footprint (`memory_mb`), the model file's size, temperatures,
throttling, the benchmark tool that ran it, and, for a simulated phone, what its timings rest on (`simulated`: the
basis its tool named, e.g. "table pixel1").

Spelling (the same across the toolkit): `median_ms`, `ci95_ms` (the [lo, hi] 95% interval of the median),
`rounds_ms` (each round's mean), `best_ms` (the fastest single inference). Summaries an earlier release stored in
a results store spell some of them differently; `current_spelling` renames them, so a store measured before is
still reused and exported in the one spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import is_stable, summarize
from .throttling import judge_throttling

__all__ = ["TOOL_KEYS", "MeasurementSummary", "current_spelling", "summarize_rounds"]

#: what a device's runtime information tells about the tool that ran the rounds (kept in `tool`)
TOOL_KEYS = ("family", "version", "output_family", "sha256", "root", "knobs")


@dataclass(frozen=True)
class MeasurementSummary:
    """The reported figures of one measurement (milliseconds unless the name says otherwise)."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float                                   # std / mean of the round means
    min_ms: float
    max_ms: float
    ci95_ms: tuple[float, float]
    ci95_rel: float                             # half-width of `ci95_ms` over the median
    best_ms: float | None
    rounds_ms: tuple[float, ...]
    rounds: int
    inferences: int
    init_ms: float | None
    temperature_c: dict[str, float | None]      # first, last, max
    throttling: dict[str, bool]
    tool: dict[str, Any] = field(default_factory=dict)
    short_rounds: tuple[dict[str, int], ...] = ()  # rounds that ran fewer inferences than asked
    stable: bool | None = None                  # set with --until-stable: whether the CI got within the bound
    simulated: str | None = None                # a simulated phone's timing basis (distinct ones joined by "; ")
    memory_mb: dict[str, float] = field(default_factory=dict)  # ToolMemory fields: medians over the rounds
    model_bytes: int | None = None              # the model file's size

    def to_dict(self) -> dict[str, Any]:
        """The figures as a dict; `stable`, `simulated`, `model_bytes` only when set, `memory_mb` when not
        empty."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["ci95_ms"] = list(self.ci95_ms)
        out["rounds_ms"] = list(self.rounds_ms)
        out["short_rounds"] = [dict(r) for r in self.short_rounds]
        out["memory_mb"] = dict(self.memory_mb)
        for optional in ("stable", "simulated", "model_bytes", "memory_mb"):
            if out[optional] is None or out[optional] == {}:
                del out[optional]
        return out

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> MeasurementSummary:
        """A summary as `to_dict` wrote it, or as an earlier release stored it (see `current_spelling`)."""
        d = current_spelling(stored)
        ci = d["ci95_ms"]
        return cls(median_ms=d["median_ms"], p90_ms=d["p90_ms"], mean_ms=d["mean_ms"], std_ms=d["std_ms"],
                   cv=d["cv"], min_ms=d["min_ms"], max_ms=d["max_ms"], ci95_ms=(ci[0], ci[1]),
                   ci95_rel=d["ci95_rel"], best_ms=d.get("best_ms"), rounds_ms=tuple(d["rounds_ms"]),
                   rounds=d["rounds"], inferences=d["inferences"], init_ms=d.get("init_ms"),
                   temperature_c=dict(d["temperature_c"]), throttling=dict(d["throttling"]),
                   tool=dict(d.get("tool") or {}), short_rounds=tuple(dict(r) for r in d.get("short_rounds") or ()),
                   stable=d.get("stable"), simulated=d.get("simulated"),
                   memory_mb={str(k): float(v) for k, v in (d.get("memory_mb") or {}).items()},
                   model_bytes=d.get("model_bytes"))


_EARLIER = {"median_ci95_ms": "ci95_ms", "median_ci95_rel": "ci95_rel", "round_ms": "rounds_ms"}
_EARLIER_TOOL = {"tool": "family", "family": "output_family"}


def current_spelling(summary: dict[str, Any]) -> dict[str, Any]:
    """A stored summary with its figures spelled as now. An earlier release stored `median_ci95_ms`,
    `median_ci95_rel` and `round_ms`, the statistics' sample count as `runs`, and the tool as a `runtime`
    record whose `tool` was the family and `family` the family recognised in the output."""
    out = {_EARLIER.get(k, k): v for k, v in summary.items() if k not in ("runs", "runtime")}
    earlier_tool = summary.get("runtime")
    if isinstance(earlier_tool, dict) and "tool" not in summary:
        out["tool"] = {_EARLIER_TOOL.get(k, k): v for k, v in earlier_tool.items()
                       if _EARLIER_TOOL.get(k, k) in TOOL_KEYS}
    return out


def _memory_medians(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Each memory figure (`memory_mb` of the rounds' records) as its median over the rounds that printed it."""
    values: dict[str, list[float]] = {}
    for r in rounds:
        memory = r.get("memory_mb")
        if isinstance(memory, dict):
            for name, mb in memory.items():
                if isinstance(mb, (int, float)) and not isinstance(mb, bool):
                    values.setdefault(str(name), []).append(float(mb))
    return {name: float(np.median(mbs)) for name, mbs in values.items()}


def summarize_rounds(rounds: list[dict[str, Any]], samples_ms: list[float], runtime_info: dict[str, Any],
                     runs: int, until_stable_pct: float | None = None,
                     model_bytes: int | None = None) -> MeasurementSummary:
    """The figures of rounds (their `RoundResult.info()` records) whose means are `samples_ms`, run by a device
    whose runtime information is `runtime_info`; `runs` is the timed runs each round was asked for, `model_bytes`
    the size of the model file measured."""
    stats = summarize(samples_ms)
    temps = [r[k].get("temp_mc") for r in rounds for k in ("before", "after") if r.get(k)]
    temps = [t / 1000 for t in temps if isinstance(t, int) and t >= 0]
    inits = [r["init_us"] / 1000 for r in rounds if r.get("init_us") is not None]
    mins = [r["min_us"] / 1000 for r in rounds if isinstance(r.get("min_us"), (int, float)) and r["min_us"] > 0]
    bases = list(dict.fromkeys(str(r["simulated"]) for r in rounds if r.get("simulated")))
    return MeasurementSummary(
        median_ms=stats.median_ms, p90_ms=stats.p90_ms, mean_ms=stats.mean_ms, std_ms=stats.std_ms, cv=stats.cv,
        min_ms=stats.min_ms, max_ms=stats.max_ms, ci95_ms=stats.ci95_ms, ci95_rel=stats.ci95_rel,
        best_ms=min(mins) if mins else None, rounds_ms=tuple(round(float(x), 6) for x in samples_ms),
        rounds=len(samples_ms), inferences=int(sum(r.get("count", 0) for r in rounds)),
        init_ms=float(np.median(inits)) if inits else None,
        temperature_c={"first": temps[0] if temps else None, "last": temps[-1] if temps else None,
                       "max": max(temps) if temps else None},
        throttling=judge_throttling(rounds, runtime_info),
        tool={k: v for k, v in runtime_info.items() if k in TOOL_KEYS},
        short_rounds=tuple({"round": i, "count": r.get("count", 0)} for i, r in enumerate(rounds)
                           if r.get("count", 0) < runs),
        stable=None if until_stable_pct is None else is_stable(samples_ms, until_stable_pct),
        simulated="; ".join(bases) or None, memory_mb=_memory_medians(rounds), model_bytes=model_bytes)
