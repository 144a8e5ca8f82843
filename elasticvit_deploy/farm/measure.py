"""Measuring .tflite models on a phone (through the runner) or on this host (ai-edge-litert), with one schema.

A measurement is a number of rounds; each round is one runner call on the phone, one benchmark_model run
(`warmup` warm-ups, `runs` timed inferences) whose mean latency is one sample. Each round is committed to the
results store as soon as it completes, so a kill, a USB drop or a vanished phone loses at most the round in
flight, and an interrupted measurement resumes where it stopped; a complete one with the same key (model sha256,
device fingerprint, runtime version, flags) is reused unless `fresh`. A device's settings are settled when it is
prepared: `threads` None becomes its devices.toml default, else 1 (`RunnerSettings.with_device_threads`).

A measurement given a label is tagged with it as soon as it is complete (a reused one too). With
`MeasureOptions.profile`, a measurement without a stored op profile gets one more tool run with profiling on,
after its timed rounds: stored apart (`ResultsStore.set_profile`), it never enters the samples or the summary.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from android_runner import RUNNER
from supernet.documents import header

from ..errors import one_line
from ..export.quiet import native_output_captured
from ..export.tflite_check import ModelFileCheckError, check_tflite
from .adb import DeviceGone, FarmError, FarmInputError, Phone, ShellResult
from .benchmark_tool import HELP_ARGV, BenchmarkTool, UnknownBenchmarkTool, UnsupportedDelegate, detect_tool
from .identity import DeviceIdentity, read_health, read_identity
from .profile_output import ProfileRun
from .runner_protocol import (
    BENCHMARK_PATH,
    DEFAULT_ROUNDS,
    MAX_SECS,
    MODELS_DIR,
    RUNNER_PATH,
    RoundResult,
    RunnerOutput,
    RunnerOutputError,
    RunnerSettings,
    parse_runner_output,
    profile_run,
    round_problem,
    runner_argv,
)
from .stats import is_stable
from .store import ResultsStore, measurement_key
from .summary import MeasurementSummary, summarize_rounds


class UnsupportedDelegateError(FarmError):
    """The phone's benchmark tool cannot run the asked delegate."""


@dataclass(frozen=True)
class LocalModel:
    """A checked .tflite file on this host, named by its sha256 on the phones."""

    path: Path
    sha256: str
    size: int

    @classmethod
    def load(cls, path: str | Path) -> LocalModel:
        """Check a .tflite file locally (exists, parses as a TFLite flatbuffer) before anything is pushed;
        FarmInputError naming the file and the problem otherwise."""
        path = Path(path)
        try:
            data = check_tflite(path)
        except ModelFileCheckError as e:
            raise FarmInputError(str(e)) from None
        return cls(path, hashlib.sha256(data).hexdigest(), len(data))


@dataclass(frozen=True)
class MeasureOptions:
    """How many rounds a measurement takes, whether stored ones are reused, and the phone's health gate."""

    rounds: int = DEFAULT_ROUNDS
    until_stable_pct: float | None = None  # keep adding rounds until the median's 95% CI is within +-this %
    max_rounds: int = 20
    fresh: bool = False
    min_battery: int = 20
    max_start_temp_c: float = 50.0
    min_free_mb: int = 64
    profile: bool = False  # one extra tool run with op profiling on, for a measurement without a stored profile


Notify = Callable[[str], None]  # hears one-line notices (a device that cannot profile, a failed profiling run)
HOST_NO_PROFILE = "host: op profiling needs a phone's benchmark_model"

MEASUREMENT_KIND = "measurement"
MEASUREMENT_VERSION = 1


