"""One simulated phone: identity, file tree, quirks, thermal model with its sensor refresher, injectable faults,
and the service its sandboxed benchmark_model talks to."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path

from . import devicefs
from .benchmark_service import BenchmarkService
from .processes import Processes
from .profiles import PhoneProfile
from .quirks import check_quirks
from .sandbox import Userland
from .thermal import Thermal
from .twin import timing_identity

FAULT_KINDS = ("offline", "unauthorized", "drop", "garble", "slow")
SENSOR_REFRESH_S = 0.1  # host seconds between sensor file refreshes


class SimPhone:
    """A phone of the farm. Its file system is the directory `sandbox` (its shell commands run confined to it, see
    sandbox.py); its private state (thermal model, settings for the simulated benchmark_model) lives in
    `state_dir`, outside the sandbox. `quirks` (names from quirks.QUIRKS) change what the phone shows;
    `benchmark_binary` is a host executable run as its benchmark_model instead of the simulated one; `table` is
    the nn-Meter table file the simulated one follows as the profile's twin (twin.py; None: host-scaled)."""

    def __init__(self, serial: str, profile: PhoneProfile, transport_id: int, sandbox: Path, state_dir: Path,
                 time_scale: float, userland: Userland, host_timings: Path | None = None,
                 quirks: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
                 benchmark_binary: Path | None = None, table: Path | None = None) -> None:
        self.serial = serial
        self.quirks: frozenset[str] = check_quirks(quirks)
        self.benchmark_binary = benchmark_binary
        self.table = None if benchmark_binary is not None else table
        self.userland = userland
        self.host_timings = host_timings or state_dir.parent / "host-timings"
        self.profile = profile
        self.transport_id = transport_id
        self.sandbox = sandbox
        self.state_dir = state_dir
        self.time_scale = time_scale
        self.thermal = Thermal(state_dir / "thermal", profile, time_scale)
        self._faults: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self.processes = Processes()
        self.benchmark: BenchmarkService | None = None
        self._stopped = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_sensors, name=f"sensors-{serial}", daemon=True)

    # lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the sandbox and state, then keep the sensor files current in a background thread."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        timing = "external benchmark binary" if self.benchmark_binary else timing_identity(self.profile, self.table)
        devicefs.build(self.sandbox, self.profile, self.serial, self.userland, self.quirks, timing)
        settings = {"serial": self.serial, "sandbox": str(self.sandbox), "time_scale": self.time_scale,
                    "profile": asdict(self.profile), "quirks": sorted(self.quirks),
                    # shared by the phones of a farm (and by farms given the same directory)
                    "host_timing_cache": str(self.host_timings),
                    "table": None if self.table is None else str(self.table)}
        (self.state_dir / "phone.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
        self.thermal.reset()
        self.benchmark = BenchmarkService(self.sandbox, self.state_dir, self.host_timings, self.userland,
                                          self.processes, self.thermal, self.benchmark_binary, self.table)
        self.benchmark.start()
        self._refresher.start()

    def stop(self) -> None:
        """Stop the refresher and the benchmark service, and kill whatever shell commands still run."""
        self._stopped.set()
        if self._refresher.is_alive():
            self._refresher.join()
        if self.benchmark is not None:
            self.benchmark.stop()
        self.processes.kill_all()

    def _refresh_sensors(self) -> None:
        sensors = devicefs.Sensors(self.sandbox, self.thermal, self.quirks)
        while not self._stopped.is_set():
            sensors.refresh()
            self._stopped.wait(SENSOR_REFRESH_S)

    # state ---------------------------------------------------------------------------------------------------
    @property
    def temperature_mc(self) -> float:
        """Current CPU temperature in millidegrees Celsius."""
        return self.thermal.current()

    @temperature_mc.setter
    def temperature_mc(self, value: float) -> None:
        self.thermal.set(value)

    @property
    def state(self) -> str:
        """What `adb devices` shows: device, offline or unauthorized."""
        with self._lock:
            for kind in ("unauthorized", "offline"):
                if kind in self._faults:
                    return kind
        return "device"

    # faults --------------------------------------------------------------------------------------------------
    def set_fault(self, kind: str, times: int | None = None) -> None:
        """Inject a fault: until cleared (times=None) or for the next `times` occurrences. Kinds: offline and
        unauthorized (state shown by `adb devices`; transports fail), drop (the connection closes in the middle of
        a shell command's output), garble (a shell command's stdout becomes random text), slow (the phone answers
        2 s x time_scale late)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be a positive number of occurrences, or None for 'until cleared'")
        with self._lock:
            self._faults[kind] = times

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def clear_fault(self, kind: str) -> None:
        """Clear one kind of fault (a replug clears `offline`, not `unauthorized`)."""
        with self._lock:
            self._faults.pop(kind, None)

    def take_fault(self, kind: str) -> bool:
        """Whether the fault hits this occurrence (counting it down)."""
        with self._lock:
            if kind not in self._faults:
                return False
            left = self._faults[kind]
            if left is not None:
                if left <= 1:
                    del self._faults[kind]
                else:
                    self._faults[kind] = left - 1
            return True
