"""Measure many models on many targets: one worker per phone in parallel, faults contained per phone.

A phone that cannot be prepared (offline, unauthorized, no benchmark_model, failed health gate) is skipped with
its reason; a phone that disappears mid-batch is waited for (`reconnect_s`), then skipped; a phone whose
measurements fail `quarantine_after` times in a row is quarantined for the rest of the batch. Everything
measured is already in the results store, so rerunning the same batch measures only what is missing; Ctrl-C
lets every worker finish the measurement in flight, then stops.

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

from .adb import DeviceGone, FarmError
from .lease import LeaseCancelled, PhoneBusy, PhoneLease
from .measure import LocalModel, MeasureOptions, MeasurementResult, PhoneTarget, Target, measure_model
from .store import MeasurementConflict, ResultsStore


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
    results: list[MeasurementResult] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)     # {"device", "model", "error"}
    skipped: list[dict[str, str]] = field(default_factory=list)      # {"device", "reason"}: not measured at all

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "failures": self.failures, "skipped": self.skipped}


def _wait_for(target: Target, seconds: float) -> bool:
    if not isinstance(target, PhoneTarget):
        return False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            target.phone.check_ready()
            return True
        except FarmError:
            time.sleep(min(1.0, seconds / 10))
    return False


def _measure_reconnecting(target: Target, model: LocalModel, store: ResultsStore, options: MeasureOptions,
                          reconnect_s: float) -> MeasurementResult:
    """Measure; if the phone went away, wait up to `reconnect_s` for it and try once more (resuming)."""
    try:
        return measure_model(target, model, store, options)
    except DeviceGone:
        if not _wait_for(target, reconnect_s):
            raise
        return measure_model(target, model, store, options)


def _lease(target: Target, policy: LeasePolicy, stop: threading.Event) -> PhoneLease:
    """The lease of a phone target (keyed by its adb server and serial), or of this host for other targets."""
    server, serial = (target.phone.server, target.phone.serial) if isinstance(target, PhoneTarget) \
        else (None, target.name)
    return PhoneLease(server, serial, wait=policy.wait, on_wait=policy.on_wait, timeout_s=policy.timeout_s,
                      stop=stop, command=policy.command, name=target.name)


def _run_target(target: Target, models: list[LocalModel], store: ResultsStore, options: MeasureOptions,
                report: BatchReport, lock: threading.Lock, tick: Callable[[str], None], quarantine_after: int,
                reconnect_s: float, stop: threading.Event, policy: LeasePolicy) -> None:
    lease = _lease(target, policy, stop)
    try:
        lease.acquire()
    except LeaseCancelled:
        return
    except FarmError as e:
        with lock:
            report.skipped.append({"device": target.name,
                                   "reason": f"busy: {e}" if isinstance(e, PhoneBusy) else str(e)})
        for _ in models:
            tick(target.name)
        return
    try:
        _measure_all(target, models, store, options, report, lock, tick, quarantine_after, reconnect_s, stop)
    finally:
        lease.release()


def _measure_all(target: Target, models: list[LocalModel], store: ResultsStore, options: MeasureOptions,
                 report: BatchReport, lock: threading.Lock, tick: Callable[[str], None], quarantine_after: int,
                 reconnect_s: float, stop: threading.Event) -> None:
    try:
        target.prepare()
    except FarmError as e:
        with lock:
            report.skipped.append({"device": target.name, "reason": str(e)})
        for _ in models:
            tick(target.name)
        return
    failures_in_row = 0
    for i, model in enumerate(models):
        if stop.is_set():
            return
        try:
            result = _measure_reconnecting(target, model, store, options, reconnect_s)
        except DeviceGone as e:
            with lock:
                report.failures.append({"device": target.name, "model": str(model.path), "error": str(e)})
                report.skipped.append({"device": target.name, "reason": f"went away: {e}"})
            for _ in models[i:]:
                tick(target.name)
            return
        except (FarmError, MeasurementConflict) as e:
            failures_in_row += 1
            with lock:
                report.failures.append({"device": target.name, "model": str(model.path), "error": str(e)})
            tick(target.name)
            if failures_in_row >= quarantine_after:
                with lock:
                    report.skipped.append({"device": target.name, "reason": f"quarantined after {failures_in_row} "
                                                                            f"failures in a row: {e}"})
                for _ in models[i + 1:]:
                    tick(target.name)
                return
            continue
        failures_in_row = 0
        with lock:
            report.results.append(result)
        tick(target.name)


def measure_batch(targets: list[Target], models: list[LocalModel], store: ResultsStore, options: MeasureOptions,
                  progress: Callable[[str], None] | None = None, quarantine_after: int = 3,
                  reconnect_s: float = 30.0, leases: LeasePolicy = LeasePolicy()) -> BatchReport:
    """Every model on every target (targets in parallel, models in order on each); see the module docstring."""
    report = BatchReport()
    lock = threading.Lock()
    stop = threading.Event()
    tick = progress or (lambda _name: None)
    with ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="farm") as pool:
        futures = [pool.submit(_run_target, t, models, store, options, report, lock, tick, quarantine_after,
                               reconnect_s, stop, leases) for t in targets]
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
    order = {t.name: i for i, t in enumerate(targets)}
    model_order = {str(m.path): i for i, m in enumerate(models)}
    report.results.sort(key=lambda r: (order.get(r.device.get("alias") or r.device["serial"], 0),
                                       model_order.get(r.model, 0)))
    return report
