"""Read what LiteRT/TFLite ``benchmark_model`` printed, whichever generation of the tool printed it.

Families (recognised from the output alone):

``tf1``
    TF Lite 1.x ``tools/benchmark/benchmark_model``. Stat lines ``count=N first=F curr=C min=A max=B avg=M std=S``
    after ``Running benchmark for ...`` lines, then ``Average inference timings in us: Warmup: W, Init: I,
    no stats: M``. Its own lines carry no ``INFO:`` prefix; some outputs stop before the summary.
``classic``
    TF Lite 2.x / LiteRT ``tflite/tools/benchmark/benchmark_model``. The same stat lines (newer builds append
    ``p5= median= p95=``), then ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W,
    Inference (avg): M``. Lines are prefixed ``INFO:``/``WARN:``/``ERROR:`` in most 2.x releases, not in the
    earliest ones.
``litert2``
    LiteRT 2.x CompiledModel tool (``litert/tools/benchmark_litert_model``, shipped as ``benchmark_model``). The
    shared benchmark loop prints the same stat lines, then a ``========== BENCHMARK RESULTS ==========`` block in
    milliseconds: ``Inference (avg): X ms (N runs)``. Its lines look like ``INFO: [benchmark_litert_model.h:88] ...``.
``unknown``
    Anything else: error-only output, a flag listing, junk.

Both tools print the warm-up statistics first and the timed runs' second (``tflite/tools/benchmark/
benchmark_model.cc``: ``Run(warmup_runs, ...)`` then ``Run(num_runs, ...)``). With op profiling on, the profiler's
``Timings (microseconds): count=...`` and ``Memory (bytes): count=0`` lines come later and describe something
else, so they are ignored. ``tensorflow::Stat`` prints ``count=N curr=C`` for one run, ``count=N curr=C(all same)``
when every run took the same whole microseconds, ``count=0`` for none, and ``avg`` with six significant digits
(``1.05037e+06``). Microsecond stat lines are preferred to the summaries, and the summaries to the
millisecond ``BENCHMARK RESULTS`` block, which is used when nothing finer was printed. ``--max_secs`` (150 s by
default) ends the timed loop early, so ``count`` can be below ``--num_runs``.

The simulator's benchmark_model (elasticvit_deploy/simulator) prints one line of its own that no real tool prints,
``Simulator timing: <basis>`` in the family's log style (``INFO: ``, ``INFO: [simulator:0] `` or none): what its
timings rest on, e.g. ``table pixel1``. It is read into ``simulated``, so results measured on a simulated phone
stay marked as such; it is None for every real tool.

Memory and model size (read into ``memory`` and ``model_mb``; ``tflite/tools/benchmark/benchmark_model.cc`` and
``litert/tools/benchmark_litert_model.h``): the classic tool prints ``The input model file size (MB): X``, then
``Peak memory footprint (MB): init=I overall=O`` (earlier 2.x) or ``Memory footprint delta from the start of the tool
(MB): init=I overall=O`` (later), and with ``--report_peak_memory_footprint`` ``Overall peak memory footprint (MB)
via periodic monitoring: P``. LiteRT 2.x prints a ``Memory Usage:`` block: ``Init footprint: I MB``, ``Overall
footprint: O MB`` and ``Peak memory: P MB`` or ``Peak memory usage not available. (peak_mem_mb <= 0)``.

Neither tool prints its own version (checked in the LiteRT sources), so ``version`` stays ``None`` unless that
changes. Log prefixes understood: ``INFO:``/``WARN:``/``WARNING:``/``ERROR:``/``FATAL:``/``VERBOSE:``/``DEBUG:``
with an optional ``[file.cc:123]`` tag, absl/glog ``I0000 00:00:... file.cc:51]``, TensorFlow's
``2018-09-10 12:36:26.109025: I file.cc:361]`` and Android logcat ``05-31 10:31:13.023 21767 21767 I tflite  :``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["BenchmarkRun", "ToolMemory", "parse_benchmark_output", "stat_values", "strip_log_prefix"]

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIXES = (
    # Android logcat (threadtime): date time pid tid level tag: message
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+(?P<sev>[VDIWEF])\s+[^:]*?\s*:\s?"),
    # TensorFlow C++ logging: 2018-09-10 12:36:26.109025: I tensorflow/...cc:361]
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<sev>[IWEF]) \S+\] ?"),
    # absl / glog: I0000 00:00:1758455104.504065   62590 accelerator_registry.cc:51]
    re.compile(r"^(?P<sev>[IWEF])\d{4} [\d:.]+\s+\d+ \S+\] ?"),
    # the tools' own TFLITE_LOG / LITERT_LOG: "ERROR: " or "INFO: [file.h:81] "
    re.compile(r"^(?P<sev>INFO|WARN|WARNING|ERROR|FATAL|VERBOSE|DEBUG): ?(?:\[[^\]\s]*:\d+\] ?)?"),
)
_ERROR_SEVERITIES = {"E", "F", "ERROR", "FATAL"}
_STAT_START = re.compile(r"^(?:count|curr)=")
_KV = re.compile(rf"\b(\w+)=({_NUM})")
_ALL_SAME = re.compile(rf"\bcurr=({_NUM})\(all same\)")
_CLASSIC_SUMMARY = re.compile(rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                              rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_TF1_SUMMARY = re.compile(r"Average inference timings in us:(.*)")
_TF1_ITEM = re.compile(rf"(Warmup|Init|no stats|Inference): ({_NUM})")
_SESSION = re.compile(rf"^Initialized session in ({_NUM}) ?ms")
_RESULTS_HEADER = re.compile(r"^=+ ?BENCHMARK RESULTS ?=+$")
_SIMULATED = re.compile(r"^Simulator timing: (\S.*)$")
_MS = {
    "init": re.compile(rf"^Model initialization:\s*({_NUM}) ms"),
    "first": re.compile(rf"^(?:Warmup \(first\)|First inference):\s*({_NUM}) ms"),
    "warmup": re.compile(rf"^Warmup \(avg\):\s*({_NUM}) ms"),
    "avg": re.compile(rf"^Inference \(avg\):\s*({_NUM}) ms \((\d+) runs\)"),
    "min": re.compile(rf"^Inference \(min\):\s*({_NUM}) ms"),
    "max": re.compile(rf"^Inference \(max\):\s*({_NUM}) ms"),
    "std": re.compile(rf"^Inference \(std\):\s*({_NUM})"),
}
_MODEL_MB = re.compile(rf"^The input model file size \(MB\): ({_NUM})")
# (pattern, ToolMemory fields its numbers fill, in order)
_MEMORY = (
    (re.compile(rf"^(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                rf"init=({_NUM}) overall=({_NUM})"), ("init_mb", "overall_mb")),
    (re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})"), ("peak_mb",)),
    (re.compile(rf"^Init footprint:\s*({_NUM}) MB"), ("init_mb",)),
    (re.compile(rf"^Overall footprint:\s*({_NUM}) MB"), ("overall_mb",)),
    (re.compile(rf"^Peak memory(?: usage)?:\s*({_NUM}) MB"), ("peak_mb",)),
)
_LITERT_TAG = re.compile(r"\[[^\]]*benchmark_litert_model\.h:\d+\]")
# The tool's own lines that only 2.x (classic) prints, or prints with the INFO: prefix only since 2.x.
_CLASSIC_MARK = re.compile(r"^Log parameter values verbosely"
                           r"|^INFO: (?:STARTING!|Running benchmark|Loaded model|Graph: \[)")
# TF Lite 1.x wording: "Running benchmark for 50 iterations", "Num runs: [50]", "Warmup runs: [1]".
_TF1_MARK = re.compile(r"^Running benchmark for \d+ iterations|^(?:Num runs|Warmup runs): \[")
# Failure messages the tools print (with or without an ERROR: prefix, depending on the release); any of them
# means the numbers cannot be trusted.
_FATAL = re.compile(r"Benchmarking failed|failed to invoke|Failed to allocate tensors|Failed to load model|"
                    r"Failed to mmap model|Failed to initialize the interpreter|Failed to compile model|"
                    r"^Run failed", re.IGNORECASE)


@dataclass(frozen=True)
class ToolMemory:
    """The memory footprint the tool reported, in MB; ``None`` where it printed no such figure."""

    init_mb: float | None = None     # after initialisation
    overall_mb: float | None = None  # at the end of the runs
    peak_mb: float | None = None     # peak from periodic monitoring (classic) or LiteRT's "Peak memory"

    def to_dict(self) -> dict[str, float]:
        """The figures the tool printed, by field name (``init_mb``, ``overall_mb``, ``peak_mb``)."""
        return {name: value for name, value in (("init_mb", self.init_mb), ("overall_mb", self.overall_mb),
                                                ("peak_mb", self.peak_mb)) if value is not None}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> ToolMemory:
        """The record `to_dict` wrote."""
        return cls(**{name: float(d[name]) for name in ("init_mb", "overall_mb", "peak_mb") if name in d})


@dataclass(frozen=True)
class BenchmarkRun:
    """What one benchmark_model run reported; times in microseconds, ``None`` where the output does not say."""

    family: str            # "tf1" | "classic" | "litert2" | "unknown"
    version: str | None    # only when the output prints it (no known release does)
    count: int             # number of timed runs (0 if none)
    avg_us: float | None   # mean of the timed runs
    min_us: float | None
    max_us: float | None
    std_us: float | None
    init_us: float | None
    first_us: float | None
    warmup_avg_us: float | None
    errors: tuple[str, ...]   # the tool's own error lines, in order, without their prefixes
    simulated: str | None = None  # the simulator's timing basis; None for a real tool
    memory: ToolMemory | None = None  # None when the tool printed no memory lines
    model_mb: float | None = None     # "The input model file size (MB): X"

    @property
    def ok(self) -> bool:
        """At least one timed run with timings, and no failure message."""
        return self.count > 0 and self.avg_us is not None and not any(_FATAL.search(e) for e in self.errors)


def _runs(value: float) -> int:
    """A run count read as a float; absurd values (overflowing, negative) count as none."""
    return int(value) if 0 <= value < 2**63 else 0


def strip_log_prefix(line: str) -> tuple[str | None, str]:
    """(severity, message) of one output line, the log prefix (any of those the module docstring lists) removed
    and surrounding whitespace stripped; severity is None for a line without a prefix."""
    text = line.strip()
    for prefix in _PREFIXES:
        if m := prefix.match(text):
            return m.group("sev"), text[m.end():].strip()
    return None, text


def stat_values(text: str) -> dict[str, float]:
    """A tensorflow::Stat line (``count=N first=F curr=C ...``) as numbers: count, first, avg, min, max, std
    (whatever it printed; a single run's or identical runs' ``curr`` fills them all)."""
    values = {k: float(v) for k, v in _KV.findall(text)}
    if "avg" not in values and "curr" in values and values.get("count", 0) > 0:
        # one run, or every run the same: Stat prints only curr (and std is 0 by definition)
        same = values["curr"]
        if m := _ALL_SAME.search(text):
            same = float(m.group(1))
        values.update(first=same, avg=same, min=same, max=same, std=0.0)
    return values


def _finite(text: str) -> float | None:
    """A printed number, None when it overflows to infinity."""
    value = float(text)
    return value if math.isfinite(value) else None


def _memory_figures(message: str) -> dict[str, float]:
    """The ToolMemory fields one memory line gives (empty for any other line)."""
    for pattern, names in _MEMORY:
        if m := pattern.match(message):
            values = [_finite(v) for v in m.groups()]
            return {name: v for name, v in zip(names, values, strict=True) if v is not None}
    return {}


def _detect_family(text: str, messages: list[str]) -> str:
    """The family the summary lines prove, or "" when the output has none of them."""
    if any(_RESULTS_HEADER.match(m) for m in messages) or _LITERT_TAG.search(text):
        return "litert2"
    if _CLASSIC_SUMMARY.search(text):
        return "classic"
    if _TF1_SUMMARY.search(text):
        return "tf1"
    return ""


def parse_benchmark_output(text: str) -> BenchmarkRun:
    """Parse benchmark_model's combined stdout+stderr; never raises (junk gives family "unknown", count 0)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = "" if text is None else str(text)
    raw_lines = text.splitlines()
    stats: list[dict[str, float]] = []
    summary: dict[str, float] = {}
    ms: dict[str, float] = {}
    errors: list[str] = []
    session_us: float | None = None
    simulated: str | None = None
    model_mb: float | None = None
    memory: dict[str, float] = {}
    weak_family = ""
    messages: list[str] = []
    for raw in raw_lines:
        severity, msg = strip_log_prefix(raw)
        messages.append(msg)
        if severity in _ERROR_SEVERITIES or (severity is None and _FATAL.search(msg)):
            if msg:
                errors.append(msg)
            continue
        if (m := _SIMULATED.match(msg)) and simulated is None:
            simulated = m.group(1).strip()
        elif _STAT_START.match(msg) and "count=" in msg:
            stats.append(stat_values(msg))
        elif m := _CLASSIC_SUMMARY.search(msg):
            summary.setdefault("init", float(m.group(1)))
            summary.setdefault("first", float(m.group(2)))
            summary.setdefault("warmup", float(m.group(3)))
            summary.setdefault("avg", float(m.group(4)))
        elif m := _TF1_SUMMARY.search(msg):
            items = {k: float(v) for k, v in _TF1_ITEM.findall(m.group(1))}
            for key, name in (("warmup", "Warmup"), ("init", "Init"), ("avg", "no stats"), ("avg", "Inference")):
                if name in items:
                    summary.setdefault(key, items[name])
        elif (m := _MODEL_MB.match(msg)) and model_mb is None:
            model_mb = _finite(m.group(1))
        elif figures := _memory_figures(msg):
            for name, value in figures.items():
                memory.setdefault(name, value)
        elif (m := _SESSION.match(msg)) and session_us is None:
            session_us = float(m.group(1)) * 1000.0
        else:
            for key, pattern in _MS.items():
                if (m := pattern.match(msg)) and key not in ms:
                    ms[key] = float(m.group(1)) * 1000.0
                    if key == "avg":
                        ms["count"] = float(m.group(2))
                    break
        if not weak_family:
            weak_family = ("classic" if _CLASSIC_MARK.match(raw.strip()) or _CLASSIC_MARK.match(msg)
                           else "tf1" if _TF1_MARK.match(msg) else "")
    family = _detect_family(text, messages) or weak_family or "unknown"

    warm = stats[0] if stats else {}
    timed = stats[1] if len(stats) > 1 else None
    if timed is not None:
        count = _runs(timed.get("count", 0))
        avg, lo, hi, std = (timed.get(k) if count else None for k in ("avg", "min", "max", "std"))
    elif not stats and ("avg" in summary or "avg" in ms):
        # no stat lines at all (an excerpt): fall back on the summary, then on the millisecond block
        count = _runs(ms.get("count", 0))
        avg = summary.get("avg", ms.get("avg"))
        lo, hi, std = ms.get("min"), ms.get("max"), ms.get("std")
    else:
        count, avg, lo, hi, std = 0, None, None, None, None

    def pick(key: str, stat_key: str) -> float | None:
        if warm.get("count", 0) > 0 and stat_key in warm:
            return warm[stat_key]
        return summary.get(key, ms.get(key))

    init = summary.get("init")
    if init is None:
        init = session_us if session_us is not None else ms.get("init")
    return BenchmarkRun(family=family, version=None, count=count, avg_us=avg, min_us=lo, max_us=hi, std_us=std,
                        init_us=init, first_us=pick("first", "first"), warmup_avg_us=pick("warmup", "avg"),
                        errors=tuple(errors), simulated=simulated,
                        memory=ToolMemory(**memory) if memory else None, model_mb=model_mb)
