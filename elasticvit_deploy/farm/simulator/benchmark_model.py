"""Simulated LiteRT benchmark_model, run on the host for a simulated phone by its benchmark service
(benchmark_model.cli() with the tool's FLAGS, the model open as EVD_SIM_MODEL).

It takes the real tool's flags, really loads the .tflite with the LiteRT interpreter and times a few invocations
on the host, then simulates every warm-up and timed run as
    host latency x speed factor / CPU frequency fraction x lognormal noise
where the frequency fraction comes from the fastest core of the taskset mask and from thermal throttling. Each run
sleeps for its simulated duration x time_scale, and the phone heats while the tool is busy (thermal.py). The
output follows the real tool's format (INFO/WARN lines on stdout, ERROR lines on stderr).

A simulator for trying the workflow and for CI: the numbers are plausible, not predictions for any phone.
--num_threads is accepted and echoed, but one thread is simulated. At a small time_scale the tool's own host
overhead (process start, about 0.05 ms a run) is longer than the scaled runs and counts as busy time, so phones
heat faster than their printed timings alone would imply.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .devicefs import Sensors
from .profiles import PhoneProfile
from .thermal import Thermal, freq_fraction

RUNTIME_VERSION = f"{importlib.metadata.version('ai-edge-litert')}-sim"
HOST_TIMING_RUNS = 5       # host invocations timed (after one untimed) to estimate the host latency
FIRST_RUN_FACTOR = 1.3     # the first inference pays for cold caches and lazy initialisation
SENSOR_REFRESH_S = 0.05    # host seconds between sensor file refreshes while busy


class FlagError(Exception):
    """Bad command line: reported like the real tool (ERROR line, exit 1)."""


@dataclass
class Flags:
    """The subset of benchmark_model's flags the simulation uses, with the real tool's defaults."""

    graph: str = ""
    num_threads: int = -1
    warmup_runs: int = 1
    warmup_min_secs: float = 0.5
    num_runs: int = 50
    min_secs: float = 1.0
    max_secs: float = 150.0
    use_xnnpack: bool | None = None
    use_gpu: bool = False
    use_nnapi: bool = False
    given: list[str] = field(default_factory=list)    # names of the flags given
    unknown: list[str] = field(default_factory=list)  # unconsumed flags (the real tool warns and goes on)


def _parse_bool(value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ValueError(value)


# flag name -> (parser, label the real tool logs it with), in the order the real tool logs them
_FLAGS: dict[str, tuple[Callable[[str], object], str]] = {
    "num_runs": (int, "Min num runs"),
    "min_secs": (float, "Min runs duration (seconds)"),
    "max_secs": (float, "Max runs duration (seconds)"),
    "num_threads": (int, "Num threads"),
    "warmup_runs": (int, "Min warmup runs"),
    "warmup_min_secs": (float, "Min warmup runs duration (seconds)"),
    "graph": (str, "Graph"),
    "use_xnnpack": (_parse_bool, "Use xnnpack"),
    "use_gpu": (_parse_bool, "Use gpu"),
    "use_nnapi": (_parse_bool, "Use NNAPI"),
}


def parse_flags(argv: Sequence[str]) -> Flags:
    flags = Flags()
    for arg in argv:
        name, eq, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not eq or name not in _FLAGS:
            flags.unknown.append(arg)
            continue
        try:
            setattr(flags, name, _FLAGS[name][0](value))
        except ValueError:
            raise FlagError(f"Invalid value for --{name}: '{value}'") from None
        flags.given.append(name)
    return flags


@dataclass
class RunStats:
    """The real tool's Stat<int64_t>: integer microseconds, population std, avg printed with 6 digits."""

    times_us: list[int]

    def line(self) -> str:
        t = self.times_us
        if not t:
            return "count=0"
        if min(t) == max(t):
            return f"count={len(t)} curr={t[-1]}" + ("(all same)" if len(t) > 1 else "")
        avg = sum(t) / len(t)
        std = int(math.sqrt(max(sum(x * x for x in t) / len(t) - avg * avg, 0.0)))
        return f"count={len(t)} first={t[0]} curr={t[-1]} min={min(t)} max={max(t)} avg={_g(avg)} std={std}"

    def avg(self) -> str:
        return _g(sum(self.times_us) / len(self.times_us)) if self.times_us else "nan"


