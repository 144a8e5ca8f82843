"""Which benchmark binary a phone has, and the command line that makes it do exactly what we ask.

Two tools answer to the name ``benchmark_model``:

``classic``
    TF Lite / LiteRT ``tflite/tools/benchmark`` (``BenchmarkTfLiteModel``; TF Lite 1.x builds are read as this
    family too, with the fewer flags they list). CPU without XNNPACK is ``--use_xnnpack=false``, XNNPACK
    ``--use_xnnpack=true``, ``--use_gpu=true``, ``--use_nnapi=true`` (Android builds only). It has no NPU flag:
    vendor NPUs need an external delegate library, which this module does not manage.
``litert2``
    LiteRT 2.x CompiledModel tool (``litert/tools/benchmark_litert_model``): ``--use_cpu``, ``--use_gpu``,
    ``--use_npu``. Its CPU accelerator *is* XNNPACK (``litert/runtime/accelerators/xnnpack``), so "xnnpack" maps to
    ``--use_cpu=true`` and "cpu" (builtin kernels, no XNNPACK) cannot be asked for; neither can NNAPI. With
    ``--use_gpu``/``--use_npu`` the CPU stays the fallback for unsupported ops unless ``--require_full_delegation``.

Both share ``BenchmarkModel``'s loop flags (``tflite/tools/benchmark/benchmark_model.cc``): ``--num_runs``
(50), ``--min_secs`` (1.0: more runs until that long), ``--max_secs`` (150.0: stop early, so fewer runs than
asked), ``--warmup_runs`` (1), ``--warmup_min_secs`` (0.5), ``--num_threads``. TF Lite 1.12 knew only
``--num_runs``/``--warmup_runs``/``--num_threads`` of these. ``--help`` as the first argument makes both print
their flags (``Flags::Parse`` refuses it and the tool logs ``Flags::Usage``); neither prints its own version.

Op profiling (`BenchmarkTool.profile_args`, a run apart from the timed ones): ``--enable_op_profiling=true`` on
classic, with ``--report_peak_memory_footprint=true`` where its listing has that flag; ``--use_profiler=true`` on
litert2. A build that lists neither (TF Lite 1.x) cannot profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import OperationFailed, shorten

__all__ = ["DELEGATES", "HELP_ARGV", "PROFILE_MAX_RUNS", "PROFILE_WARMUP", "BenchmarkTool", "UnknownBenchmarkTool",
           "UnsupportedDelegate", "detect_tool"]

DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi", "npu")
HELP_ARGV = ["--help"]
PROFILE_WARMUP = 1     # warm-ups of a profiling run
PROFILE_MAX_RUNS = 20  # at most this many timed runs in a profiling run

_LOOP_FLAGS = frozenset({"graph", "num_runs", "min_secs", "max_secs", "warmup_runs", "warmup_min_secs",
                         "num_threads"})
# The flags each family's current Android build has (from its sources) that `args` may pass; used when the
# tool's own listing could not be read.
_KNOWN_FLAGS = {
    "classic": _LOOP_FLAGS | {"enable_op_profiling", "use_xnnpack", "use_gpu", "use_nnapi"},
    "litert2": _LOOP_FLAGS | {"use_profiler", "use_cpu", "use_gpu", "use_npu", "require_full_delegation"},
}
_NAMES = {"classic": "benchmark_model (tflite/tools/benchmark)",
          "litert2": "benchmark_litert_model (LiteRT CompiledModel)"}
# "\t--num_runs=50\tint32\toptional\t..." (2.x), "        --num_runs=50   int32 ..." (1.x),
# "    --qualcomm_... (help); default: ...;" (LiteRT vendor flags)
_FLAG_LINE = re.compile(r"^\s*(?:ERROR:\s*)?--([A-Za-z][A-Za-z0-9_-]*)")
_LITERT_HEADER = "NPU Vendor Flags from LiteRT"
_USAGE = re.compile(r"^\s*(?:ERROR:\s*)?usage: \S*benchmark", re.MULTILINE)


class UnsupportedDelegate(OperationFailed):
    """The tool cannot run on the delegate asked for."""


class UnknownBenchmarkTool(OperationFailed):
    """The text is not the flag listing of either benchmark tool."""


@dataclass(frozen=True)
class BenchmarkTool:
    """One benchmark binary: its family, version (``None``: the tools do not print one) and listed flag names."""

    family: str                 # "classic" | "litert2"
    version: str | None
    flags: frozenset[str]       # names the tool listed (empty if the listing could not be read)

    def __post_init__(self) -> None:
        if self.family not in _KNOWN_FLAGS:
            raise ValueError(f"benchmark tool family must be classic or litert2, got {shorten(self.family)}")

    @property
    def name(self) -> str:
        return _NAMES[self.family]

    def _has(self, flag: str) -> bool:
        return flag in (self.flags or _KNOWN_FLAGS[self.family])

    def delegates(self) -> tuple[str, ...]:
        """The delegates this tool can run on, in `DELEGATES` order."""
        if self.family == "litert2":
            can = {"xnnpack": self._has("use_cpu"), "gpu": self._has("use_gpu"), "npu": self._has("use_npu")}
        else:
            # a build that lists no --use_xnnpack predates XNNPACK: its CPU path is the builtin kernels
            can = {"cpu": True, "xnnpack": self._has("use_xnnpack"), "gpu": self._has("use_gpu"),
                   "nnapi": self._has("use_nnapi")}
        return tuple(d for d in DELEGATES if can.get(d))

    def delegate_args(self, delegate: str) -> list[str]:
        """The flags that select `delegate` on this tool; UnsupportedDelegate if it cannot run on it."""
        if delegate not in self.delegates():
            raise UnsupportedDelegate(f"{self.name} cannot run on delegate {shorten(delegate)}; "
                                      f"it can do: {', '.join(self.delegates())}")
        if self.family == "litert2":
            on = {"xnnpack": "use_cpu", "gpu": "use_gpu", "npu": "use_npu"}[delegate]
            return [f"--{flag}={'true' if flag == on else 'false'}" for flag in ("use_cpu", "use_gpu", "use_npu")]
        if delegate == "cpu":
            return ["--use_xnnpack=false"] if self._has("use_xnnpack") else []
        return [{"xnnpack": "--use_xnnpack=true", "gpu": "--use_gpu=true", "nnapi": "--use_nnapi=true"}[delegate]]

    def args(self, graph: str, *, warmup: int, runs: int, threads: int, delegate: str, max_secs: int,
             profiling: bool = False) -> list[str]:
        """The tool's own flags for one run: exactly `warmup` warm-ups and `runs` timed runs (time minimums off:
        --warmup_min_secs=0 --min_secs=0 where they exist), --max_secs=max_secs, op profiling off where the tool
        has the flag (--enable_op_profiling=false; --use_profiler=false on litert2) or, with `profiling`, on
        (--enable_op_profiling=true plus --report_peak_memory_footprint=true where the tool lists it;
        --use_profiler=true on litert2), and the delegate mapped to the tool's flags. UnsupportedDelegate with a
        one-line message naming the tool and what it can do, for a delegate it cannot do (e.g. nnapi on litert2);
        ValueError for a value out of range, or `profiling` on a tool that cannot profile (`can_profile`)."""
        for label, value, least in (("warmup", warmup, 0), ("runs", runs, 1), ("threads", threads, 1),
                                    ("max_secs", max_secs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{label} must be an integer >= {least}, got {shorten(value)}")
        if not isinstance(graph, str) or not graph.strip():
            raise ValueError(f"graph must be a model path, got {shorten(graph)}")
        if profiling and not self.can_profile():
            raise ValueError(f"{self.name} has no op profiling flag")
        delegate_args = self.delegate_args(delegate)
        argv = [f"--graph={graph}", f"--warmup_runs={warmup}"]
        if self._has("warmup_min_secs"):
            argv.append("--warmup_min_secs=0")
        argv.append(f"--num_runs={runs}")
        if self._has("min_secs"):
            argv.append("--min_secs=0")
        if self._has("max_secs"):
            argv.append(f"--max_secs={max_secs}")
        argv.append(f"--num_threads={threads}")
        if self._has(self._profiling_flag):
            argv.append(f"--{self._profiling_flag}={'true' if profiling else 'false'}")
        if profiling and self.family == "classic" and "report_peak_memory_footprint" in self.flags:
            argv.append("--report_peak_memory_footprint=true")
        return argv + delegate_args

    @property
    def _profiling_flag(self) -> str:
        return "use_profiler" if self.family == "litert2" else "enable_op_profiling"

    def can_profile(self) -> bool:
        """Whether the tool has an op profiling flag."""
        return self._has(self._profiling_flag)

    def profile_args(self, graph: str, *, runs: int, threads: int, delegate: str, max_secs: int) -> list[str] | None:
        """The flags of one op profiling run: `args` with profiling on, PROFILE_WARMUP warm-ups and min(`runs`,
        PROFILE_MAX_RUNS) timed runs; None when the tool has no profiling flag. Errors as `args`."""
        if not self.can_profile():
            return None
        return self.args(graph, warmup=PROFILE_WARMUP, runs=min(runs, PROFILE_MAX_RUNS), threads=threads,
                         delegate=delegate, max_secs=max_secs, profiling=True)


def detect_tool(help_text: str) -> BenchmarkTool:
    """The tool that printed `help_text` (combined stdout+stderr of running it with `HELP_ARGV`)."""
    text = help_text if isinstance(help_text, str) else ""
    flags = frozenset(m.group(1) for line in text.splitlines() if (m := _FLAG_LINE.match(line)))
    if _LITERT_HEADER in text or flags & {"use_npu", "dispatch_library_path", "compiler_plugin_library_path"}:
        return BenchmarkTool("litert2", None, flags)
    if flags & {"graph", "num_runs", "warmup_runs"} or _USAGE.search(text):
        return BenchmarkTool("classic", None, flags)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    raise UnknownBenchmarkTool(f"not a benchmark_model flag listing (starts {shorten(first)})")