@dataclass
class MeasurementResult:
    """One model measured on one device: what was measured where, with which runtime and flags, its figures."""

    model: str
    model_sha256: str
    device: dict[str, Any]
    runtime: str
    flags: dict[str, Any]
    summary: MeasurementSummary
    cached: bool
    label: str | None = None
    profile: ProfileRun | None = None  # the measurement's op profile, if one is stored

    @property
    def device_name(self) -> str:
        """The name the device was measured under: its alias, else its serial."""
        return str(self.device.get("alias") or self.device["serial"])

    def to_dict(self) -> dict[str, Any]:
        """The result as a document (kind "measurement"), with the core mask used (`cores`), the temperature
        sensor (`temp_sensor`: the zone chosen at prepare, and the sensors the runner actually read, which differ
        when the zone failed), the batch's `label` and the stored op `profile` (only when there is one)."""
        out = {**header(MEASUREMENT_KIND, MEASUREMENT_VERSION), "model": self.model,
               "model_sha256": self.model_sha256, "device": self.device, "runtime": self.runtime,
               "flags": self.flags, "cached": self.cached, "cores": self.flags.get("cores"),
               "temp_sensor": self.device.get("temp_sensor"), "label": self.label, **self.summary.to_dict()}
        if self.profile is not None:
            out["profile"] = self.profile.to_dict()
        return out


class Device(Protocol):
    """Where models are measured: a phone or this host. One `run_round` is one benchmark_model run; `settings`
    are settled for the device (its default threads) once it is prepared. `run_profile` is one run with op
    profiling on, None when the device cannot profile (`no_profile_reason` says why, in one line)."""

    name: str
    settings: RunnerSettings

    def prepare(self) -> None: ...

    def device_info(self) -> dict[str, Any]: ...

    def runtime_version(self) -> str: ...

    def run_round(self, model: LocalModel, index: int) -> RoundResult: ...

    def run_profile(self, model: LocalModel) -> ProfileRun | None: ...

    def no_profile_reason(self) -> str: ...

    def runtime_info(self) -> dict[str, Any]: ...


