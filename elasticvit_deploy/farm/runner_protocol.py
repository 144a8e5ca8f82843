"""The contract with `android_runner/runner.sh`: the argv the host sends and the "EVD ..." lines it parses.

The argv is a list; it reaches the device shell only through `shlex.quote` (adbutils joins lists that way), and
every value in it is validated here first, so no serial, path, file name or flag can inject shell syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import shorten
from .adb import device_path

DEVICE_DIR = "/data/local/tmp/elasticvit-deploy"
RUNNER_PATH = f"{DEVICE_DIR}/runner.sh"
BENCHMARK_PATH = f"{DEVICE_DIR}/benchmark_model"
MODELS_DIR = f"{DEVICE_DIR}/models"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")

_HEX_MASK = re.compile(r"[0-9a-fA-F]{1,16}")
_KV = re.compile(r"(\w+)=(\S*)")
_COUNT = re.compile(r"\bcount=(\d+)(.*)")
_SAME = re.compile(r"curr=(\d+)\(all same\)")
_CURR = re.compile(r"curr=(\d+)")
_TIMINGS = re.compile(r"Inference timings in us: Init: (\d+), First inference: (\d+), Warmup \(avg\): ([\d.eE+-]+), "
                      r"Inference \(avg\): ([\d.eE+-]+)")
_VERSION = re.compile(r"(?:LiteRT|TensorFlow Lite|TFLite) version: ?(\S+)", re.IGNORECASE)


class RunnerOutputError(ValueError):
    """The runner's output could not be understood (garbled, truncated, or an error the runner reported)."""

    def __init__(self, message: str, code: str = "garbled"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunnerSettings:
    warmup: int = 10
    runs: int = 50
    threads: int = 1
    cores: str | None = None       # hex mask, e.g. "70"; "auto" = the phone's big cluster (set at prepare)
    delegate: str = "xnnpack"
    cool_below_mc: int | None = 42000
    cool_timeout_s: int = 60

    def validate(self) -> None:
        for name in ("warmup", "runs", "threads", "cool_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name in ("runs", "threads") else 0):
                raise ValueError(f"{name} must be an integer >= {1 if name in ('runs', 'threads') else 0}, "
                                 f"got {shorten(value)}")
        if self.cores is not None and self.cores != "auto" and not _HEX_MASK.fullmatch(self.cores):
            raise ValueError(f"core mask must be hex digits (e.g. f0), got {shorten(self.cores)}")
        if self.delegate not in DELEGATES:
            raise ValueError(f"delegate must be one of {', '.join(DELEGATES)}, got {shorten(self.delegate)}")

    def flags(self) -> dict[str, Any]:
        """What determines the numbers (part of the results-store key)."""
        return {"warmup": self.warmup, "runs": self.runs, "threads": self.threads, "cores": self.cores,
                "delegate": self.delegate}


def runner_argv(model_path: str, settings: RunnerSettings, rounds: int, temp_path: str | None,
                temp_scale: int) -> list[str]:
    settings.validate()
    if settings.cores == "auto":
        raise ValueError("resolve the 'auto' core mask against the phone before building the runner argv")
    argv = ["sh", RUNNER_PATH, "--bench", BENCHMARK_PATH, "--model", device_path(model_path),
            "--warmup", str(settings.warmup), "--runs", str(settings.runs), "--rounds", str(int(rounds)),
            "--threads", str(settings.threads), "--delegate", settings.delegate,
            "--cool-timeout", str(settings.cool_timeout_s)]
    if settings.cores:
        argv += ["--cores", settings.cores]
    if temp_path:
        argv += ["--temp-path", device_path(temp_path), "--temp-scale", str(int(temp_scale))]
        if settings.cool_below_mc is not None:
            argv += ["--cool-below", str(int(settings.cool_below_mc))]
    return argv


@dataclass
class RoundResult:
    """One benchmark_model invocation: `avg_us` over `count` timed runs, plus the runner's thermal records."""

    round: int
    count: int = 0
    avg_us: float = 0.0
    min_us: int = 0
    max_us: int = 0
    std_us: int = 0
    init_us: int | None = None
    first_us: int | None = None
    warmup_avg_us: float | None = None
    exit_code: int | None = None
    cool: dict[str, int] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        return self.avg_us / 1000.0

    def info(self) -> dict[str, Any]:
        return {"count": self.count, "avg_us": self.avg_us, "min_us": self.min_us, "max_us": self.max_us,
                "std_us": self.std_us, "init_us": self.init_us, "first_us": self.first_us,
                "warmup_avg_us": self.warmup_avg_us, "cool": self.cool, "before": self.before, "after": self.after}


@dataclass
class RunnerOutput:
    root: bool
    rounds: list[RoundResult]
    runtime_version: str | None
    knobs: list[str]


def _fields(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _KV.findall(text):
        if key == "freqs_khz":
            out[key] = [int(v) for v in value.split(",") if v.isdigit()] if value != "none" else []
        else:
            try:
                out[key] = int(value)
            except ValueError:
                raise RunnerOutputError(f"bad value {key}={value!r} in runner output") from None
    return out


def _read_stat(r: RoundResult, count: int, rest: str) -> None:
    """tensorflow::Stat output: `count=N first=F curr=C min=A max=B avg=M std=S`; `count=N curr=C(all same)`
    when every run took the same whole microseconds (`count=1 curr=C` for a single run); `count=0`."""
    r.count = count
    if count == 0:
        return
    if (m := _SAME.search(rest)) or ("avg=" not in rest and (m := _CURR.search(rest))):
        r.avg_us = float(m.group(1))
        r.min_us = r.max_us = int(m.group(1))
        r.std_us = 0
        return
    values = dict(_KV.findall(rest))
    try:
        r.avg_us, r.min_us, r.max_us = float(values["avg"]), int(values["min"]), int(values["max"])
        r.std_us = int(float(values.get("std", 0)))
    except (KeyError, ValueError):
        raise RunnerOutputError(f"cannot read benchmark_model statistics {rest.strip()[:80]!r}") from None


def parse_runner_output(text: str) -> RunnerOutput:
    """Parse the runner's stdout; raises RunnerOutputError unless every round completed with timings."""
    root, done, version = None, False, None
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
            if kind == "root":
                root = rest.strip() == "1"
            elif kind == "knob":
                knobs.append(rest.strip())
            elif kind == "done":
                done = True
            elif kind in ("cool", "before", "after", "begin", "end"):
                values = _fields(rest)
                if "round" not in values:
                    raise RunnerOutputError(f"runner line without a round: {line!r}")
                r = rounds.setdefault(values["round"], RoundResult(values["round"]))
                if kind == "cool":
                    r.cool = {k: v for k, v in values.items() if k != "round"}
                elif kind in ("before", "after"):
                    setattr(r, kind, {k: v for k, v in values.items() if k != "round"})
                elif kind == "begin":
                    current = r
                else:
                    r.exit_code = values.get("exit")
                    current = None
            continue
        if current is not None:
            version = version or (m.group(1) if (m := _VERSION.search(line)) else None)
            if m := _COUNT.search(line):
                # benchmark_model prints the warm-up stats first, the timed runs second: the last one wins
                _read_stat(current, int(m.group(1)), m.group(2))
            elif m := _TIMINGS.search(line):
                current.init_us, current.first_us = int(m.group(1)), int(m.group(2))
                current.warmup_avg_us, current.avg_us = float(m.group(3)), float(m.group(4))
    if root is None or not done:
        raise RunnerOutputError("runner output is incomplete or garbled (no 'EVD done')")
    ordered = [rounds[k] for k in sorted(rounds)]
    for r in ordered:
        if r.exit_code != 0:
            raise RunnerOutputError(f"benchmark_model failed in round {r.round} (exit {r.exit_code})", "bench_failed")
        if r.init_us is None or r.count == 0:
            raise RunnerOutputError(f"no timings from benchmark_model in round {r.round}")
    return RunnerOutput(root, ordered, version, knobs)
