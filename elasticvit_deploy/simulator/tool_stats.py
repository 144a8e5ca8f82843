"""The statistics the simulated benchmark_model tools print, computed and formatted as the real tools do.

`Stat` is ``tensorflow::Stat<int64_t>`` (the tools' ``count= first= curr= ...`` lines). `StatsCalculator` is tsl's
``StatsCalculator`` (``xla/tsl/util/stats_calculator.cc``, as TF 2.18 and LiteRT build it: no ``[start]`` column)
fed as TF Lite's ``ProfileSummarizer`` feeds it, with the options of the benchmark tools' default formatter
(``ProfileSummaryDefaultFormatter``): Run Order (all nodes), Top by Computation Time (10), Summary by node type,
then the short summary (Timings, Memory, nodes observed). Nodes of the same name merge, as the calculator keys
them by name; rows sort as it sorts them, by fixed-width strings of the run order or the average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .tool_flags import cpp_double

__all__ = ["ProfileEvent", "Stat", "StatsCalculator"]

TOP_BY_TIME = 10   # StatSummarizerOptions::time_limit
_TYPE_WIDTH = 40   # kNodeTypeWidth


@dataclass
class Stat:
    """tensorflow::Stat<int64_t> of integer microseconds: empty average 0 (int64 quiet_NaN), population std."""

    times_us: list[int]

    @property
    def first(self) -> int:
        return self.times_us[0] if self.times_us else 0

    @property
    def avg(self) -> float:
        return sum(self.times_us) / len(self.times_us) if self.times_us else 0.0

    def std(self, legacy: bool = False) -> int:
        """Population std as int64: tsl's Stat truncates the variance to int64 before the root, TF 1.x's did not."""
        t = self.times_us
        if not t or min(t) == max(t):
            return 0
        variance = sum(x * x for x in t) / len(t) - self.avg ** 2
        return int(math.sqrt(max(variance if legacy else int(variance), 0)))

    def line(self, percentiles: bool = False, legacy: bool = False) -> str:
        t = self.times_us
        if not t:
            text = "count=0"
        elif min(t) == max(t):
            text = f"count={len(t)} curr={t[-1]}" + ("(all same)" if len(t) > 1 else "")
        else:
            text = (f"count={len(t)} first={t[0]} curr={t[-1]} min={min(t)} max={max(t)} avg={cpp_double(self.avg)} "
                    f"std={self.std(legacy)}")
        if percentiles:  # StatWithPercentiles: nth_element at size * p / 100 (0 when empty)
            ordered = sorted(t)
            text += "".join(f" {name}={ordered[len(t) * p // 100] if t else 0}"
                            for name, p in (("p5", 5), ("median", 50), ("p95", 95)))
        return text


@dataclass(frozen=True)
class ProfileEvent:
    """One profiler event as the summarizer records it: the node's name and type in the tables, its time."""

    name: str
    type: str
    us: int
    mem_kb: int = 0   # the event's memory footprint delta (default events only)


@dataclass
class _Detail:
    name: str
    type: str
    run_order: int
    times_us: list[int] = field(default_factory=list)
    mem_bytes: int = 0   # the newest event's
    times_called: int = 0

    @property
    def avg_us(self) -> float:
        return sum(self.times_us) / len(self.times_us)


def _field(value: str, width: int) -> str:
    """InitField: a tab, then the value right-aligned in `width`."""
    return f"\t{value:>{width}}"


def _ratio(part: float, whole: float) -> float:
    return part * 100.0 / whole if whole else math.nan  # as C++ divides: 0/0 is nan


