"""Where a search measures (live and hybrid oracles, `--verify`): for each device searched for, the device itself
(a registered phone, or this host), one device named for all (`--device`), or the phone's simulated twin
(`--simulate`: the simulator profile of the phone whose tables it is). Measurements use the farm's defaults
(`RunnerSettings`, `MeasureOptions`); a simulated twin is pinned to its big cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from ..farm.adb import AdbServer, FarmError, Phone
from ..farm.devices import HOST, UnknownDevice, single_device
from ..farm.measure import Device, MeasureOptions, PhoneDevice
from ..farm.registry import Registry
from ..farm.runner_protocol import RunnerSettings
from ..farm.store import ResultsStore
from ..latency.measurer import Measurer, default_statistic
from ..simulator import PROFILES, SimulatedFarm
from .errors import NoMeasuringDevice

__all__ = ["MeasurerPool", "MeasuringPlan", "MeasuringSetup"]

MEASURED_ON_KEYS = ("kind", "serial", "alias", "model", "fingerprint")


@dataclass
class MeasuringSetup:
    """A prepared measurer for one searched device; `simulated` says whether it is a simulated twin (None when no
    twin was asked for)."""

    measurer: Measurer
    simulated: bool | None = None

    def describe(self) -> dict[str, Any]:
        """The result's `measured_on`: the device, its runtime, the statistic read (and `simulated` if asked)."""
        info = self.measurer.device.device_info()
        out: dict[str, Any] = {k: info.get(k) for k in MEASURED_ON_KEYS if k in info}
        out.update(runtime=self.measurer.device.runtime_version(), statistic=self.measurer.statistic)
        if self.simulated is not None:
            out["simulated"] = self.simulated
        return out

    def identity(self) -> dict[str, Any]:
        """What its measurements depend on: the device's fingerprint, the runtime, the statistic, the settings."""
        device = self.measurer.device
        return {"fingerprint": device.device_info().get("fingerprint"), "runtime": device.runtime_version(),
                "statistic": self.measurer.statistic, "settings": device.settings.flags()}


@dataclass(frozen=True)
class MeasuringPlan:
    """Where searched devices are measured: on `device` (`host`, an alias or a serial) if given, else each on
    itself, or on its simulated twin when `simulate`; `statistic` "auto" is `default_statistic` of the device."""

    device: str | None = None
    simulate: bool = False
    statistic: str = "auto"
    adb: str | None = None

    def statistic_for(self, name: str) -> str:
        return default_statistic(name) if self.statistic == "auto" else self.statistic


class MeasurerPool:
    """Opens the `MeasuringSetup` of a searched device on demand (`pool(device)`); the simulated farms started
    and the device leases taken are released when the pool closes (use it as a context manager)."""

    def __init__(self, plan: MeasuringPlan, settings: RunnerSettings | None = None,
                 options: MeasureOptions | None = None, on_wait: Callable[[str], None] | None = None):
        self.plan = plan
        self.settings = settings or RunnerSettings()
        self.options = options or MeasureOptions()
        self.on_wait = on_wait
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> MeasurerPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stack.close()

    def __call__(self, device: str) -> MeasuringSetup:
        plan = self.plan
        statistic = plan.statistic_for(plan.device or device)
        simulated = None if not plan.simulate else (plan.device is None and device != HOST)
        if simulated:
            return MeasuringSetup(self._twin(device, statistic), True)
        if plan.device is None and device != HOST and device not in Registry().load():
            raise NoMeasuringDevice(f"--target {device}: no device to measure on; register the phone "
                                    f"(`elasticvit-deploy farm add {device} SERIAL`), give --device, or --simulate")
        opened = self._stack.enter_context(single_device(plan.device or device, plan.adb, self.settings,
                                                         self.options, on_wait=self.on_wait))
        return MeasuringSetup(Measurer(opened, ResultsStore(), self.options, statistic), simulated)

    def _twin(self, device: str, statistic: str) -> Measurer:
        """A measurer on the simulated twin of `device` (a SIMULATOR, not a phone), started for the pool's life."""
        from ..simulator.profiles import TABLE_TWINS

        profile = TABLE_TWINS.get(device)
        if profile is None:
            raise NoMeasuringDevice(f"--simulate: no simulated twin of {device} (twins of: "
                                    f"{', '.join(TABLE_TWINS)})")
        twin = self._stack.enter_context(simulated_device(profile.name, self.settings, self.options))
        return Measurer(twin, ResultsStore(), self.options, statistic)


@contextlib.contextmanager
def simulated_device(profile: str, settings: RunnerSettings, options: MeasureOptions,
                     tables: Path | None = None) -> Iterator[Device]:
    """A simulated twin of a phone profile (a SIMULATOR, not the phone): one simulated phone behind its own adb
    server on 127.0.0.1, prepared (its big cluster, one thread unless `settings` say otherwise), for the
    duration of the block; it times by its table in `tables` (default: the installed tables). UnknownDevice for
    a profile the simulator does not have."""
    if profile not in PROFILES:
        raise UnknownDevice(f"--simulate: no simulated twin of {profile} (profiles: {', '.join(PROFILES)})")
    with SimulatedFarm([profile], tables=tables) as farm:
        phone = Phone(AdbServer("127.0.0.1", farm.port, explicit=True), farm.serials[0])
        device = PhoneDevice(phone, f"simulated-{profile}", replace(settings, cores=settings.cores or "auto"),
                             options)
        try:
            device.prepare()
        except FarmError as e:
            raise FarmError(f"--simulate {profile}: {e}") from None
        yield device
