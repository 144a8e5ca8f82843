"""Measure many models on many devices: one worker per phone in parallel, faults contained per phone.

A phone that cannot be prepared (offline, unauthorized, no benchmark_model, failed health gate) is skipped with
its reason; a phone that disappears mid-batch is waited for (`reconnect_s`), then skipped; a phone whose
measurements fail `quarantine_after` times in a row is quarantined for the rest of the batch. Everything
measured is already in the results store, so rerunning the same batch measures only what is missing; Ctrl-C
lets every worker finish the measurement in flight, then stops. A batch given a label tags every measurement
with it as soon as that one is complete, reused ones too, so a batch killed midway keeps the labels of what it
finished.

Each worker holds its phone's lease (lease.py) for the whole of its work on it, from prepare to the last model,
so two processes never benchmark one phone at once: a phone leased elsewhere is waited for (or, without
`LeasePolicy.wait`, skipped as `busy: ...`). This host's CPU is leased the same way ("host"): two host
measurements at once would slow each other down and both report wrong numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from supernet.documents import header

from .adb import DeviceGone, FarmError
from .devices import device_lease
from .lease import LeaseCancelled, PhoneBusy
from .measure import Device, LocalModel, MeasurementResult, MeasureOptions, Notify, PhoneDevice, measure_model
from .store import MeasurementConflict, ResultsStore

KIND = "measurements"
VERSION = 1


@dataclass(frozen=True)
class LeasePolicy:
    """How a worker takes its phone's lease: wait for it (`on_wait` hears why, `timeout_s` None: no limit) or
    skip a phone another process holds; `command` names this process in the lease for others to see."""

    wait: bool = True
    timeout_s: float | None = None
    on_wait: Callable[[str], None] | None = None
    command: str | None = None


@dataclass
class BatchReport:
    """What a batch measured, what failed (per model) and which devices were not measured at all."""

    results: list[MeasurementResult] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)     # {"device", "model", "error"}
    skipped: list[dict[str, str]] = field(default_factory=list)      # {"device", "reason"}: not measured at all

    def to_dict(self) -> dict[str, Any]:
        """`measure --json`: a measurements document (its results are measurement documents)."""
        return {**header(KIND, VERSION), "results": [r.to_dict() for r in self.results], "failures": self.failures,
                "skipped": self.skipped}


def _wait_for(device: Device, seconds: float) -> bool:
    """Whether a phone that went away is back (ready) within `seconds`; False at once for this host."""
    if not isinstance(device, PhoneDevice):
        return False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            device.phone.check_ready()
            return True
        except FarmError:
            time.sleep(min(1.0, seconds / 10))
    return False


@dataclass(frozen=True)
class _Tagging:
    """What every measurement of a batch gets once complete: its label, and who hears notices."""

    label: str | None = None
    notify: Notify | None = None


def _measure_reconnecting(device: Device, model: LocalModel, store: ResultsStore, options: MeasureOptions,
                          reconnect_s: float, tagging: _Tagging) -> MeasurementResult:
    """Measure; if the phone went away, wait up to `reconnect_s` for it and try once more (resuming)."""
    try:
        return measure_model(device, model, store, options, tagging.label, tagging.notify)
    except DeviceGone:
        if not _wait_for(device, reconnect_s):
            raise
        return measure_model(device, model, store, options, tagging.label, tagging.notify)


def _run_device(device: Device, models: list[LocalModel], store: ResultsStore, options: MeasureOptions,
                report: BatchReport, lock: threading.Lock, tick: Callable[[str], None], quarantine_after: int,
                reconnect_s: float, stop: threading.Event, policy: LeasePolicy, tagging: _Tagging) -> None:
    lease = device_lease(device, wait=policy.wait, on_wait=policy.on_wait, timeout_s=policy.timeout_s, stop=stop,
                         command=policy.command)
    try:
        lease.acquire()
    except LeaseCancelled:
        return
    except FarmError as e:
        with lock:
            report.skipped.append({"device": device.name,
                                   "reason": f"busy: {e}" if isinstance(e, PhoneBusy) else str(e)})
        for _ in models:
            tick(device.name)
        return
    try:
        _measure_all(device, models, store, options, report, lock, tick, quarantine_after, reconnect_s, stop,
                     tagging)
    finally:
        lease.release()


def _measure_all(device: Device, models: list[LocalModel], store: ResultsStore, options: MeasureOptions,
                 report: BatchReport, lock: threading.Lock, tick: Callable[[str], None], quarantine_after: int,
                 reconnect_s: float, stop: threading.Event, tagging: _Tagging) -> None:
    try:
        device.prepare()
    except FarmError as e:
        with lock:
            report.skipped.append({"device": device.name, "reason": str(e)})
        for _ in models:
            tick(device.name)
        return
    failures_in_row = 0
    for i, model in enumerate(models):
        if stop.is_set():
            return
        try:
            result = _measure_reconnecting(device, model, store, options, reconnect_s, tagging)
        except DeviceGone as e:
            with lock:
                report.failures.append({"device": device.name, "model": str(model.path), "error": str(e)})
                report.skipped.append({"device": device.name, "reason": f"went away: {e}"})
            for _ in models[i:]:
                tick(device.name)
            return
        except (FarmError, MeasurementConflict) as e:
            failures_in_row += 1
            with lock:
                report.failures.append({"device": device.name, "model": str(model.path), "error": str(e)})
            tick(device.name)
            if failures_in_row >= quarantine_after:
                with lock:
                    report.skipped.append({"device": device.name, "reason": f"quarantined after {failures_in_row} "
                                                                            f"failures in a row: {e}"})
                for _ in models[i + 1:]:
                    tick(device.name)
                return
            continue
        failures_in_row = 0
        with lock:
            report.results.append(result)
        tick(device.name)


def measure_batch(devices: list[Device], models: list[LocalModel], store: ResultsStore, options: MeasureOptions,
                  progress: Callable[[str], None] | None = None, quarantine_after: int = 3,
                  reconnect_s: float = 30.0, leases: LeasePolicy = LeasePolicy(), label: str | None = None,
                  notify: Notify | None = None) -> BatchReport:
    """Every model on every device (devices in parallel, models in order on each), each measurement tagged
    `label` once complete; `notify` hears one-line notices (e.g. a device that cannot profile). See the module
    docstring."""
    tagging = _Tagging(label, notify)
    report = BatchReport()
    lock = threading.Lock()
    stop = threading.Event()
    tick = progress or (lambda _name: None)
    with ThreadPoolExecutor(max_workers=max(1, len(devices)), thread_name_prefix="farm") as pool:
        futures = [pool.submit(_run_device, d, models, store, options, report, lock, tick, quarantine_after,
                               reconnect_s, stop, leases, tagging) for d in devices]
        try:
            for f in futures:
                while True:
                    try:
                        f.result(timeout=0.5)  # a short wait keeps the main thread responsive to Ctrl-C
                        break
                    except FutureTimeout:
                        continue
        except KeyboardInterrupt:
            stop.set()  # workers finish the measurement in flight (its rounds are stored), then stop
            raise
    order = {d.name: i for i, d in enumerate(devices)}
    model_order = {str(m.path): i for i, m in enumerate(models)}
    report.results.sort(key=lambda r: (order.get(r.device_name, 0),
                                       model_order.get(r.model, 0)))
    return report