def _g(x: float) -> str:
    """A double as C++ streams print it by default."""
    return f"{x:g}"


class SimulatedPhone:
    """The phone side of the simulation: speed, noise, thermal state and sleeping in scaled time."""

    def __init__(self, state_dir: Path, cores_mask: int | None) -> None:
        settings = json.loads((state_dir / "phone.json").read_text(encoding="utf-8"))
        fields = settings["profile"]
        fields["core_max_freqs_khz"] = tuple(fields["core_max_freqs_khz"])
        self.profile = PhoneProfile(**fields)
        self.time_scale = float(settings["time_scale"])
        self.host_timing_cache = Path(settings["host_timing_cache"])
        self.thermal = Thermal(state_dir / "thermal", self.profile, self.time_scale)
        self.sensors = Sensors(Path(settings["sandbox"]), self.thermal)
        freqs = self.profile.core_max_freqs_khz
        allowed = [f for i, f in enumerate(freqs) if cores_mask is None or cores_mask >> i & 1] or list(freqs)
        self.cluster_fraction = max(allowed) / max(freqs)
        self.sigma = math.sqrt(math.log(1 + self.profile.noise_cv ** 2))
        self.rng = random.Random()
        self._deadline = time.monotonic()
        self._refreshed = 0.0

    def duration_s(self, host_s: float) -> float:
        """Simulated duration of work that takes host_s on the host, at the current temperature."""
        fraction = self.cluster_fraction * freq_fraction(self.profile, self.thermal.current())
        noise = self.rng.lognormvariate(-self.sigma ** 2 / 2, self.sigma)
        return host_s * self.profile.speed_factor / fraction * noise

    def start_clock(self) -> None:
        """Start a stretch of back-to-back simulated work (see spend)."""
        self._deadline = time.monotonic()

    def spend(self, duration_s: float) -> None:
        """Let duration_s of simulated time pass, keeping the sensor files current. Sleeps until the scaled sum of
        the durations since start_clock(), so the host's own overhead is absorbed instead of added."""
        self._deadline += duration_s * self.time_scale
        delay = self._deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if time.monotonic() - self._refreshed > SENSOR_REFRESH_S:
            self.refresh_sensors()

    def refresh_sensors(self) -> None:
        self.sensors.refresh()
        self._refreshed = time.monotonic()


