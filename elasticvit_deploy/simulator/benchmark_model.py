"""Simulated benchmark_model, run on the host for a simulated phone by its benchmark service (benchmark_model.cli()
with the tool's arguments, the model open as EVD_SIM_MODEL).

It imitates one of three real tools, chosen by the phone's quirks (quirks.py), each from its own sources; the
flags each knows and how it reads them are in tool_flags.py:

``classic`` (default)
    TF Lite 2.x ``tensorflow/lite/tools/benchmark`` as released with TF 2.18 (LiteRT tag v1.1.0,
    ``tflite/tools``): its parameter log, ``INFO:``/``WARN:`` on stdout, ``ERROR:`` on stderr,
    ``tensorflow::Stat`` lines without percentiles (as in the recorded TF 2.18 outputs), ``Inference timings in
    us: ...`` and the memory footprint lines. Unknown flags: ``WARN: Unconsumed cmdline flags: ...``; a bad value
    or ``--help``: ``Failed to parse flag ...``/the flag listing on stderr, ``Benchmarking failed.``, exit 1.
    ``--report_peak_memory_footprint=true`` adds ``Overall peak memory footprint (MB) via periodic monitoring: P``
    and the ``Memory status at the end of exeution:`` (sic) VmRSS lines. ``--enable_op_profiling=true`` (the
    default with the ``op-profiling`` quirk) prints the profiler's tables after those lines: ``Profiling Info for
    Benchmark Initialization:`` (``ModifyGraphWithDelegate`` when XNNPACK is applied, ``AllocateTensors``) and
    ``Operator-wise Profiling Info for Regular Benchmark Runs:``, the timed runs only. With XNNPACK (applied unless
    ``--use_xnnpack=false``) its operators are the rows, ``Delegate/<XNNPACK operator>:<i>``, as the TF 2.18
    delegate reports them, and the ops it left are builtin rows; without it every op is a builtin row.
``litert2``
    LiteRT 2.x ``litert/tools/benchmark_litert_model`` (tag v2.2.0): ``--use_xnnpack``/``--use_nnapi`` are
    unconsumed, so a warning, only the shared loop flags logged, stat lines with ``p5= median= p95=``, then the
    ``BENCHMARK RESULTS`` block in ms on stderr, tagged ``[benchmark_litert_model.h:LINE]`` with the lines of that
    release (``Peak memory: P MB`` with ``--report_peak_memory_footprint=true``). ``--use_profiler=true`` prints
    the profiler's tables after that block (line 192): every run, warm-ups included, each with its
    ``LiteRT::Run[buffer registration]`` and ``LiteRT::Run[Buffer sync]`` rows, the first also with
    ``AllocateTensors``. ``--help`` prints the vendor flag header (this build lists no vendor flags), the flag
    listing, exit 0.
``tf1``
    TF Lite 1.12 ``tensorflow/contrib/lite/tools/benchmark``: flags it does not know are silently ignored (no
    time limits: exactly the runs asked), no log prefixes, ``Average inference timings in us: Warmup: W, Init: I,
    no stats: M``; a bad value or ``--help`` prints the listing and exits 0; a model it cannot load aborts
    (exit 134).

All three run ``(run < min_runs || now < min_finish) && now <= max_finish`` with ``max_finish = start +
max_secs`` (default 150 s, so fewer runs than asked when exceeded; a run that passes it is finished), and print
an empty warm-up as the real ``Stat`` does (``count=0``, average 0).

The timings are simulated, and every run prints one line of the simulator's own (real tools never print it)
naming what they rest on, in the tool's log style: ``INFO: Simulator timing: <basis>`` (classic), ``INFO:
[simulator:0] Simulator timing: <basis>`` on stderr (litert2), ``Simulator timing: <basis>`` (tf1); the farm reads
it into its results (farm/benchmark_output.py), so they stay marked simulated. On a twin (a profile with
``tables=...``, twin.py) a model carrying an ElasticViT arch or block takes what the phone's nn-Meter table says,
with no host timing at all: each run takes (table ms + the profile's invoke_overhead_us) / CPU frequency fraction x
lognormal noise, basis ``table <phone>``. The table knows blocks measured alone on the phone, summed, so the twin
knows that and no more: no layout, fusion or effects between blocks that the table lacks. Any other model, or a
twin whose table is not installed, falls back on host-scaled timing, basis ``host-scaled (<why>)``: the .tflite is
timed on the host with the LiteRT interpreter and a run takes host latency x speed_factor / CPU frequency fraction
x lognormal noise. The frequency fraction is the top frequency of the fastest core of the taskset mask over that
of the phone's fastest cluster of >= 2 cores (where nn-Meter measured the tables; `PhoneProfile.reference_khz`),
times thermal throttling; init takes the host's load
time x speed_factor on both paths. Each run sleeps for its simulated duration x time_scale and the phone heats
while the tool is busy (thermal.py). GPU, NNAPI and NPU delegates are announced as the real tools do but run at
CPU speed. --num_threads is accepted and echoed, but one thread is simulated. A simulator for trying the workflow
and for CI: a twin's numbers are its table's, the fallback's are plausible, neither is a measurement.

Op profiles are simulated, not measured: their nodes are the model's real ops (as the host's interpreter, with
XNNPACK where the tool applies it, has them), and each profiled run's simulated time is split over the nodes by an
estimate of their work from the model's tensors (multiply-accumulates of convolutions, fully connected and batch
matmul ops, elements for the rest), in whole microseconds summing to the run's time (op_profile.py); the tables
are tsl's ``StatsCalculator`` (tool_stats.py). The init rows, LiteRT 2's buffer rows, the memory each reports and
the peak footprint (the overall one plus what the tool keeps resident) are assumed round shares, not measured.
Profiling is printed after the timed runs and takes no simulated time: it never changes the timings.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .devicefs import Sensors
from .op_profile import ProfiledNode, activation_bytes, profiled_nodes, split_us
from .profiles import PhoneProfile
from .thermal import Thermal, freq_fraction
from .tool_flags import (
    ALWAYS_LOGGED,
    CLASSIC_LABELS,
    CLASSIC_OWN,
    LITERT2_OWN,
    LITERT_VENDOR_PREFIXES,
    LOOP_FLAGS,
    LOOP_LABELS,
    NNAPI_DETAILS,
    PROVIDER_LABELS,
    PROVIDERS,
    TF1_FLAGS,
    TF1_LABELS,
    Flag,
    Parsed,
    cpp_double,
    parse_modern,
    parse_tf1,
    shown,
    usage_modern,
    usage_tf1,
)
from .tool_stats import ProfileEvent, Stat, StatsCalculator
from .twin import cached_twin_timing

HOST_TIMING_RUNS = 5       # host invocations timed (after one untimed) to estimate the host latency
FIRST_RUN_FACTOR = 1.3     # the first inference pays for cold caches and lazy initialisation
SENSOR_REFRESH_S = 0.05    # host seconds between sensor file refreshes while busy
BACKGROUND_LOAD_SHARE = 0.25            # background-load quirk: share of tool runs another app competes with ...
BACKGROUND_LOAD_SLOWDOWN = (1.1, 1.6)   # ... slowing the whole run by a factor drawn from this range (assumed)
ABORT_EXIT = 134           # a shell's status for a process killed by SIGABRT (TFLITE_LOG(FATAL))
MEMORY_CHECK_INTERVAL_MS = 50  # benchmark_model.cc kMemoryCheckIntervalMs
# simulated, assumed round numbers: what the tool itself keeps resident (its binary and libraries file-backed),
# the shares of init that applying XNNPACK and allocating the tensors take, and the time LiteRT 2 spends on
# registering and syncing a run's buffers (each)
TOOL_RESIDENT_MB = 4.0
TOOL_FILE_MB = 3
DELEGATE_SHARE = 0.4
ALLOCATE_SHARE = 0.1
LITERT_BUFFER_US = 15.0
LITERT_BUFFER_SHARE = 0.03
# litert/tools/benchmark_litert_model.h at v2.2.0: the line each LITERT_LOG of the results block reports
_LITERT_TAG = "benchmark_litert_model.h"
_LITERT_LOAD_TAG = "benchmark_litert_model.cc:271"
_SIMULATOR_TAG = "simulator:0"  # the tag of the simulator's own line in the litert2 tool's log style
_DEFAULT_SIGNATURE = "<placeholder signature>"  # litert/cc/internal/litert_consts.h kDefaultSignatureKey


# --- the simulated phone -------------------------------------------------------------------------------------

class SimulatedPhone:
    """The phone side of the simulation: speed, noise, thermal state and sleeping in scaled time."""

    def __init__(self, state_dir: Path, settings: dict, cores_mask: int | None) -> None:
        fields = dict(settings["profile"])
        fields["core_max_freqs_khz"] = tuple(fields["core_max_freqs_khz"])
        self.profile = PhoneProfile(**fields)
        self.time_scale = float(settings["time_scale"])
        self.host_timing_cache = Path(settings["host_timing_cache"])
        self.table = Path(settings["table"]) if settings.get("table") else None
        self.thermal = Thermal(state_dir / "thermal", self.profile, self.time_scale)
        self.sensors = Sensors(Path(settings["sandbox"]), self.thermal, frozenset(settings.get("quirks", ())))
        freqs = self.profile.core_max_freqs_khz
        allowed = [f for i, f in enumerate(freqs) if cores_mask is None or cores_mask >> i & 1] or list(freqs)
        self.cluster_fraction = max(allowed) / self.profile.reference_khz
        self.sigma = math.sqrt(math.log(1 + self.profile.noise_cv ** 2))
        self.rng = random.Random()
        quirks = frozenset(settings.get("quirks", ()))
        loaded = "background-load" in quirks and self.rng.random() < BACKGROUND_LOAD_SHARE
        self.load = self.rng.uniform(*BACKGROUND_LOAD_SLOWDOWN) if loaded else 1.0  # this tool run's, throughout
        self._deadline = time.monotonic()
        self._refreshed = 0.0

    def timing(self, model: HostModel) -> Timing:
        """How long one inference of `model` takes on the reference cluster at full frequency, and what that rests
        on: the twin's table (plus the per-invoke overhead), else the host's latency x speed factor."""
        twin = cached_twin_timing(model.data, model.digest, self.profile, self.table, self.host_timing_cache)
        if twin.ms is not None:
            return Timing(twin.ms / 1e3 + self.profile.invoke_overhead_us / 1e6, twin.basis)
        return Timing(model.latency_s * self.profile.speed_factor, twin.basis)

    def duration_s(self, full_speed_s: float) -> float:
        """Simulated duration of work that takes full_speed_s on the reference cluster at full frequency, at the
        current temperature and core mask, with noise."""
        fraction = self.cluster_fraction * freq_fraction(self.profile, self.thermal.current())
        noise = self.rng.lognormvariate(-self.sigma ** 2 / 2, self.sigma)
        return full_speed_s / fraction * noise * self.load

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


@dataclass(frozen=True)
class Timing:
    """One inference at full speed (seconds) and the timing basis the tool's simulator line names."""

    inference_s: float
    basis: str