class PhoneDevice:
    """A phone behind an adb server, driven through android_runner/runner.sh, one runner call per round.
    `default_threads` is the phone's own default (its devices.toml `threads`), used when `settings` name none."""

    def __init__(self, phone: Phone, alias: str | None, settings: RunnerSettings, options: MeasureOptions,
                 default_threads: int | None = None):
        settings.validate()
        self.phone = phone
        self.alias = alias
        self.name = alias or phone.serial
        self.options = options
        self.settings = settings
        self.default_threads = default_threads
        self.identity: DeviceIdentity | None = None
        self.tool: BenchmarkTool | None = None
        self._runtime: str | None = None
        self._bench_sha: str | None = None
        self._pushed: set[str] = set()
        self._last: dict[str, Any] = {}

    def prepare(self) -> None:
        """Identity, the phone's benchmark tool (family, version, sha256), runner on the phone, health; a delegate
        the tool cannot do is refused (UnsupportedDelegateError). Settles `settings` for this phone."""
        self.settings = self.settings.with_device_threads(self.default_threads)
        self.identity = read_identity(self.phone, self.alias)
        if self.settings.cores == "auto":
            self.settings = replace(self.settings, cores=self.identity.big_core_mask())
        self._bench_sha, self.tool = detect_phone_tool(self.phone)
        try:
            self.tool.delegate_args(self.settings.delegate)
        except UnsupportedDelegate as e:
            raise UnsupportedDelegateError(f"{self.phone.serial}: {e}") from None
        version = f" {self.tool.version}" if self.tool.version else ""
        self._runtime = f"benchmark_model {self.tool.family}{version}@{self._bench_sha[:16]}"
        runner = RUNNER.read_bytes()
        self.phone.push_if_changed(RUNNER, RUNNER_PATH, hashlib.sha256(runner).hexdigest())
        health = read_health(self.phone, self.identity)
        problems = health.problems(self.options.min_battery, self.options.max_start_temp_c, self.options.min_free_mb)
        if problems:
            raise FarmError(f"{self.phone.serial}: skipped, {'; '.join(problems)}")

    def device_info(self) -> dict[str, Any]:
        """The phone's identity record (fingerprint, model, SoC, cores, thermal zone, ...), kind "phone"."""
        assert self.identity is not None, "prepare() first"
        return dict(self.identity.to_dict(), kind="phone")

    def runtime_version(self) -> str:
        assert self._runtime is not None, "prepare() first"
        return self._runtime

    def runtime_info(self) -> dict[str, Any]:
        """The tool (summary.TOOL_KEYS) and what throttling is judged against: the cores' top frequencies, the
        pinned cores, the sensor's throttling temperature."""
        assert self.identity is not None and self.tool is not None, "prepare() first"
        mask = int(self.settings.cores, 16) if self.settings.cores else None
        pinned = [c for c in range(len(self.identity.core_max_khz)) if mask is None or mask >> c & 1]
        sensor = self.identity.temp_sensor
        return dict(self._last, family=self.tool.family, sha256=self._bench_sha, max_khz=self.identity.core_max_khz,
                    pinned_cores=pinned, throttle_c=sensor.throttle_c if sensor else None)

    def _pushed_model(self, model: LocalModel) -> str:
        """The model's path on the phone, pushed there first if this device has not pushed it yet."""
        remote = f"{MODELS_DIR}/{model.sha256}.tflite"
        if model.sha256 not in self._pushed:
            self.phone.push_if_changed(model.path, remote, model.sha256)
            self._pushed.add(model.sha256)
        return remote

    def run_round(self, model: LocalModel, index: int) -> RoundResult:
        """One runner call: cool down, one benchmark_model run; FarmError saying why if it gave no timing."""
        assert self.identity is not None and self.tool is not None, "prepare() first"
        remote = self._pushed_model(model)
        s = self.settings
        assert s.threads is not None, "prepare() first"  # it settles the device's threads
        flags = self.tool.args(remote, warmup=s.warmup, runs=s.runs, threads=s.threads, delegate=s.delegate,
                               max_secs=MAX_SECS)
        r, out = self._runner_call(model, remote, flags, index)
        self._last = {"version": out.version, "output_family": out.family, "root": out.root, "knobs": out.knobs}
        return r

    def run_profile(self, model: LocalModel) -> ProfileRun | None:
        """One runner call like a round's (same cooling) with the tool's profiling flags
        (`BenchmarkTool.profile_args`); None when the tool has no profiling flag, FarmError if the run failed."""
        assert self.identity is not None and self.tool is not None, "prepare() first"
        if not self.tool.can_profile():
            return None
        s = self.settings
        assert s.threads is not None, "prepare() first"
        remote = self._pushed_model(model)
        flags = self.tool.profile_args(remote, runs=s.runs, threads=s.threads, delegate=s.delegate,
                                       max_secs=MAX_SECS)
        assert flags is not None  # the tool can profile
        r, _ = self._runner_call(model, remote, flags, 0)
        return profile_run(r, self.tool.family)

    def no_profile_reason(self) -> str:
        """Why `run_profile` gave None: the phone's tool lists no profiling flag."""
        tool = self.tool.name if self.tool is not None else "its benchmark_model"
        return f"{self.name}: {tool} has no op profiling flag; no profile taken"

    def _runner_call(self, model: LocalModel, remote: str, flags: list[str], index: int
                     ) -> tuple[RoundResult, RunnerOutput]:
        """One runner call of one benchmark_model run with `flags`: the round (numbered `index`) and the runner's
        output; FarmError saying why if it gave no timing."""
        assert self.identity is not None, "prepare() first"
        s = self.settings
        argv = runner_argv(remote, flags, s, 1, self.identity.temp_path, self.identity.temp_scale)
        result = self.phone.shell(argv, timeout=s.cool_timeout_s + 2 * MAX_SECS + 120)
        try:
            out = parse_runner_output(result.stdout)
        except RunnerOutputError as e:
            if e.code == "model_missing":
                self._pushed.discard(model.sha256)  # removed from the phone meanwhile: pushed again next round
            raise FarmError(f"{self.phone.serial}: {_runner_failure(e, result)}") from None
        if len(out.rounds) != 1:
            raise FarmError(f"{self.phone.serial}: the runner reported {len(out.rounds)} rounds, expected 1")
        (r,) = out.rounds
        r.round = index
        if problem := round_problem(r):
            raise FarmError(f"{self.phone.serial}: {problem}")
        return r, out


