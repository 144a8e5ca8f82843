"""Read the op-profiling tables benchmark_model prints with ``--enable_op_profiling=true`` (classic) or
``--use_profiler=true`` (LiteRT 2.x CompiledModel tool).

Layout (``tsl/util/stats_calculator.cc``, ``tflite/profiling/profile_summary_formatter.cc``): each profile is a
``============================== Run Order ==============================`` table (one row per node in execution
order), ``Top by Computation Time`` (the ten slowest again; not read), ``Number of nodes executed: N``, a ``Summary by
node type`` table (slowest type first), then ``Timings (microseconds): count=... avg=A`` (the summed node time per
run), ``Memory (bytes): ...`` and ``N nodes observed``. Columns are tab separated, each field right-aligned:
``[node type]``, ``[start]`` (dropped in later releases), ``[first]``, ``[avg ms]``, ``[%]``, ``[cdf%]``,
``[mem KB]``, ``[times called]``, ``[Name]`` for nodes; ``[Node type]``, ``[count]``, ``[avg ms]``, ``[avg %]``,
``[cdf %]``, ``[mem KB]``, ``[times called]`` for types. Node types and names may hold spaces, commas and brackets
(``Fully Connected (NC, PF32) GEMM``, ``[tfl.conv_2d13, tfl.conv_2d14]:233``). Columns are found from the header
row, so either layout reads; a table whose tabs were turned into spaces (a copy pasted into a page) reads too.

Sections: TF Lite 1.x and LiteRT 2.x print one unnamed profile. TF Lite 2.x prints ``Profiling Info for Benchmark
Initialization:`` (interpreter set-up, never taken) and then ``Operator-wise Profiling Info for Regular Benchmark
Runs:``, whose profile is the one returned. A model with several subgraphs gets ``Primary graph (name: X)
profile:`` and ``Subgraph (index: N, name: X) profile:`` sections, and a delegate's own breakdown ``Delegate
internal:``; only the primary graph is read, since the others' time is already inside its nodes. Each message's
first line may carry a log prefix (``INFO:``, logcat, absl), which is removed as benchmark_output does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput, shorten
from .benchmark_output import ToolMemory, stat_values, strip_log_prefix

__all__ = ["OpNode", "OpProfile", "OpTypeTime", "ProfileRun", "parse_op_profile"]


@dataclass(frozen=True)
class OpNode:
    """One row of ``Run Order``: a node in execution order."""

    type: str        # "[node type]", e.g. "CONV_2D", "TfLiteXNNPackDelegate", "Fully Connected (NC, PF32) GEMM"
    name: str        # "[Name]" as printed, e.g. "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"
    avg_ms: float    # "[avg ms]": mean time of one call
    share: float     # "[%]" / 100: the node's part of the summed node time


@dataclass(frozen=True)
class OpTypeTime:
    """One row of ``Summary by node type``."""

    type: str
    count: int       # nodes of this type
    avg_ms: float    # their summed time per run
    share: float     # "[avg %]" / 100


@dataclass(frozen=True)
class OpProfile:
    """The regular runs' profile of one tool run: nodes in execution order, node types slowest first as printed,
    and the profiler's mean summed node time per run (None when its ``Timings`` line was not printed)."""

    nodes: tuple[OpNode, ...]
    types: tuple[OpTypeTime, ...]
    total_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [{"type": n.type, "name": n.name, "avg_ms": n.avg_ms, "share": n.share} for n in self.nodes],
                "types": [{"type": t.type, "count": t.count, "avg_ms": t.avg_ms, "share": t.share}
                          for t in self.types],
                "total_ms": self.total_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpProfile:
        """The profile `to_dict` wrote; BadInput (one line) when it is not one."""
        try:
            nodes = tuple(OpNode(str(n["type"]), str(n["name"]), float(n["avg_ms"]), float(n["share"]))
                          for n in d["nodes"])
            types = tuple(OpTypeTime(str(t["type"]), int(t["count"]), float(t["avg_ms"]), float(t["share"]))
                          for t in d["types"])
            total = d["total_ms"]
            return cls(nodes, types, None if total is None else float(total))
        except (KeyError, TypeError, ValueError) as e:
            raise BadInput(f"not an op profile: {shorten(repr(d))} ({type(e).__name__}: {shorten(str(e))})") from e

    def top_types(self, n: int = 5) -> list[OpTypeTime]:
        """The `n` types with the largest share of the time (printed order among equals)."""
        return sorted(self.types, key=lambda t: (-t.share, -t.avg_ms))[:max(n, 0)]

    def top_nodes(self, n: int = 5) -> list[OpNode]:
        """The `n` nodes with the largest share of the time (execution order among equals). Share, not the per-call
        mean: a node called several times per run counts every call, and set-up rows (LiteRT's AllocateTensors)
        with a long call but no share in the runs stay out."""
        return sorted(self.nodes, key=lambda t: (-t.share, -t.avg_ms))[:max(n, 0)]


