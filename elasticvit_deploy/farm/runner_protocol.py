"""The contract with `android_runner/runner.sh`: the argv the host sends and the "EVD ..." lines it parses.

The argv is a list; it reaches the device shell only through `shlex.quote` (adbutils joins lists that way), and
every value in it is validated here first, so no serial, path, file name or flag can inject shell syntax. What
benchmark_model printed between a round's `begin` and `end` is read by benchmark_output.py, which knows every
family of the tool; a profiling run's op tables by profile_output.py (`ProfileRun`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import BadInput, OperationFailed, one_line, shorten
from .adb import device_path
from .benchmark_output import BenchmarkRun, ToolMemory, parse_benchmark_output
from .benchmark_tool import DELEGATES
from .profile_output import ProfileRun, parse_op_profile

DEVICE_DIR = "/data/local/tmp/elasticvit-deploy"
RUNNER_PATH = f"{DEVICE_DIR}/runner.sh"
BENCHMARK_PATH = f"{DEVICE_DIR}/benchmark_model"
MODELS_DIR = f"{DEVICE_DIR}/models"
RUNNER_VERSION = 2
MAX_SECS = 3600  # benchmark_model's --max_secs per loop: its 150 s default silently cuts slow models short
COOL_STATES = ("cooled", "timeout", "unknown", "off")
SENSORS = ("zone", "battery", "none")
DEFAULT_ROUNDS = 3   # benchmark_model runs per measurement; each run's mean is one sample of the statistics
DEFAULT_THREADS = 1  # CPU threads on a device whose devices.toml entry names none

_HEX_MASK = re.compile(r"[0-9a-fA-F]{1,16}")
_TOOL_FLAG = re.compile(r"--[a-z][a-z0-9_]*(=[A-Za-z0-9._/:,+-]*)?")
_KV = re.compile(r"(\w+)=(\S*)")
_FREQ = re.compile(r"(\d+):(\d+)")
_WORDS = {"state": COOL_STATES, "sensor": SENSORS}


class RunnerOutputError(OperationFailed):
    """The runner's output could not be understood (garbled, truncated, or an error the runner reported)."""

    def __init__(self, message: str, code: str = "garbled"):
        super().__init__(message)
        self.code = code


class SettingsError(BadInput):
    """A measurement setting out of range: a count below its minimum, a core mask that is not hex, a delegate we
    do not know."""


@dataclass(frozen=True)
class RunnerSettings:
    """How each round runs benchmark_model. The one place the measurement defaults live: commands take their
    option defaults from here and construct settings with only the fields they override."""

    warmup: int = 10
    runs: int = 50
    threads: int | None = None     # None: the device's default (devices.toml `threads`, else DEFAULT_THREADS)
    cores: str | None = None       # hex mask, e.g. "70"; "auto" = the phone's big cluster (set at prepare)
    delegate: str = "xnnpack"
    cool_below_mc: int | None = 42000
    cool_timeout_s: int = 60

    def validate(self) -> None:
        """SettingsError naming the first setting out of range."""
        for name in ("warmup", "runs", "threads", "cool_timeout_s"):
            value = getattr(self, name)
            if name == "threads" and value is None:
                continue
            least = 1 if name in ("runs", "threads") else 0
            if not isinstance(value, int) or value < least:
                raise SettingsError(f"{name} must be an integer >= {least}, got {shorten(value)}")
        if self.cores is not None and self.cores != "auto" and not _HEX_MASK.fullmatch(self.cores):
            raise SettingsError(f"core mask must be hex digits (e.g. f0), got {shorten(self.cores)}")
        if self.delegate not in DELEGATES:
            raise SettingsError(f"delegate must be one of {', '.join(DELEGATES)}, got {shorten(self.delegate)}")

    def with_device_threads(self, device_threads: int | None) -> RunnerSettings:
        """These settings with `threads` settled for a device: as given, else the device's own default
        (`device_threads`, from devices.toml), else DEFAULT_THREADS."""
        if self.threads is not None:
            return self
        return replace(self, threads=device_threads or DEFAULT_THREADS)

    def flags(self) -> dict[str, Any]:
        """What determines the numbers (part of the results-store key); `threads` must be settled first."""
        if self.threads is None:
            raise ValueError("settle threads for the device (RunnerSettings.with_device_threads) first")
        return {"warmup": self.warmup, "runs": self.runs, "threads": self.threads, "cores": self.cores,
                "delegate": self.delegate}


def runner_argv(model_path: str, tool_flags: list[str], settings: RunnerSettings, rounds: int,
                temp_path: str | None, temp_scale: int) -> list[str]:
    """The runner's command line: `rounds` runs of benchmark_model with `tool_flags` (its own flags, built for the
    phone's tool by benchmark_tool.BenchmarkTool.args) on the model at `model_path`."""
    settings.validate()
    if settings.cores == "auto":
        raise ValueError("resolve the 'auto' core mask against the phone before building the runner argv")
    for flag in tool_flags:
        if not _TOOL_FLAG.fullmatch(flag):
            raise ValueError(f"unsafe benchmark_model flag {shorten(flag)}")
    argv = ["sh", RUNNER_PATH, "--bench", BENCHMARK_PATH, "--model", device_path(model_path),
            "--rounds", str(int(rounds)), "--cool-timeout", str(settings.cool_timeout_s)]
    if settings.cores:
        argv += ["--cores", settings.cores]
    if temp_path:
        argv += ["--temp-path", device_path(temp_path), "--temp-scale", str(int(temp_scale))]
        if settings.cool_below_mc is not None:
            argv += ["--cool-below", str(int(settings.cool_below_mc))]
    return [*argv, "--", *tool_flags]