def _runner_failure(error: RunnerOutputError, result: ShellResult) -> str:
    """One line on a runner call that did not complete: the runner's own error, else its exit status and stderr
    (a runner missing from the phone exits 127 with the shell's message)."""
    if error.code != "garbled":
        return str(error)
    said = " | ".join(ln.strip() for ln in (result.stderr or "").strip().splitlines()[-2:] if ln.strip())
    said = said or " | ".join(ln.strip() for ln in result.stdout.strip().splitlines()[-2:]
                              if ln.strip() and not ln.startswith("EVD "))
    status = f"the runner exited {result.exit_code}" if result.exit_code != 0 else str(error)
    return one_line(f"{status}{f': {said}' if said else ''}", 300)


def detect_phone_tool(phone: Phone) -> tuple[str, BenchmarkTool]:
    """The sha256 and kind of the benchmark tool installed on the phone (FarmError if there is none)."""
    sha = phone.remote_sha256(BENCHMARK_PATH)
    if sha is None:
        raise FarmError(f"{phone.serial}: no benchmark_model at {BENCHMARK_PATH}; install it once with "
                        f"`elasticvit-deploy farm setup --benchmark-binary PATH`")
    listing = phone.shell([BENCHMARK_PATH, *HELP_ARGV])
    try:
        return sha, detect_tool(f"{listing.stdout}\n{listing.stderr}")
    except UnknownBenchmarkTool as e:
        raise FarmError(f"{phone.serial}: {BENCHMARK_PATH} is not a benchmark tool we know ({e})") from None


