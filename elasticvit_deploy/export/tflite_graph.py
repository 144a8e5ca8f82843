"""What is inside a TFLite flatbuffer: op histogram, tensor count, custom/Flex ops, and XNNPACK delegation."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .quiet import native_output_captured


@dataclass(frozen=True)
class TFLiteGraph:
    ops: dict[str, int]             # builtin op name (or custom code) -> count, all subgraphs
    op_count: int
    tensor_count: int
    subgraphs: int
    custom_ops: list[str] = field(default_factory=list)  # custom codes that are not Flex
    flex_ops: list[str] = field(default_factory=list)    # SELECT_TF_OPS kernels (custom codes "Flex...")

    @property
    def builtin_only(self) -> bool:
        return not self.custom_ops and not self.flex_ops

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), builtin_only=self.builtin_only)


def inspect_graph(model: bytes) -> TFLiteGraph:
    """Read the op histogram and tensor count straight from the flatbuffer (no interpreter needed)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops: Counter[str] = Counter()
    custom: set[str] = set()
    flex: set[str] = set()
    tensors = 0
    for sub in obj.subgraphs:
        tensors += len(sub.tensors or [])
        for op in sub.operators or []:
            code = obj.operatorCodes[op.opcodeIndex]
            builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
            if builtin == schema.BuiltinOperator.CUSTOM:
                name = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
                (flex if name.startswith("Flex") else custom).add(name)
            else:
                name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
            ops[name] += 1
    return TFLiteGraph(dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))), sum(ops.values()), tensors,
                       len(obj.subgraphs), sorted(custom), sorted(flex))


def xnnpack_status(model: bytes) -> dict[str, Any]:
    """Load `model` in the host LiteRT interpreter with its default delegates and report whether XNNPACK took
    over the graph: the number of delegate partitions (1 with an fp32 model means one XNNPACK kernel runs the
    whole graph; quantized graphs are often split into several) next to the graph's node count."""
    from ai_edge_litert.interpreter import Interpreter

    with native_output_captured():
        interpreter = Interpreter(model_content=model)
        interpreter.allocate_tensors()
        nodes = interpreter._get_ops_details()  # noqa: SLF001 - the only view of the delegated node list
    partitions = sum(1 for n in nodes if n["op_name"] == "DELEGATE")
    return {"delegate": "XNNPACK", "applied": partitions > 0, "partitions": partitions,
            "graph_nodes": len(nodes) - partitions}
