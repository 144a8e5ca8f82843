"""The nodes a simulated op profiler reports for a model, and how a run's simulated time is split over them.

Simulated, not measured: the node list is the model's real one, the times are a simulated run's time split by an
estimate of each node's work.

Nodes
    The model's ops as the host's LiteRT interpreter has them (``Interpreter._get_ops_details()``), in execution
    order. An op the interpreter runs itself is one node named as TF Lite's profile summarizer names it: its
    output tensors' names and its index (``[out_a, out_b]:7``), of its builtin type (``CONV_2D``). Ops the host's
    XNNPACK delegate took (each partition of its ``DELEGATE`` nodes) are XNNPACK operators instead: the TF 2.18
    and LiteRT delegate sets ``kTfLiteDelegateFlagsPerOperatorProfiling``, so its own node is not profiled and
    each of its operators is reported as ``Delegate/<operator name>:<i>`` of type ``<operator name>``, ``i``
    counting the operators of its partition (equal names of two partitions merge in the tables, as in the real
    tool). Older tools showed one ``TfLiteXNNPackDelegate`` row per partition instead.
XNNPACK operator names (simulated)
    Each builtin op becomes the XNNPACK operator it plausibly maps to, named as XNNPACK's runtime profiler names
    operators (the operator type, then the microkernel type where there is one): ``CONV_2D`` ->
    ``Convolution (NHWC, F32) IGEMM`` (``GEMM`` for a 1x1 kernel that keeps the spatial size),
    ``DEPTHWISE_CONV_2D`` -> ``Convolution (NHWC, F32) DWConv``, ``FULLY_CONNECTED`` ->
    ``Fully Connected (NC, F32) GEMM``, ``BATCH_MATMUL`` -> ``Batch Matrix Multiply (NC, F32) GEMM``, binary ops
    -> ``Add (ND)``, ``Multiply (ND)``, ..., activations -> ``Clamp (NC)``, ``Sigmoid (NC)``, ``HardSwish (NC)``,
    ..., ``RESHAPE``/``SQUEEZE`` -> ``Static Reshape (NC)``, ``TRANSPOSE`` -> ``Transpose (ND, X32) Transpose``,
    ``SOFTMAX`` -> ``Softmax (NC, F32)``, pooling, ``MEAN``, ``PAD``, ``SLICE``, ``CONCATENATION`` (``Copy``) and
    resizing likewise (`XNNPACK_OPERATORS`); the data type follows the op's tensors (``F32``, ``QS8``, ``QC8``,
    ``QU8``, dynamic-range ``QD8, F32, QC8W``; ``X8``..``X64`` by element size for data movement). A standalone
    ``RELU``/``RELU6``/``RELU_N1_TO_1``/``RELU_0_TO_1`` whose input only it reads, made in the same partition by
    an op that can clamp its output, is fused into that operator, as XNNPACK's subgraph fusion does. An op
    without a mapping keeps its builtin name.
Work
    Multiply-accumulates from the real tensors' shapes: ``CONV_2D`` output elements x kernel height x width x
    input channels; ``DEPTHWISE_CONV_2D`` output elements x kernel area, counted 4 times (it is memory-bound);
    ``FULLY_CONNECTED`` output elements x input features; ``BATCH_MATMUL`` output elements x the shared
    dimension; ``TRANSPOSE_CONV`` input elements x kernel area x output channels; ``CONV_3D`` output elements x
    kernel volume x input channels. Reshape-like ops (``RESHAPE``, ``SQUEEZE``, ``EXPAND_DIMS``) do none; every
    other op 4 per element of the larger of its first input and its output. Every node adds 256 (dispatch). These
    are assumed round numbers, not measurements. A run's time is split in proportion, in whole microseconds by
    largest remainders (`split_us`), so the node times of a run sum to its simulated time.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["XNNPACK_OPERATORS", "ProfiledNode", "activation_bytes", "profiled_nodes", "split_us"]

NODE_WORK = 256.0          # every node's fixed work (dispatch), in multiply-accumulates
ELEMENT_WORK = 4.0         # per element of an op without multiply-accumulates
DEPTHWISE_FACTOR = 4.0     # a depthwise multiply-accumulate costs this many of a dense one
_VIEW_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
_CLAMPS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"})
# ops whose XNNPACK operator takes an output range, so a following clamp fuses into it
_CLAMPABLE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB", "MUL",
                        "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D"})

#: builtin op -> the XNNPACK operator name it becomes; {T} the data type, {X} the element width, {K} GEMM/IGEMM
XNNPACK_OPERATORS: dict[str, str] = {
    "CONV_2D": "Convolution (NHWC, {T}) {K}",
    "DEPTHWISE_CONV_2D": "Convolution (NHWC, {T}) DWConv",
    "FULLY_CONNECTED": "Fully Connected (NC, {T}) GEMM",
    "BATCH_MATMUL": "Batch Matrix Multiply (NC, {T}) GEMM",
    "TRANSPOSE_CONV": "Deconvolution (NHWC, {T}) IGEMM",
    "ADD": "Add (ND)", "SUB": "Subtract (ND)", "MUL": "Multiply (ND)", "DIV": "Divide (ND)",
    "MINIMUM": "Minimum (ND)", "MAXIMUM": "Maximum (ND)", "SQUARED_DIFFERENCE": "Squared Difference (ND)",
    "PRELU": "PReLU (ND)",
    "RELU": "Clamp (NC)", "RELU6": "Clamp (NC)", "RELU_N1_TO_1": "Clamp (NC)", "RELU_0_TO_1": "Clamp (NC)",
    "LOGISTIC": "Sigmoid (NC)", "TANH": "TanH (NC)", "HARD_SWISH": "HardSwish (NC)", "GELU": "GELU (NC)",
    "ELU": "ELU (NC)", "LEAKY_RELU": "LeakyReLU (NC)", "ABS": "Abs (NC)", "NEG": "Negate (NC)",
    "SQRT": "Square Root (NC)", "RSQRT": "Reciprocal Square Root (NC)", "SQUARE": "Square (NC)", "EXP": "Exp (NC)",
    "LOG": "Log (NC)", "FLOOR": "Floor (NC)", "CEIL": "Ceiling (NC)", "DEQUANTIZE": "Convert (NC)",
    "QUANTIZE": "Convert (NC)",
    "RESHAPE": "Static Reshape (NC)", "SQUEEZE": "Static Reshape (NC)", "EXPAND_DIMS": "Static Expand Dims (NC)",
    "TRANSPOSE": "Transpose (ND, {X}) Transpose", "CONCATENATION": "Copy (NC, {X})", "PAD": "Constant Pad (ND, {X})",
    "SLICE": "Slice (ND, {X})", "STRIDED_SLICE": "Slice (ND, {X})", "DEPTH_TO_SPACE": "Depth To Space (NHWC, {X})",
    "SPACE_TO_DEPTH": "Space To Depth (NHWC, {X})",
    "AVERAGE_POOL_2D": "Average Pooling (NHWC, {T}) Average Pooling", "MAX_POOL_2D": "Max Pooling (NHWC, {T})",
    "MEAN": "Mean (ND, {T}) Mean", "SOFTMAX": "Softmax (NC, {T})", "RESIZE_BILINEAR": "Resize Bilinear (NHWC, {T})",
}
_DENSE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"})


@dataclass(frozen=True)
class ProfiledNode:
    """One node as the op profiler reports it in every run: its name and type in the tables, and its work."""

    name: str
    type: str
    work: float


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    per_channel: bool   # quantized with one scale per channel

    @property
    def elements(self) -> int:
        return math.prod(max(d, 1) for d in self.shape)


@dataclass(frozen=True)
class _Op:
    index: int
    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _tensor(detail: Mapping[str, Any]) -> _Tensor:
    scales = (detail.get("quantization_parameters") or {}).get("scales")
    return _Tensor(str(detail.get("name", "")), tuple(int(d) for d in detail.get("shape", ())),
                   np.dtype(detail.get("dtype", np.float32)), scales is not None and len(scales) > 1)


def _op(detail: Mapping[str, Any]) -> _Op:
    return _Op(int(detail["index"]), str(detail["op_name"]), tuple(int(i) for i in detail["inputs"]),
               tuple(int(i) for i in detail["outputs"]))


def _op_work(op_type: str, inputs: Sequence[_Tensor | None], outputs: Sequence[_Tensor]) -> float:
    """The estimated work of one op (module docstring): multiply-accumulates, or elements moved, plus NODE_WORK."""
    out = sum(t.elements for t in outputs)
    data = inputs[0] if inputs else None
    weights = inputs[1].shape if len(inputs) > 1 and inputs[1] is not None else ()
    if op_type == "CONV_2D" and len(weights) == 4:
        macs = float(out * weights[1] * weights[2] * weights[3])
    elif op_type == "DEPTHWISE_CONV_2D" and len(weights) == 4:
        macs = out * weights[1] * weights[2] * DEPTHWISE_FACTOR
    elif op_type == "FULLY_CONNECTED" and len(weights) == 2:
        macs = float(out * weights[1])
    elif op_type == "BATCH_MATMUL" and data is not None and len(data.shape) >= 2 and len(weights) >= 2:
        shared = data.shape[-1] if data.shape[-1] in weights[-2:] else data.shape[-2]
        macs = float(out * shared)
    elif op_type == "TRANSPOSE_CONV" and len(inputs) > 2 and inputs[2] is not None and len(weights) == 4:
        macs = float(inputs[2].elements * weights[0] * weights[1] * weights[2])
    elif op_type == "CONV_3D" and len(weights) == 5:
        macs = float(out * weights[0] * weights[1] * weights[2] * weights[3])
    elif op_type in _VIEW_OPS:
        macs = 0.0
    else:
        macs = ELEMENT_WORK * max(data.elements if data is not None else 0, out)
    return NODE_WORK + macs


def _type_tag(t: _Tensor | None) -> str:
    kind = t.dtype if t is not None else np.dtype(np.float32)
    return {"int8": "QS8", "uint8": "QU8", "int32": "S32"}.get(kind.name, "F32")


def _dense_tag(op_type: str, out: _Tensor | None, weights: _Tensor | None) -> str:
    """The data types of a convolution / fully connected operator, as XNNPACK names them."""
    out_kind = out.dtype.name if out is not None else "float32"
    weight_kind = weights.dtype.name if weights is not None else out_kind
    if out_kind.startswith("float"):
        return "QD8, F32, QC8W" if weight_kind == "int8" and op_type != "TRANSPOSE_CONV" else "F32"
    if out_kind == "int8" and weights is not None and weights.per_channel:
        return "QS8, QC8W" if op_type in ("FULLY_CONNECTED", "BATCH_MATMUL") else "QC8"
    return _type_tag(out)


def _xnnpack_name(op_type: str, inputs: Sequence[_Tensor | None], outputs: Sequence[_Tensor]) -> str:
    """The XNNPACK operator name a delegated builtin op is reported as (simulated; module docstring)."""
    template = XNNPACK_OPERATORS.get(op_type)
    if template is None:
        return op_type
    out = outputs[0] if outputs else None
    data = inputs[0] if inputs else None
    weights = inputs[1] if len(inputs) > 1 else None
    tag = _dense_tag(op_type, out, weights) if op_type in _DENSE else _type_tag(out)
    if op_type == "MAX_POOL_2D":
        tag = {"QS8": "S8", "QU8": "U8"}.get(tag, tag)
    pointwise = (weights is not None and len(weights.shape) == 4 and weights.shape[1:3] == (1, 1)
                 and data is not None and out is not None and data.shape[1:3] == out.shape[1:3])
    width = f"X{8 * (out.dtype.itemsize if out is not None else 4)}"
    return template.format(T=tag, X=width, K="GEMM" if pointwise else "IGEMM")


class _Graph:
    """The model's ops and tensors, with who produces and who reads each tensor."""

    def __init__(self, ops_details: Sequence[Mapping[str, Any]], tensor_details: Sequence[Mapping[str, Any]]) -> None:
        self.tensors = {int(d["index"]): _tensor(d) for d in tensor_details}
        ops = [_op(d) for d in ops_details]
        self.ops = {op.index: op for op in ops if op.type != "DELEGATE"}
        self.delegates = [op for op in ops if op.type == "DELEGATE"]
        self.producer = {t: op.index for op in self.ops.values() for t in op.outputs}
        self.readers: dict[int, int] = {}
        for op in self.ops.values():
            for t in set(op.inputs):
                self.readers[t] = self.readers.get(t, 0) + 1

    def inputs(self, op: _Op) -> list[_Tensor | None]:
        return [self.tensors.get(i) for i in op.inputs if i >= 0]

    def outputs(self, op: _Op) -> list[_Tensor]:
        return [self.tensors[i] for i in op.outputs if i in self.tensors]

    def partition(self, delegate: _Op) -> tuple[int, ...]:
        """The ops a DELEGATE node replaced: those on the way back from its outputs to its inputs."""
        inputs = set(delegate.inputs)
        covered: set[int] = set()
        pending = list(delegate.outputs)
        while pending:
            t = pending.pop()
            p = self.producer.get(t)
            if t in inputs or p is None or p in covered:
                continue
            covered.add(p)
            pending.extend(i for i in self.ops[p].inputs if i >= 0)
        return tuple(sorted(covered))

    def plan(self) -> list[tuple[tuple[int, ...], _Op | None]]:
        """The execution plan: each item the ops of a partition with its DELEGATE node, or one op run by the
        interpreter (None); in dependency order, the earliest op first where the order is free."""
        items: list[tuple[tuple[int, ...], _Op | None]] = []
        taken: set[int] = set()
        for delegate in self.delegates:
            part = tuple(i for i in self.partition(delegate) if i not in taken)
            if part:
                items.append((part, delegate))
                taken.update(part)
        items += [((i,), None) for i in self.ops if i not in taken]
        item_of = {i: k for k, (part, _) in enumerate(items) for i in part}
        needs: list[set[int]] = [set() for _ in items]
        for k, (part, _) in enumerate(items):
            for i in part:
                for t in self.ops[i].inputs:
                    p = self.producer.get(t)
                    if p is not None and item_of[p] != k:
                        needs[k].add(item_of[p])
        users: list[list[int]] = [[] for _ in items]
        for k, deps in enumerate(needs):
            for d in deps:
                users[d].append(k)
        ready = [(min(items[k][0]), k) for k, deps in enumerate(needs) if not deps]
        heapq.heapify(ready)
        waiting = [len(deps) for deps in needs]
        order: list[int] = []
        while ready:
            _, k = heapq.heappop(ready)
            order.append(k)
            for u in users[k]:
                waiting[u] -= 1
                if not waiting[u]:
                    heapq.heappush(ready, (min(items[u][0]), u))
        order += sorted(set(range(len(items))) - set(order), key=lambda k: min(items[k][0]))  # a cycle: as listed
        return [items[k] for k in order]

    def fused_clamps(self, part: tuple[int, ...], delegate: _Op) -> dict[int, int]:
        """Clamps of a partition that fuse into the op producing their input: clamp index -> producer index."""
        members = set(part)
        fused: dict[int, int] = {}
        for i in part:
            op = self.ops[i]
            if op.type not in _CLAMPS or not op.inputs:
                continue
            source = op.inputs[0]
            p = self.producer.get(source)
            if (p in members and p not in fused and self.ops[p].type in _CLAMPABLE
                    and self.readers.get(source) == 1 and source not in delegate.outputs):
                fused[i] = p
        return fused

    def builtin_node(self, i: int) -> ProfiledNode:
        op = self.ops[i]
        names = ", ".join(self.tensors[t].name if t in self.tensors else "Unknown" for t in op.outputs)
        return ProfiledNode(f"[{names}]:{i}", op.type, _op_work(op.type, self.inputs(op), self.outputs(op)))

    def delegate_nodes(self, part: tuple[int, ...], delegate: _Op) -> list[ProfiledNode]:
        fused = self.fused_clamps(part, delegate)
        extra: dict[int, float] = {}
        for clamp, into in fused.items():
            op = self.ops[clamp]
            extra[into] = extra.get(into, 0.0) + _op_work(op.type, self.inputs(op), self.outputs(op)) - NODE_WORK
        nodes: list[ProfiledNode] = []
        for i in (i for i in part if i not in fused):
            op = self.ops[i]
            name = _xnnpack_name(op.type, self.inputs(op), self.outputs(op))
            work = _op_work(op.type, self.inputs(op), self.outputs(op)) + extra.get(i, 0.0)
            nodes.append(ProfiledNode(f"Delegate/{name}:{len(nodes)}", name, work))
        return nodes


