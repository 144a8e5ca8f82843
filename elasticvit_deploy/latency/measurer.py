"""Measuring exported models on one prepared device through the farm harness, reusing the results store, and
reading a model's latency from one figure of the measurement (`STATISTICS`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from supernet.arch import Arch
from supernet.space import SearchSpace

from ..farm.measure import Device, LocalModel, MeasureOptions, measure_model
from ..farm.store import ResultsStore
from ..farm.summary import MeasurementSummary
from .exports import export_arch

__all__ = ["STATISTICS", "Measurer", "SubnetMeasurement", "default_statistic", "measure_archs"]

#: statistic name -> the figure of a measurement's summary (`MeasurementSummary`) it reads
STATISTICS = {"median": "median_ms", "best": "best_ms"}
HOST = "host"


def default_statistic(device_name: str) -> str:
    """The statistic a device's latencies are read from unless told: "best" on this host, "median" on phones.

    On a shared machine other tenants slow whole rounds down for seconds at a time, which moves medians by more
    than a predictor's tolerance; the fastest inference is what the hardware does undisturbed. A phone of the
    farm runs nothing else, and its median of round means is what the phone tables report."""
    return "best" if device_name == HOST else "median"


@dataclass
class Measurer:
    """Measures models on one prepared device, reusing the results store.

    `statistic` is the figure a model's latency is read from: "median" (of the round means, as a phone reports)
    or "best" (the fastest single inference over all rounds); see `default_statistic`."""

    device: Device
    store: ResultsStore
    options: MeasureOptions
    statistic: str = "median"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic {self.statistic!r}: choose from {', '.join(STATISTICS)}")

    def latency_ms(self, path: Path) -> tuple[float, MeasurementSummary]:
        """The model's latency (ms, the chosen statistic) and the measurement's whole summary."""
        key = STATISTICS[self.statistic]
        result = measure_model(self.device, LocalModel.load(path), self.store, self.options)
        if getattr(result.summary, key) is None:  # stored before this figure existed: measure again
            result = measure_model(self.device, LocalModel.load(path), self.store, replace(self.options, fresh=True))
        return float(getattr(result.summary, key)), result.summary


@dataclass(frozen=True)
class SubnetMeasurement:
    """One whole subnet measured end to end: its latency (the measurer's statistic) and the rounds' CV."""

    arch: Arch
    ms: float
    cv: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "ms": self.ms, "cv": self.cv}


def measure_archs(arch_list: Sequence[Arch], space: SearchSpace, measurer: Measurer,
                  tick: Callable[[str], object] = lambda _m: None) -> list[SubnetMeasurement]:
    """Export and measure whole subnets end to end, one `tick(message)` per subnet."""
    rows = []
    for arch in arch_list:
        tick(f"subnet r{arch.resolution}")
        ms, summary = measurer.latency_ms(export_arch(arch, space))
        rows.append(SubnetMeasurement(arch, ms, summary.cv))
    return rows