class HostModel:
    """The .tflite loaded in the LiteRT interpreter on the host, with its host timings.

    Timings are measured once per model file (and XNNPACK setting) and cached in `cache_dir`, shared by the phones
    of a farm: host noise then does not move a model's simulated latency from one run or phone to the next."""

    def __init__(self, path: str, use_xnnpack: bool | None, cache_dir: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if use_xnnpack is False else OpResolverType.AUTO
        start = time.perf_counter()
        self.interpreter = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        init_s = time.perf_counter() - start
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        cache = cache_dir / f"{digest}{'-no-xnnpack' if use_xnnpack is False else ''}.json"
        timings = _read_timings(cache)
        if timings is None:
            # one phone measures, the others wait for its figures: phones starting the same model together
            # would otherwise time it while competing for the host's cores, and all get slower
            cache_dir.mkdir(parents=True, exist_ok=True)
            with open(cache.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                timings = _read_timings(cache)
                if timings is None:
                    timings = {"init_s": init_s, "latency_s": self._measure()}
                    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
                    tmp.write_text(json.dumps(timings), encoding="utf-8")
                    os.replace(tmp, cache)
        self.init_s = float(timings["init_s"])
        self.latency_s = float(timings["latency_s"])

    def _measure(self) -> float:
        """Median host latency of one invocation, on random inputs."""
        import numpy as np

        rng = np.random.default_rng(0)
        for detail in self.interpreter.get_input_details():
            dtype, shape = detail["dtype"], detail["shape"]
            data = rng.standard_normal(shape) if np.issubdtype(dtype, np.floating) else np.zeros(shape)
            self.interpreter.set_tensor(detail["index"], data.astype(dtype))
        self.interpreter.invoke()
        times = []
        for _ in range(HOST_TIMING_RUNS):
            start = time.perf_counter()
            self.interpreter.invoke()
            times.append(time.perf_counter() - start)
        return statistics.median(times)


def _read_timings(cache: Path) -> dict[str, float] | None:
    try:
        return json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_phase(phone: SimulatedPhone, host_s: float, min_runs: int, min_secs: float, max_secs: float,
              first_factor: float) -> RunStats:
    """One loop of the real tool: at least min_runs runs and min_secs seconds, stopping after max_secs."""
    print(f"INFO: Running benchmark for at least {min_runs} iterations and at least {_g(min_secs)} seconds but "
          f"terminate if exceeding {_g(max_secs)} seconds.")
    times: list[int] = []
    elapsed = 0.0
    phone.start_clock()
    while (len(times) < min_runs or elapsed < min_secs) and elapsed <= max_secs:
        duration = phone.duration_s(host_s) * (first_factor if not times else 1.0)
        phone.spend(duration)
        elapsed += duration
        times.append(max(int(duration * 1e6), 1))
    phone.refresh_sensors()
    stats = RunStats(times)
    print(f"INFO: {stats.line()}")
    return stats


def error(*lines: str) -> int:
    for line in lines:
        print(f"ERROR: {line}", file=sys.stderr)
    return 1


def main(argv: Sequence[str]) -> int:
    try:
        flags = parse_flags(argv)
    except FlagError as e:
        return error(str(e), "Benchmarking failed.")
    print("INFO: STARTING!")
    print("INFO: Log parameter values verbosely: [0]")
    for name in (n for n in _FLAGS if n in flags.given):
        value = getattr(flags, name)
        shown = int(value) if isinstance(value, bool) else _g(value) if isinstance(value, float) else value
        print(f"INFO: {_FLAGS[name][1]}: [{shown}]")
    print(f"INFO: LiteRT version: {RUNTIME_VERSION}")
    if flags.unknown:
        print(f"WARN: Unconsumed cmdline flags: {' '.join(flags.unknown)}")
    for delegate, used in (("GPU", flags.use_gpu), ("NNAPI", flags.use_nnapi)):
        if used:
            print(f"WARN: {delegate} delegate is not simulated; running on CPU.")
    if not flags.graph:
        return error("Please specify the name of your TF Lite input file with --graph", "Benchmarking failed.")
    state_dir = os.environ.get("EVD_SIM_STATE")
    if not state_dir:
        return error("EVD_SIM_STATE is not set: this benchmark_model only runs on a simulated phone")
    model_path = os.environ.get("EVD_SIM_MODEL")  # the --graph file, opened inside the phone's tree
    if not model_path:
        return error(f"Could not open '{flags.graph}'.", f"Failed to mmap model {flags.graph}", "Benchmarking failed.")
    cores = os.environ.get("EVD_SIM_CORES")
    phone = SimulatedPhone(Path(state_dir), int(cores) if cores else None)
    try:
        model = HostModel(model_path, flags.use_xnnpack, phone.host_timing_cache)
    except ValueError:  # the interpreter could not read the file
        return error("The model is not a valid Flatbuffer buffer", f"Failed to mmap model {flags.graph}",
                     "Benchmarking failed.")
    except RuntimeError as e:  # it read the file but cannot run it (unknown ops, bad shapes, ...)
        return error(str(e).strip(), "Failed to allocate tensors!", "Benchmarking failed.")
    print(f"INFO: Loaded model {flags.graph}")
    print(f"INFO: The input model file size (MB): {_g(os.path.getsize(model_path) / 1e6)}")
    with phone.thermal.busy():
        init_s = phone.duration_s(model.init_s)
        phone.start_clock()
        phone.spend(init_s)
        print(f"INFO: Initialized session in {init_s * 1e3:.3f}ms.")
        warmup = run_phase(phone, model.latency_s, flags.warmup_runs, flags.warmup_min_secs, flags.max_secs,
                           FIRST_RUN_FACTOR)
        timed = run_phase(phone, model.latency_s, flags.num_runs, flags.min_secs, flags.max_secs, 1.0)
    first = warmup.times_us[0] if warmup.times_us else 0
    print(f"INFO: Inference timings in us: Init: {int(init_s * 1e6)}, First inference: {first}, "
          f"Warmup (avg): {warmup.avg()}, Inference (avg): {timed.avg()}")
    return 0


def cli() -> None:
    """Entry point of the tool's process (started by the benchmark service with the tool's arguments)."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    sys.exit(main(sys.argv[1:]))