class HostDevice:
    """This machine's CPU through ai-edge-litert's interpreter: same rounds, statistics and schema as a phone.
    Its default threads: DEFAULT_THREADS (settled at once: the host has no devices.toml entry)."""

    name = "host"

    def __init__(self, settings: RunnerSettings):
        settings.validate()
        self.settings = settings.with_device_threads(None)

    def prepare(self) -> None:
        """Refuse what only phones can do: other delegates, a taskset core mask."""
        if self.settings.delegate not in ("cpu", "xnnpack"):
            raise FarmError(f"host: the {self.settings.delegate} delegate is only available on phones")
        if self.settings.cores not in (None, "auto"):
            raise FarmError("host: --cores (taskset) applies to phones only")

    def device_info(self) -> dict[str, Any]:
        """This host's identity record (CPU model, hostname, platform), kind "host"."""
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        node = platform.node()
        fingerprint = hashlib.sha256(f"host|{node}|{cpu}".encode()).hexdigest()[:16]
        return {"kind": "host", "serial": "host", "alias": "host", "model": cpu, "manufacturer": platform.system(),
                "soc": platform.machine(), "abi": platform.machine(), "build_fingerprint": platform.platform(),
                "fingerprint": fingerprint, "hostname": node}

    def runtime_version(self) -> str:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"

    def runtime_info(self) -> dict[str, Any]:
        """The runtime (no throttling information on a host)."""
        return {"version": self.runtime_version(), "root": False, "knobs": []}

    def run_round(self, model: LocalModel, index: int) -> RoundResult:
        """One round: load the model in a fresh interpreter, `warmup` untimed and `runs` timed invocations."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.settings.delegate == "xnnpack" else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        t0 = time.perf_counter()
        try:
            with native_output_captured():
                it = Interpreter(model_path=str(model.path), num_threads=self.settings.threads,
                                 experimental_op_resolver_type=resolver)
                it.allocate_tensors()
        except (ValueError, RuntimeError) as e:  # e.g. ops this host's LiteRT lacks (Flex, custom)
            raise FarmError(f"host: cannot run {model.path.name} ({' '.join(str(e).split())[:200]})") from None
        init_us = int((time.perf_counter() - t0) * 1e6)
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
        warm = [self._time(it) for _ in range(self.settings.warmup)]
        timed = np.array([self._time(it) for _ in range(self.settings.runs)])
        return RoundResult(index, count=len(timed), avg_us=float(timed.mean()), min_us=float(timed.min()),
                           max_us=float(timed.max()), std_us=float(timed.std()), init_us=init_us,
                           first_us=float(warm[0] if warm else timed[0]),
                           warmup_avg_us=float(np.mean(warm)) if warm else 0.0, exit_code=0)

    def run_profile(self, model: LocalModel) -> ProfileRun | None:
        """None: op profiling needs a phone's benchmark_model (the host's interpreter has no op profiler)."""
        return None

    def no_profile_reason(self) -> str:
        """Why `run_profile` gives None on this host."""
        return HOST_NO_PROFILE

    @staticmethod
    def _time(interpreter: Any) -> float:
        t0 = time.perf_counter()
        interpreter.invoke()
        return (time.perf_counter() - t0) * 1e6


def measure_model(device: Device, model: LocalModel, store: ResultsStore, options: MeasureOptions,
                  label: str | None = None, notify: Notify | None = None) -> MeasurementResult:
    """Measure `model` on a prepared `device`, reusing or resuming stored work. Each round is committed to the
    store as soon as it completes, so an interruption loses at most the round in flight. The complete measurement
    is tagged `label` (when given), then profiled if `options.profile` asks and it has no stored profile yet;
    `notify` hears why a profile could not be taken."""
    info = device.device_info()
    runtime = device.runtime_version()
    flags = device.settings.flags()
    key = measurement_key(model.sha256, info["fingerprint"], runtime, flags)
    if not options.fresh and (done := store.find(key)) is not None and done.summary is not None:
        if label is not None:
            store.tag(done.id, label)
        profile = ProfileRun.from_dict(done.profile) if done.profile is not None else None
        if options.profile and profile is None:
            profile = _profile(device, model, store, done.id, notify)
        return MeasurementResult(str(model.path), model.sha256, info, runtime, flags,
                                 MeasurementSummary.from_dict(done.summary), True, label, profile)
    mid = store.start(key, model_sha256=model.sha256, model_name=model.path.name, device=info,
                      runtime=runtime, flags=flags)
    stored = store.get(mid)
    samples, rounds = list(stored.samples), list(stored.rounds)
    while _wants_more(samples, options):
        r = device.run_round(model, len(samples))
        store.add_round(mid, [r.latency_ms], r.info())
        samples.append(r.latency_ms)
        rounds.append(r.info())
    summary = summarize_rounds(rounds, samples, device.runtime_info(), flags["runs"], options.until_stable_pct,
                               model_bytes=model.size)
    store.finish(mid, summary.to_dict())
    if label is not None:
        store.tag(mid, label)
    profile = _profile(device, model, store, mid, notify) if options.profile else None
    return MeasurementResult(str(model.path), model.sha256, info, runtime, flags, summary, False, label, profile)


def _profile(device: Device, model: LocalModel, store: ResultsStore, measurement_id: int, notify: Notify | None
             ) -> ProfileRun | None:
    """One profiling run of `model`, stored as the measurement's profile as soon as it completes; None (and a
    notice) when the device cannot profile or the run failed: the timed measurement stands either way."""
    say = notify or (lambda _message: None)
    try:
        run = device.run_profile(model)
    except DeviceGone:
        raise
    except FarmError as e:
        say(one_line(f"{device.name}: {model.path.name}: the profiling run failed, no profile stored ({e})"))
        return None
    if run is None:
        say(device.no_profile_reason())
        return None
    store.set_profile(measurement_id, run.to_dict())
    return run


def _wants_more(samples: list[float], options: MeasureOptions) -> bool:
    if len(samples) < options.rounds:
        return True
    return options.until_stable_pct is not None and len(samples) < options.max_rounds \
        and not is_stable(samples, options.until_stable_pct)