class StatsCalculator:
    """tsl StatsCalculator of one subgraph, one `add_run` per batch of events the summarizer processes."""

    def __init__(self) -> None:
        self._details: dict[str, _Detail] = {}
        self._run_totals: list[int] = []

    def add_run(self, events: Iterable[ProfileEvent]) -> None:
        """ProfileSummarizer::ProcessProfiles: each event's node stats (its run order: its place in the batch),
        then the batch's total as one run. An empty batch changes nothing."""
        batch = list(events)
        if not batch:
            return
        for node_num, event in enumerate(batch):
            detail = self._details.get(event.name)
            if detail is None:
                detail = self._details[event.name] = _Detail(event.name, event.type, node_num)
            detail.times_us.append(event.us)
            detail.mem_bytes = event.mem_kb * 1000
            detail.times_called += 1
        self._run_totals.append(sum(event.us for event in batch))

    def report(self) -> str:
        """What ProfileSummaryDefaultFormatter::GenerateReport prints for the primary subgraph alone."""
        return self._output_string() + self._short_summary() + "\n"

    def _short_summary(self) -> str:
        return (f"Timings (microseconds): {Stat(self._run_totals).line()}\nMemory (bytes): count=0\n"
                f"{len(self._details)} nodes observed\n")

    def _output_string(self) -> str:
        return (self._by_metric("Run Order", self._run_order(), 0)
                + self._by_metric("Top by Computation Time", self._by_time(), TOP_BY_TIME) + self._by_type())

    def _run_order(self) -> list[_Detail]:
        n = len(self._details)
        return self._ordered(lambda d: f"{n - d.run_order:>20}")

    def _by_time(self) -> list[_Detail]:
        return self._ordered(lambda d: f"{d.avg_us:20.10f}")

    def _ordered(self, key: Callable[[_Detail], str]) -> list[_Detail]:
        """OrderNodesByMetric: a max-heap of (the metric as a fixed-width string, node); equal strings by the
        later node first."""
        entries = list(enumerate(self._details.values()))
        entries.sort(key=lambda e: (key(e[1]), e[0]), reverse=True)
        return [d for _, d in entries]

    def _by_metric(self, title: str, details: list[_Detail], limit: int) -> str:
        total = sum(self._run_totals)
        runs = len(self._run_totals)
        lines = [f"============================== {title} ==============================",
                 _field("[node type]", _TYPE_WIDTH) + _field("[first]", 9) + _field("[avg ms]", 9) + _field("[%]", 8)
                 + _field("[cdf%]", 8) + _field("[mem KB]", 10) + _field("[times called]", 9) + "\t[Name]"]
        cumulative = 0
        for detail in details[:limit] if limit > 0 else details:
            cumulative += sum(detail.times_us)
            lines.append(_field(detail.type, _TYPE_WIDTH) + _field(f"{detail.times_us[0] / 1000:.3f}", 9)
                         + _field(f"{detail.avg_us / 1000:.3f}", 9)
                         + _field(f"{_ratio(sum(detail.times_us), total):.3f}", 7) + "%"
                         + _field(f"{_ratio(cumulative, total):.3f}", 7) + "%"
                         + _field(f"{detail.mem_bytes / 1000:.3f}", 10)
                         + _field(str(detail.times_called // runs), 9) + f"\t{detail.name}")
        return "\n".join(lines) + "\n\n"

    def _by_type(self) -> str:
        runs = len(self._run_totals)
        per_type: dict[str, list[int]] = {}   # type -> [count, us per run, memory, times called per run]
        for detail in self._details.values():
            entry = per_type.setdefault(detail.type, [0, 0, 0, 0])
            entry[0] += 1
            entry[1] += sum(detail.times_us) // runs
            entry[2] += detail.mem_bytes
            entry[3] += detail.times_called // runs
        accumulated = np.float32(sum(e[1] for e in per_type.values()))
        lines = [f"Number of nodes executed: {len(self._details)}",
                 "============================== Summary by node type ==============================",
                 _field("[Node type]", _TYPE_WIDTH) + _field("[count]", 9) + _field("[avg ms]", 10)
                 + _field("[avg %]", 11) + _field("[cdf %]", 11) + _field("[mem KB]", 10)
                 + _field("[times called]", 10)]
        cdf = np.float32(0)
        # a max-heap of (time, (type, memory)): the slowest type first, equal times by descending type name
        for kind, (count, us, mem, called) in sorted(per_type.items(), key=lambda kv: (kv[1][1], kv[0], kv[1][2]),
                                                     reverse=True):
            share = np.float32(us) / accumulated * np.float32(100) if accumulated else np.float32(math.nan)
            cdf = np.float32(cdf + share)
            lines.append(_field(kind, _TYPE_WIDTH) + _field(str(count), 9)
                         + _field(f"{float(np.float32(us) / np.float32(1000)):.3f}", 10)
                         + _field(f"{float(share):.3f}", 10) + "%" + _field(f"{float(cdf):.3f}", 10) + "%"
                         + _field(f"{float(np.float32(mem) / np.float32(1000)):.3f}", 10) + _field(str(called), 9))
        return "\n".join(lines) + "\n\n"