def profiled_nodes(ops_details: Sequence[Mapping[str, Any]],
                   tensor_details: Sequence[Mapping[str, Any]]) -> list[ProfiledNode]:
    """The nodes the op profiler reports in each run, in execution order, for a model as the host interpreter
    has it (`Interpreter._get_ops_details()`, `get_tensor_details()`): XNNPACK operators for the ops of its
    DELEGATE nodes' partitions, builtin nodes for the rest (module docstring)."""
    graph = _Graph(ops_details, tensor_details)
    nodes: list[ProfiledNode] = []
    for part, delegate in graph.plan():
        nodes += [graph.builtin_node(part[0])] if delegate is None else graph.delegate_nodes(part, delegate)
    return nodes


def activation_bytes(ops_details: Sequence[Mapping[str, Any]], tensor_details: Sequence[Mapping[str, Any]]) -> int:
    """The bytes of the tensors the model's ops write (what a tensor arena holds, at most)."""
    graph = _Graph(ops_details, tensor_details)
    written = {t for op in graph.ops.values() for t in op.outputs if t in graph.tensors}
    return sum(graph.tensors[t].elements * graph.tensors[t].dtype.itemsize for t in written)


def split_us(total_us: int, weights: Sequence[float]) -> list[int]:
    """`total_us` split in proportion to `weights` in whole microseconds that sum to it (largest remainders;
    equal weights when they sum to nothing)."""
    if not weights:
        return []
    total_weight = sum(weights)
    shares = [w / total_weight for w in weights] if total_weight > 0 else [1 / len(weights)] * len(weights)
    exact = [total_us * s for s in shares]
    parts = [int(x) for x in exact]
    missing = total_us - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[:max(missing, 0)]:
        parts[i] += 1
    if missing < 0:  # shares rounded up past the total: the largest part gives it back
        parts[max(range(len(parts)), key=parts.__getitem__)] += missing
    return parts