@dataclass(frozen=True)
class ProfileRun:
    """One benchmark_model run with op profiling on, apart from the timed rounds: its op tables (None when the
    tool printed none), its memory footprint, a simulated phone's timing basis, and the tool family that ran it."""

    ops: OpProfile | None
    memory: ToolMemory | None
    simulated: str | None
    tool: str

    @property
    def peak_mb(self) -> float | None:
        return self.memory.peak_mb if self.memory is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The stored profile: {"ops": OpProfile.to_dict() or None, "memory_mb": ToolMemory.to_dict(),
        "simulated": basis or None, "tool": family}."""
        return {"ops": self.ops.to_dict() if self.ops is not None else None,
                "memory_mb": self.memory.to_dict() if self.memory is not None else {},
                "simulated": self.simulated, "tool": self.tool}

    @classmethod
    def from_dict(cls, d: Any) -> ProfileRun:
        """The profile `to_dict` wrote; BadInput (one line) when it is not one."""
        if not isinstance(d, dict) or not isinstance(d.get("tool"), str):
            raise BadInput(f"not a stored op profile: {shorten(repr(d))}")
        memory = d.get("memory_mb") or {}
        if not isinstance(memory, dict):
            raise BadInput(f"not a stored op profile (memory_mb {shorten(repr(memory))})")
        try:
            tool_memory = ToolMemory.from_dict(memory) if memory else None
        except (TypeError, ValueError) as e:
            raise BadInput(f"not a stored op profile (memory_mb {shorten(repr(memory))}: {shorten(str(e))})") from e
        ops = d.get("ops")
        simulated = d.get("simulated")
        return cls(OpProfile.from_dict(ops) if ops is not None else None, tool_memory,
                   simulated if isinstance(simulated, str) else None, d["tool"])


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_FIELD = re.compile(rf"(?:{_NUM})%?", re.IGNORECASE)
_TITLE = re.compile(r"^=+ (Run Order|Top by Computation Time|Top by Memory Use|Summary by node type) =+$")
_LABEL = re.compile(r"\[([^\]]*)\]")
_INIT = re.compile(r"^Profiling Info for Benchmark Initialization:")
_REGULAR = re.compile(r"^Operator-wise Profiling Info for Regular Benchmark Runs:")
_PRIMARY = re.compile(r"^Primary graph\b")
_OTHER_GRAPH = re.compile(r"^(?:Subgraph \(index: |Delegate internal:)")
_TIMINGS = re.compile(r"^Timings \(microseconds\): (.*)$")
_OBSERVED = re.compile(r"^\d+ nodes observed$")
# tensorflow::Stat::OutputToStream: no runs, one run (or all the same), or the full line ending with std=
_STAT_FORM = re.compile(rf"^count=\d+(?: curr=(?:{_NUM})(?:\(all same\))?"
                        rf"| first=.* avg=(?:{_NUM}) std=(?:{_NUM})\b.*)?$")
_MAX_SPACED_ROW = 4096  # a space-aligned row longer than this is not read (bounds the row regex's work)
_NODE_COLUMNS = ("node type", "avg ms", "%")
_TYPE_COLUMNS = ("node type", "count", "avg ms", "avg %")


@dataclass
class _Table:
    """The table being read: its kind and, once its header row is seen, its columns."""

    kind: str                       # "nodes" | "types" | "other"
    labels: list[str] | None = None  # header labels, lower case, spaces collapsed

    def numeric(self) -> int:
        """How many numeric fields a row has between its type and (for nodes) its name."""
        assert self.labels is not None
        return len(self.labels) - (2 if self.kind == "nodes" else 1)

    def percent(self) -> list[bool]:
        """For each numeric field, whether its column is a percentage (printed with a trailing %)."""
        assert self.labels is not None
        return ["%" in label for label in self.labels[1:1 + self.numeric()]]


@dataclass
class _Profile:
    """One profile being read: which section it belongs to, and what it gave so far."""

    phase: str      # "init" | "regular" | "unnamed"
    primary: bool
    nodes: list[OpNode]
    types: list[OpTypeTime]
    total_ms: float | None = None
    done: bool = False

    def result(self) -> OpProfile | None:
        if not self.nodes and not self.types:
            return None
        return OpProfile(tuple(self.nodes), tuple(self.types), self.total_ms)


def _number(field: str, percent: bool) -> float | None:
    """A numeric field (``12.5``, or ``3.2%`` for a percentage column), None when it is not one."""
    text = field.strip()
    if not _FIELD.fullmatch(text) or text.endswith("%") != percent:
        return None
    return float(text.rstrip("%"))


def _share(percent: float) -> float:
    # the tool prints nan% when every node took 0 us (0/0): no share of nothing
    return percent / 100.0 if math.isfinite(percent) else 0.0


def _fields(message: str, table: _Table) -> tuple[str, list[str], list[str]] | None:
    """(type, numeric fields, the rest) of a line split by tabs, or by spaces where its tabs were lost."""
    width = table.numeric()
    fields = [f.strip() for f in message.split("\t")]
    if len(fields) >= 1 + width:
        return fields[0], fields[1:1 + width], fields[1 + width:]
    if len(message) > _MAX_SPACED_ROW:
        return None
    # tabs turned into spaces (a pasted copy): the type runs up to the first of `width` numbers in a row
    tail = r"(?:\s+(.*))?" if table.kind == "nodes" else r"()\s*"
    m = re.fullmatch(r"(\S.*?)" + rf"\s+({_FIELD.pattern})" * width + tail, message, re.IGNORECASE)
    if m is None:
        return None
    return m.group(1), list(m.groups()[1:1 + width]), [m.group(width + 2) or ""]


def _split(message: str, table: _Table) -> tuple[str, list[float], str] | None:
    """(type, numeric fields, name) of one row, None when the line is not a row of this table."""
    if (fields := _fields(message, table)) is None:
        return None
    kind, numbers, rest = fields
    values = [_number(f, p) for f, p in zip(numbers, table.percent(), strict=True)]
    if not kind or any(v is None for v in values) or (table.kind == "types" and any(rest)):
        return None
    name = "\t".join(rest).strip() if table.kind == "nodes" else ""
    return kind, [v for v in values if v is not None], name


def _row(message: str, table: _Table, into: _Profile) -> bool:
    """Read one row of `table` into `into`; False when the line is not a row."""
    if table.labels is None or table.kind == "other":
        return False
    if (parts := _split(message, table)) is None:
        return False
    kind, values, name = parts
    column = {label: i - 1 for i, label in enumerate(table.labels)}

    def value(label: str) -> float:
        return values[column[label]]

    if table.kind == "nodes":
        avg = value("avg ms")
        if not math.isfinite(avg):
            return False
        into.nodes.append(OpNode(kind, name, avg, _share(value("%"))))
    else:
        count, avg = value("count"), value("avg ms")
        if not (math.isfinite(avg) and count.is_integer() and count >= 0):
            return False
        into.types.append(OpTypeTime(kind, int(count), avg, _share(value("avg %"))))
    return True


def _header(message: str, kind: str) -> list[str] | None:
    """The column labels of a header row of a `kind` table, None when the line is not one (or lacks a column
    this reader needs)."""
    labels = [" ".join(label.lower().split()) for label in _LABEL.findall(message)]
    needed = _NODE_COLUMNS if kind == "nodes" else _TYPE_COLUMNS
    if not labels or labels[0] != "node type" or not all(c in labels for c in needed):
        return None
    if kind == "nodes" and labels[-1] != "name":
        return None
    return labels


def _total_ms(stat_text: str) -> float | None:
    """The mean of a ``Timings`` Stat in ms; None for no runs, or a line cut short (not one of Stat's forms)."""
    if not _STAT_FORM.match(stat_text.strip()):
        return None
    values = stat_values(stat_text)
    avg = values.get("avg")
    if values.get("count", 0) <= 0 or avg is None or not math.isfinite(avg):
        return None
    return avg / 1000.0


def parse_op_profile(text: str) -> OpProfile | None:
    """The regular runs' op profile in benchmark_model's output (never the initialisation one), or None when no
    profile table was printed. A truncated profile gives what it printed; junk gives None; never raises."""
    profiles: list[_Profile] = []
    phase: str | None = None
    primary = True
    current: _Profile | None = None
    table: _Table | None = None
    for raw in text.splitlines():
        _, message = strip_log_prefix(raw)
        if _INIT.match(message) or _REGULAR.match(message):
            phase, primary = ("init" if _INIT.match(message) else "regular"), True
            current = table = None
        elif _PRIMARY.match(message) or _OTHER_GRAPH.match(message):
            primary = bool(_PRIMARY.match(message))
            current = table = None
        elif m := _TITLE.match(message):
            if current is None or current.done:
                current = _Profile(phase or "unnamed", primary, [], [])
                profiles.append(current)
            title = m.group(1)
            table = _Table("nodes" if title == "Run Order" else "types" if title == "Summary by node type" else "other")
        elif m := _TIMINGS.match(message):
            if current is not None and not current.done:
                current.total_ms = _total_ms(m.group(1))
            table = None
        elif _OBSERVED.match(message):
            if current is not None:
                current.done = True
            table = None
        elif table is not None and current is not None and not current.done:
            if table.labels is None:
                table.labels = _header(message, table.kind) if table.kind != "other" else []
            elif message and not _row(message, table, current):
                table = None
    for wanted in ("regular", "unnamed"):
        for profile in profiles:
            if profile.phase == wanted and profile.primary and (found := profile.result()) is not None:
                return found
    return None
