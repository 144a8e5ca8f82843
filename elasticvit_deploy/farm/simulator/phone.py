"""One simulated phone: identity, sandbox, thermal model with its sensor refresher, injectable faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from . import devicefs
from .profiles import PhoneProfile
from .thermal import Thermal

FAULT_KINDS = ("offline", "unauthorized", "drop", "garble", "slow")
SENSOR_REFRESH_S = 0.1  # host seconds between sensor file refreshes


class SimPhone:
    """A phone of the farm. Its file system is the directory `sandbox`; its private state (thermal model,
    settings for the simulated benchmark_model) lives in `state_dir`, outside the sandbox."""

    def __init__(self, serial: str, profile: PhoneProfile, transport_id: int, sandbox: Path, state_dir: Path,
                 time_scale: float, host_timings: Path | None = None) -> None:
        self.serial = serial
        self.host_timings = host_timings or state_dir.parent / "host-timings"
        self.profile = profile
        self.transport_id = transport_id
        self.sandbox = sandbox
        self.state_dir = state_dir
        self.time_scale = time_scale
        self.thermal = Thermal(state_dir / "thermal", profile, time_scale)
        self._faults: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._stopped = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_sensors, name=f"sensors-{serial}", daemon=True)

    # lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the sandbox and state, then keep the sensor files current in a background thread."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        devicefs.build(self.sandbox, self.state_dir, self.profile, self.serial)
        settings = {"serial": self.serial, "sandbox": str(self.sandbox), "time_scale": self.time_scale,
                    "profile": asdict(self.profile),
                    # shared by the phones of a farm (and by farms given the same directory)
                    "host_timing_cache": str(self.host_timings)}
        (self.state_dir / "phone.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
        self.thermal.reset()
        self._refresher.start()

    def stop(self) -> None:
        """Stop the refresher and kill whatever shell commands still run."""
        self._stopped.set()
        if self._refresher.is_alive():
            self._refresher.join()
        with self._lock:
            processes = list(self._processes)
        for proc in processes:
            kill_group(proc)

    def _refresh_sensors(self) -> None:
        sensors = devicefs.Sensors(self.sandbox, self.thermal)
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

    def shell_env(self) -> dict[str, str]:
        """Environment of shell commands."""
        tmp = str(self.sandbox / "data/local/tmp")
        return {"PATH": f"{self.sandbox}/system/bin:/usr/bin:/bin", "EVD_SYSFS": str(self.sandbox / "sys"),
                "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}

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

    # processes -----------------------------------------------------------------------------------------------
    @contextmanager
    def tracking(self, proc: subprocess.Popen[bytes]) -> Iterator[None]:
        """Remember a running shell command, so stop() can kill it."""
        with self._lock:
            self._processes.add(proc)
        try:
            yield
        finally:
            with self._lock:
                self._processes.discard(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a shell command started in its own session, with everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