class HostModel:
    """The .tflite loaded in the LiteRT interpreter on the host, with its host timings.

    Timings are measured once per model file (and XNNPACK setting) and cached in `cache_dir`, shared by the phones
    of a farm: host noise then does not move a model's simulated latency from one run or phone to the next. The
    load time is kept on the first load; the latency is measured only when asked for (`latency_s`: the fallback of
    a twin, see module docstring)."""

    def __init__(self, path: str, use_xnnpack: bool, cache_dir: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        start = time.perf_counter()
        with _quiet_stderr():  # the host runtime's own log lines are not the phone's tool's
            self.interpreter = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        load_s = time.perf_counter() - start
        self.size_bytes = os.path.getsize(path)
        self.input_bytes = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
                               for d in self.interpreter.get_input_details())
        self.data = Path(path).read_bytes()
        self.digest = hashlib.sha256(self.data).hexdigest()
        self._cache_dir = cache_dir
        self._cache = cache_dir / f"{self.digest}{'' if use_xnnpack else '-no-xnnpack'}.json"
        self.init_s = self._timing("init_s", lambda: load_s)

    @functools.cached_property
    def latency_s(self) -> float:
        """Median host latency of one invocation (measured on first use, then cached)."""
        return self._timing("latency_s", self._measure)

    def _timing(self, key: str, measure: Callable[[], float]) -> float:
        """The cached timing `key`, measured and added to the cache if missing."""
        timings = _read_timings(self._cache) or {}
        if key not in timings:
            # one phone measures, the others wait for its figures: phones starting the same model together
            # would otherwise time it while competing for the host's cores, and all get slower
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            with open(self._cache.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                timings = _read_timings(self._cache) or {}
                if key not in timings:
                    timings[key] = measure()
                    tmp = self._cache.with_name(f".{self._cache.name}.{os.getpid()}")
                    tmp.write_text(json.dumps(timings), encoding="utf-8")
                    os.replace(tmp, self._cache)
        return float(timings[key])

    def _measure(self) -> float:
        """Median host latency of one invocation, on random inputs."""
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

    def profiled_nodes(self) -> list[ProfiledNode]:
        """The nodes the op profiler reports in each run, in execution order (op_profile.py)."""
        return profiled_nodes(self.interpreter._get_ops_details(), self.interpreter.get_tensor_details())

    def arena_kb(self) -> int:
        """What allocating the model's tensors takes, in KB: the tensors its ops write."""
        details = self.interpreter._get_ops_details(), self.interpreter.get_tensor_details()
        return round(activation_bytes(*details) / 1024)

    def signature(self) -> str:
        keys = list(self.interpreter.get_signature_list())
        return keys[0] if keys else _DEFAULT_SIGNATURE


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _read_timings(cache: Path) -> dict[str, float] | None:
    try:
        return json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class ModelError(Exception):
    """The model could not be loaded: what kind of failure (missing, invalid, unsupported) and the runtime's text."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def load_model(use_xnnpack: bool, cache_dir: Path) -> HostModel:
    """The --graph file the benchmark service opened (EVD_SIM_MODEL), in the host interpreter."""
    path = os.environ.get("EVD_SIM_MODEL")
    if not path:
        raise ModelError("missing")
    try:
        return HostModel(path, use_xnnpack, cache_dir)
    except ValueError as e:  # the interpreter could not read the file
        raise ModelError("invalid", str(e)) from None
    except RuntimeError as e:  # it read the file but cannot run it (unknown ops, bad shapes, ...)
        raise ModelError("unsupported", str(e).strip()) from None


# --- the benchmark loop --------------------------------------------------------------------------------------

def run_loop(phone: SimulatedPhone, inference_s: float, min_runs: int, min_secs: float | None,
             max_secs: float | None, first_factor: float) -> Stat:
    """BenchmarkModel::Run: at least min_runs runs and min_secs seconds, no run started after max_secs (both as
    float32 seconds times 1e6, truncated to microseconds); TF Lite 1.12 (None, None) does exactly min_runs.
    `inference_s` is one run at full speed (SimulatedPhone.timing)."""
    times: list[int] = []
    elapsed_us = 0.0
    min_us = int(np.float32(min_secs) * np.float32(1e6)) if min_secs is not None else None
    max_us = int(np.float32(max_secs) * np.float32(1e6)) if max_secs is not None else None
    phone.start_clock()
    while (len(times) < min_runs or (min_us is not None and elapsed_us < min_us)) and (
            max_us is None or elapsed_us <= max_us):
        duration = phone.duration_s(inference_s) * (first_factor if not times else 1.0)
        phone.spend(duration)
        elapsed_us += duration * 1e6
        times.append(max(int(duration * 1e6), 1))
    phone.refresh_sensors()
    return Stat(times)


@dataclass
class Run:
    """What one simulated benchmark produced."""

    init_us: int
    warmup: Stat
    timed: Stat


def simulate(phone: SimulatedPhone, model: HostModel, warmup: tuple[int, float | None], timed: tuple[int, float | None],
             max_secs: float | None, announce: Callable[[int, float | None], None],
             report: Callable[[Stat], None], after_init: Callable[[int], None],
             note: Callable[[str], None]) -> Run:
    """Init, warm-up and timed runs with the phone busy; `note` prints the simulator's timing line, `announce` and
    `report` each loop's lines."""
    timing = phone.timing(model)
    note(f"Simulator timing: {timing.basis}")
    with phone.thermal.busy():
        init_s = phone.duration_s(model.init_s * phone.profile.speed_factor)
        phone.start_clock()
        phone.spend(init_s)
        init_us = int(init_s * 1e6)
        after_init(init_us)
        stats = []
        for (runs, min_secs), factor in ((warmup, FIRST_RUN_FACTOR), (timed, 1.0)):
            announce(runs, min_secs)
            stat = run_loop(phone, timing.inference_s, runs, min_secs, max_secs, factor)
            report(stat)
            stats.append(stat)
    phone.refresh_sensors()  # as the now idle phone shows them (the farm's refresher may not see this run end)
    return Run(init_us, stats[0], stats[1])


# --- output --------------------------------------------------------------------------------------------------

def _out(line: str) -> None:
    print(line, flush=True)


def _out_paragraph(line: str) -> None:
    """A line and the empty line the tools print after it."""
    _out(line)
    _out("")


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _block(prefix: str, text: str, stream: Callable[[str], None]) -> None:
    """One log message that spans lines: only its first line carries the prefix, as the real loggers print."""
    for i, line in enumerate(text.split("\n")):
        stream(f"{prefix}{line}" if i == 0 else line)


@dataclass
class Context:
    """What the tool knows about where it runs."""

    argv0: str
    quirks: frozenset[str]
    phone: Callable[[], SimulatedPhone]


def _check_memory_interval(parsed: Parsed) -> None:
    """BenchmarkModel::ValidateParams: with peak memory reporting, an interval <= 0 is warned of and reset."""
    interval = int(parsed["memory_footprint_check_interval_ms"])
    if parsed["report_peak_memory_footprint"] and interval <= 0:
        _out(f"WARN: --memory_footprint_check_interval_ms is set to {interval} (ms), This value is invalid, and it "
             f"will be set to the default value {MEMORY_CHECK_INTERVAL_MS} (ms).")
        parsed.values["memory_footprint_check_interval_ms"] = MEMORY_CHECK_INTERVAL_MS


def _log_params(parsed: Parsed, labels: Sequence[tuple[str, str]], always: frozenset[str] = frozenset()) -> None:
    verbose = bool(parsed.values.get("verbose"))
    for name, label in labels:
        if name in NNAPI_DETAILS and not parsed.values.get("use_nnapi"):
            continue  # NnapiDelegateProvider::LogParams stops after "Use NNAPI" when it is off
        if name in parsed.given or name in always or verbose:
            _out(f"INFO: {label}: [{shown(parsed[name])}]")


def classic_main(argv: Sequence[str], ctx: Context) -> int:
    flags = (*LOOP_FLAGS, *CLASSIC_OWN, *PROVIDERS)
    if "op-profiling" in ctx.quirks:
        flags = tuple(Flag(f.name, f.kind, True, f.usage) if f.name == "enable_op_profiling" else f for f in flags)
    _out("INFO: STARTING!")
    parsed = parse_modern(flags, argv)
    if not parsed.ok or parsed.help:
        for line in parsed.errors:
            _err(f"ERROR: {line}")
        _block("ERROR: ", usage_modern(ctx.argv0, flags), _err)
        _err("ERROR: Benchmarking failed.")
        return 1
    if parsed.unknown:
        _out(f"WARN: Unconsumed cmdline flags: {' '.join(parsed.unknown)}")
    _check_memory_interval(parsed)
    graph = str(parsed["graph"])
    if not graph:
        _err("ERROR: Please specify the name of your TF Lite input file with --graph")
        _err("ERROR: Benchmarking failed.")
        return 1
    _out(f"INFO: Log parameter values verbosely: [{int(bool(parsed['verbose']))}]")
    _log_params(parsed, (*LOOP_LABELS, *CLASSIC_LABELS, *PROVIDER_LABELS), ALWAYS_LOGGED)
    phone = ctx.phone()
    xnnpack = parsed["use_xnnpack"] or "use_xnnpack" not in parsed.given  # applied by default unless turned off
    try:
        model = load_model(bool(xnnpack), phone.host_timing_cache)
    except ModelError as e:
        lines = {"missing": [f"Could not open '{graph}'.", f"Failed to load model {graph}"],
                 "invalid": ["The model is not a valid Flatbuffer buffer", f"Failed to load model {graph}"],
                 "unsupported": [*e.detail.splitlines(), "Failed to allocate tensors!"]}[e.kind]
        for line in [*lines, "Benchmarking failed."]:
            _err(f"ERROR: {line}")
        return 1
    _out(f"INFO: Loaded model {graph}")
    if xnnpack:
        _err("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    for name, flag in (("XNNPACK", "use_xnnpack"), ("GPU", "use_gpu"), ("NNAPI", "use_nnapi")):
        if parsed[flag]:
            if name == "GPU":
                _out("INFO: Created TensorFlow Lite delegate for GPU.")
            _out(f"INFO: {name} delegate created.")
            _out(f"INFO: Explicitly applied {name} delegate, and the model graph will be completely executed by "
                 f"the delegate.")
    _out(f"INFO: The input model file size (MB): {cpp_double(model.size_bytes / 1e6)}")
    run = simulate(phone, model, (int(parsed["warmup_runs"]), float(parsed["warmup_min_secs"])),
                   (int(parsed["num_runs"]), float(parsed["min_secs"])), float(parsed["max_secs"]),
                   announce=lambda runs, secs: _out(
                       f"INFO: Running benchmark for at least {runs} iterations and at least "
                       f"{cpp_double(secs or 0)} seconds but terminate if exceeding "
                       f"{cpp_double(float(parsed['max_secs']))} seconds."),
                   report=lambda stat: _out_paragraph(f"INFO: {stat.line()}"),
                   after_init=lambda us: _out(f"INFO: Initialized session in {cpp_double(us / 1e3)}ms."),
                   note=lambda text: _out(f"INFO: {text}"))
    _out(f"INFO: Inference timings in us: Init: {run.init_us}, First inference: {run.warmup.first}, "
         f"Warmup (avg): {cpp_double(run.warmup.avg)}, Inference (avg): {cpp_double(run.timed.avg)}")
    init_mb, overall_mb = _memory_lines(model)
    _out("INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to "
         "the actual memory footprint of the model at runtime. Take the information at your discretion.")
    _out(f"INFO: Memory footprint delta from the start of the tool (MB): init={cpp_double(init_mb)} "
         f"overall={cpp_double(overall_mb)}")
    if parsed["report_peak_memory_footprint"]:
        peak_mb = _peak_mb(overall_mb)
        rss = int(overall_mb + TOOL_RESIDENT_MB)  # /proc/self/statm pages >> 20
        shared = min(TOOL_FILE_MB, rss)
        for line in (f"Overall peak memory footprint (MB) via periodic monitoring: {cpp_double(peak_mb)}",
                     "Memory status at the end of exeution:", f"- VmRSS              : {rss} MB",
                     f"+ RssAnnon           : {rss - shared} MB", f"+ RssFile + RssShmem : {shared} MB"):
            _out(f"INFO: {line}")
    if parsed["enable_op_profiling"]:
        _block("INFO: ", "Profiling Info for Benchmark Initialization:\n"
               + _classic_init_profile(model, run.init_us, bool(xnnpack)).report() + "\n", _out)
        regular = StatsCalculator()
        nodes = model.profiled_nodes()
        for us in run.timed.times_us:
            regular.add_run(_run_events(nodes, us))
        _block("INFO: ", "Operator-wise Profiling Info for Regular Benchmark Runs:\n" + regular.report() + "\n", _out)
    return 0


def _memory_lines(model: HostModel) -> tuple[float, float]:
    """Simulated footprint in MB (init, overall): the model and its tensors, then its outputs and scratch."""
    init = model.size_bytes / 2**20 * 1.05 + 1.5
    return init, init + 2 * model.input_bytes / 2**20 + 0.75


def _peak_mb(overall_mb: float) -> float:
    """Simulated peak footprint (MB, a whole number of KB as ru_maxrss counts): the overall footprint on top of
    what the tool itself keeps resident."""
    return float(np.float32(math.ceil((overall_mb + TOOL_RESIDENT_MB) * 1024) / 1024))


def _run_events(nodes: Sequence[ProfiledNode], run_us: int) -> list[ProfileEvent]:
    """One run's operator events: its time split over the nodes by their work."""
    return [ProfileEvent(node.name, node.type, us)
            for node, us in zip(nodes, split_us(run_us, [node.work for node in nodes]), strict=True)]


def _classic_init_profile(model: HostModel, init_us: int, xnnpack: bool) -> StatsCalculator:
    """The profiler's events while the classic tool initialises: applying XNNPACK (its weights packed: the
    model's size in memory) and allocating the tensors."""
    events = [ProfileEvent("AllocateTensors/0", "AllocateTensors", max(int(init_us * ALLOCATE_SHARE), 1))]
    if xnnpack:
        events.insert(0, ProfileEvent("ModifyGraphWithDelegate/0", "ModifyGraphWithDelegate",
                                      max(int(init_us * DELEGATE_SHARE), 1), round(model.size_bytes / 1024)))
    init = StatsCalculator()
    init.add_run(events)
    return init


def _litert_profile(model: HostModel, runs_us: Sequence[int]) -> StatsCalculator:
    """The LiteRT 2 profiler over every run (warm-ups included): each run registers its buffers, runs the ops and
    syncs the buffers; the first run also allocates the tensors (what makes it slower)."""
    profile = StatsCalculator()
    nodes = model.profiled_nodes()
    for k, us in enumerate(runs_us):
        buffers = min(LITERT_BUFFER_SHARE, LITERT_BUFFER_US / us)
        allocate = 1 - 1 / FIRST_RUN_FACTOR if k == 0 else 0.0
        registration, allocation, ops_us, sync = split_us(us, [buffers, allocate, 1 - 2 * buffers - allocate,
                                                               buffers])
        events = [ProfileEvent("LiteRT::Run[buffer registration]/0", "LiteRT::Run[buffer registration]",
                               registration)]
        if k == 0:
            events.append(ProfileEvent("AllocateTensors/0", "AllocateTensors", allocation, model.arena_kb()))
        events += _run_events(nodes, ops_us)
        events.append(ProfileEvent("LiteRT::Run[Buffer sync]/0", "LiteRT::Run[Buffer sync]", sync))
        profile.add_run(events)
    return profile


def litert2_main(argv: Sequence[str], ctx: Context) -> int:
    flags = (*LOOP_FLAGS, *LITERT2_OWN)
    wants_help = any(arg in ("--help", "-h") for arg in argv)
    if wants_help:  # benchmark_litert_model_main.cc: the vendor flags this build links (none) before STARTING!
        for line in ("", "  NPU Vendor Flags from LiteRT:", ""):
            _out(line)
    _out("INFO: STARTING!")
    kept = [a for a in argv if a in ("--", "-") or not a.lstrip("-").startswith(LITERT_VENDOR_PREFIXES)]
    parsed = parse_modern(flags, kept)
    if not parsed.ok or parsed.help:
        for line in parsed.errors:
            _err(f"ERROR: {line}")
        _block("ERROR: ", usage_modern(ctx.argv0, flags), _err)
        if wants_help:
            return 0
        _err("ERROR: Benchmarking failed.")
        return 1
    if parsed.unknown:
        _out(f"WARN: Unconsumed cmdline flags: {' '.join(parsed.unknown)}")
    _check_memory_interval(parsed)
    _out(f"INFO: Log parameter values verbosely: [{int(bool(parsed['verbose']))}]")
    _log_params(parsed, LOOP_LABELS)
    graph = str(parsed["graph"])
    _err(f"INFO: [{_LITERT_LOAD_TAG}] Loading model from: {graph}")
    phone = ctx.phone()
    try:
        model = load_model(bool(parsed["use_cpu"]), phone.host_timing_cache)
    except ModelError:
        _err("ERROR: Benchmarking failed.")  # release builds log no detail (ErrorStatusBuilder prints in debug)
        return 1
    if parsed["use_cpu"] and parsed["require_full_delegation"]:
        _err("ERROR: [benchmark_litert_model.cc:100] Requesting full delegation and CPU acceleration are "
             "incompatible.")
        return ABORT_EXIT
    _err("INFO: Initialized TensorFlow Lite runtime.")
    if parsed["use_cpu"]:
        _err("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    _out(f"INFO: The input model file size (MB): {cpp_double(model.size_bytes / 1e6)}")
    max_secs = float(parsed["max_secs"])
    run = simulate(phone, model, (int(parsed["warmup_runs"]), float(parsed["warmup_min_secs"])),
                   (int(parsed["num_runs"]), float(parsed["min_secs"])), max_secs,
                   announce=lambda runs, secs: _out(
                       f"INFO: Running benchmark for at least {runs} iterations and at least "
                       f"{cpp_double(secs or 0)} seconds but terminate if exceeding {cpp_double(max_secs)} seconds."),
                   report=lambda stat: _out_paragraph(f"INFO: {stat.line(percentiles=True)}"),
                   after_init=lambda us: _out(f"INFO: Initialized session in {cpp_double(us / 1e3)}ms."),
                   note=lambda text: _err(f"INFO: [{_SIMULATOR_TAG}] {text}"))
    timed, warm = run.timed, run.warmup

    def log(line: int, text: str) -> None:
        _block(f"INFO: [{_LITERT_TAG}:{line}] ", text, _err)

    log(89, "\n========== BENCHMARK RESULTS ==========")
    log(92, f"Signature name:       {parsed['signature_to_run_for'] or model.signature()}")
    log(94, f"Model initialization: {run.init_us / 1000:.2f} ms")
    log(96, f"Warmup (first):       {warm.first / 1000:.2f} ms")
    log(98, f"Warmup (avg):         {warm.avg / 1000:.2f} ms ({len(warm.times_us)} runs)")
    log(100, f"Inference (avg):      {timed.avg / 1000:.2f} ms ({len(timed.times_us)} runs)")
    if timed.times_us:
        log(104, f"Inference (min):      {min(timed.times_us) / 1000:.2f} ms")
        log(106, f"Inference (max):      {max(timed.times_us) / 1000:.2f} ms")
        log(108, f"Inference (std):      {timed.std() / 1000:.2f}")
        log(115, f"Throughput:           "
                 f"{model.input_bytes * len(timed.times_us) * 1e6 / sum(timed.times_us) / 2**20:.2f} MB/s")
    else:
        log(110, "No inference runs were performed.")
        log(118, "No throughput data available (throughput <= 0).")
    init_mb, overall_mb = _memory_lines(model)
    log(124, "\nMemory Usage:")
    log(126, f"Init footprint:       {init_mb:.2f} MB")
    log(128, f"Overall footprint:    {overall_mb:.2f} MB")
    if parsed["report_peak_memory_footprint"]:
        log(132, f"Peak memory:          {_peak_mb(overall_mb):.2f} MB")
    else:
        log(135, "Peak memory usage not available. (peak_mem_mb <= 0)")
    log(138, "======================================\n")
    if parsed["use_profiler"]:  # the listener's summary provider: the profiler's tables after the results
        log(192, "\n" + _litert_profile(model, [*warm.times_us, *timed.times_us]).report())
    return 0


def tf1_main(argv: Sequence[str], ctx: Context) -> int:
    _out("STARTING!")
    parsed = parse_tf1(TF1_FLAGS, argv)
    if not parsed.ok or parsed.help:
        _err(usage_tf1(ctx.argv0, TF1_FLAGS))
        return 0
    graph = str(parsed["graph"])
    if not graph:
        _err("Please specify the name of your TF Lite input file with --graph")
    for name, label in TF1_LABELS:
        _out(f"{label}: [{shown(parsed[name])}]")
    phone = ctx.phone()
    try:
        model = load_model(False, phone.host_timing_cache)
    except ModelError as e:
        if e.kind == "missing":
            _err(f"Could not open '{graph}'.")
        elif e.kind == "unsupported":
            for line in e.detail.splitlines():
                _err(line)
            _err("Failed to construct interpreter")
            return ABORT_EXIT
        _err(f"Failed to mmap model {graph}")
        return ABORT_EXIT
    _out(f"Loaded model {graph}")
    _out("resolved reporter")
    run = simulate(phone, model, (int(parsed["warmup_runs"]), None), (int(parsed["num_runs"]), None), None,
                   announce=lambda runs, secs: _out(f"Running benchmark for {runs} iterations "),
                   report=lambda stat: _out_paragraph(stat.line(legacy=True)),
                   after_init=lambda us: _out(f"Initialized session in {cpp_double(us / 1e3)}ms"),
                   note=_out)
    _out(f"Average inference timings in us: Warmup: {cpp_double(run.warmup.avg)}, Init: {run.init_us}, "
         f"no stats: {cpp_double(run.timed.avg)}")
    return 0


def family(quirks: frozenset[str]) -> str:
    """Which tool a phone with these quirks has: classic, litert2 or tf1."""
    return "litert2" if "litert2-benchmark" in quirks else "tf1" if "tf1-benchmark" in quirks else "classic"


_MAINS = {"classic": classic_main, "litert2": litert2_main, "tf1": tf1_main}


def main(argv: Sequence[str]) -> int:
    state_dir = os.environ.get("EVD_SIM_STATE")
    if not state_dir:
        _err("ERROR: EVD_SIM_STATE is not set: this benchmark_model only runs on a simulated phone")
        return 1
    settings = json.loads((Path(state_dir) / "phone.json").read_text(encoding="utf-8"))
    quirks = frozenset(settings.get("quirks", ()))
    cores = os.environ.get("EVD_SIM_CORES")
    ctx = Context(argv0=os.environ.get("EVD_SIM_ARGV0") or "benchmark_model", quirks=quirks,
                  phone=lambda: SimulatedPhone(Path(state_dir), settings, int(cores) if cores else None))
    return _MAINS[family(quirks)](argv, ctx)


def cli() -> None:
    """Entry point of the tool's process (started by the benchmark service with the tool's arguments)."""
    if isinstance(sys.stdout, io.TextIOWrapper):  # the process's own stdout always is
        sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main(sys.argv[1:]))