@dataclass
class RoundResult:
    """One benchmark_model invocation: `avg_us` over `count` timed runs, plus the runner's thermal records;
    `simulated` is the timing basis a simulated phone's tool names (None for a real tool)."""

    round: int
    count: int = 0
    avg_us: float = 0.0
    min_us: float = 0.0
    max_us: float = 0.0
    std_us: float = 0.0
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    exit_code: int | None = None
    cool: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)  # what the tool (and taskset) printed in this round
    simulated: str | None = None
    memory: ToolMemory | None = None  # the tool's memory footprint lines, if it printed any

    @property
    def latency_ms(self) -> float:
        return self.avg_us / 1000.0

    def take(self, run: BenchmarkRun) -> None:
        """Fill in the timings benchmark_output found in this round's output."""
        self.count = run.count
        self.avg_us = run.avg_us or 0.0
        self.min_us = run.min_us if run.min_us is not None else self.avg_us
        self.max_us = run.max_us if run.max_us is not None else self.avg_us
        self.std_us = run.std_us or 0.0
        self.init_us, self.first_us, self.warmup_avg_us = run.init_us, run.first_us, run.warmup_avg_us
        self.simulated = run.simulated
        self.memory = run.memory

    def info(self) -> dict[str, Any]:
        """The round's record (`simulated` only when set, `memory_mb`, the ToolMemory figures, only when the tool
        printed some)."""
        out: dict[str, Any] = {
            "count": self.count, "avg_us": self.avg_us, "min_us": self.min_us, "max_us": self.max_us,
            "std_us": self.std_us, "init_us": self.init_us, "first_us": self.first_us,
            "warmup_avg_us": self.warmup_avg_us, "cool": self.cool, "before": self.before, "after": self.after}
        if self.simulated is not None:
            out["simulated"] = self.simulated
        if self.memory is not None and (memory := self.memory.to_dict()):
            out["memory_mb"] = memory
        return out


def profile_run(r: RoundResult, tool: str) -> ProfileRun:
    """What a profiling run printed (a round parsed from the runner's output) read as a profile."""
    return ProfileRun(parse_op_profile("\n".join(r.output)), r.memory, r.simulated, tool)


@dataclass
class RunnerOutput:
    root: bool
    rounds: list[RoundResult]
    version: str | None    # the tool's version, where its output prints one
    family: str | None     # the tool family benchmark_output recognised
    knobs: list[str]


def _fields(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _KV.findall(text):
        if key == "freqs_khz":
            # by sysfs cpu number: a list indexed by core, 0 where a core reported nothing (offline)
            pairs = {int(c): int(k) for c, k in _FREQ.findall(value)}
            out[key] = [pairs.get(c, 0) for c in range(max(pairs) + 1)] if pairs else []
        elif key in _WORDS:
            if value not in _WORDS[key]:
                raise RunnerOutputError(f"bad value {key}={shorten(value)} in runner output")
            out[key] = value
        else:
            try:
                out[key] = int(value)
            except ValueError:
                raise RunnerOutputError(f"bad value {key}={shorten(value)} in runner output") from None
    return out


def parse_runner_output(text: str) -> RunnerOutput:
    """Parse the runner's stdout. Raises RunnerOutputError when the runner reported an error or its output is
    incomplete; a round whose tool failed or printed no timings is returned with its exit code and output
    (see `round_problem`)."""
    root, done, version, family = None, False, None, None
    knobs: list[str] = []
    rounds: dict[int, RoundResult] = {}
    current: RoundResult | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("EVD "):
            kind, _, rest = line[4:].partition(" ")
            if kind == "error":
                code, _, message = rest.partition(" ")
                raise RunnerOutputError(message or code, code)
            if kind == "version":
                if rest.strip() != str(RUNNER_VERSION):
                    raise RunnerOutputError(f"runner version {shorten(rest.strip())} on the phone, expected "
                                            f"{RUNNER_VERSION}")
            elif kind == "root":
                root = rest.strip() == "1"
            elif kind == "knob":
                knobs.append(rest.strip())
            elif kind == "done":
                done = True
            elif kind in ("cool", "before", "after", "begin", "end"):
                values = _fields(rest)
                if "round" not in values:
                    raise RunnerOutputError(f"runner line without a round: {shorten(line)}")
                r = rounds.setdefault(values["round"], RoundResult(values["round"]))
                if kind == "cool":
                    r.cool = {k: v for k, v in values.items() if k != "round"}
                elif kind in ("before", "after"):
                    setattr(r, kind, {k: v for k, v in values.items() if k != "round"})
                elif kind == "begin":
                    current = r
                else:
                    r.exit_code = values.get("exit")
                    run = parse_benchmark_output("\n".join(r.output))
                    r.take(run)
                    version, family = version or run.version, family or run.family
                    current = None
            continue
        if current is not None:
            current.output.append(raw)
    if root is None or not done:
        raise RunnerOutputError("runner output is incomplete or garbled (no 'EVD done')")
    return RunnerOutput(root, [rounds[k] for k in sorted(rounds)], version, family, knobs)


def round_problem(r: RoundResult) -> str | None:
    """Why a round gave no usable timing, in one line (the tool's own errors, else its last words), or None."""
    if r.exit_code == 0 and r.count > 0:
        return None
    run = parse_benchmark_output("\n".join(r.output))
    said = " | ".join(run.errors) or " | ".join(ln.strip() for ln in r.output[-2:] if ln.strip())
    what = (f"benchmark_model failed in round {r.round} (exit {r.exit_code})" if r.exit_code != 0
            else f"no timings from benchmark_model in round {r.round}")
    return f"{what}: {one_line(said, 200)}" if said else what
