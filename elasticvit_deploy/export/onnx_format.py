"""ONNX: PyTorch module -> ONNX (torch.onnx dynamo exporter, opset 20), quantization with onnxruntime's tools,
and the same ``elasticvit_deploy`` metadata entry as TFLite (in `metadata_props`).

Quantization modes:
- ``fp16``: float16 weights and compute inside, float32 input/output (onnxruntime's float16 converter);
- ``dynamic-int8``: int8 weights, activations quantized on the fly (`quantize_dynamic`);
- ``int8``: static QDQ, per-channel int8 weights and int8 activations calibrated on sample inputs, applied to
  Conv/MatMul/Gemm (the compute ops; onnxruntime's per-channel pass mis-sizes scales of the other ops here).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .quiet import native_output_captured
from .tflite_format import METADATA_NAME, to_layout

OPSET = 20


def export_module(module: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> bytes:
    """fp32 ONNX model of `module` at `example`'s shape (NHWC input if `channels_last`), checked by onnx.checker."""
    with native_output_captured():
        import litert_torch
        import onnx

        target = litert_torch.to_channel_last_io(module, args=[0]).eval() if channels_last else module.eval()
        program = torch.onnx.export(target, (to_layout(example, channels_last),), dynamo=True, opset_version=OPSET,
                                    verbose=False)
        model = program.model_proto
        # The exporter's intermediate shape annotations can disagree with onnx's own inference (onnxruntime's
        # quantizer then refuses the model); they are optional, so drop them and let consumers infer shapes.
        del model.graph.value_info[:]
        onnx.checker.check_model(model, full_check=True)
        return model.SerializeToString()


class _Calibration:
    """onnxruntime CalibrationDataReader over a list of single inputs."""

    def __init__(self, name: str, samples: Sequence[np.ndarray]):
        self._items = iter([{name: np.ascontiguousarray(np.asarray(x, dtype=np.float32)[None])} for x in samples])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize(fp32_model: bytes, mode: str, calibration: Sequence[np.ndarray] = ()) -> bytes:
    """Quantize an fp32 ONNX model (see the module docstring for the modes)."""
    if mode == "none":
        return fp32_model
    with native_output_captured():
        import onnx

        if mode == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            return convert_float_to_float16(onnx.load_from_string(fp32_model), keep_io_types=True).SerializeToString()
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, \
            quantize_static

        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "q.onnx")
            src.write_bytes(fp32_model)
            if mode == "dynamic-int8":
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            elif mode == "int8":
                if not len(calibration):
                    raise ValueError("int8 quantization needs calibration inputs")
                name = onnx.load_from_string(fp32_model).graph.input[0].name
                quantize_static(src, dst, _Calibration(name, calibration), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                                op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                                calibrate_method=CalibrationMethod.MinMax)
            else:
                raise ValueError(f"unknown quantization {mode!r}")
            return dst.read_bytes()


def embed_metadata(model: bytes, info: dict[str, Any]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model)
    kept = [p for p in proto.metadata_props if p.key != METADATA_NAME]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, json.dumps(info, sort_keys=True)
    return proto.SerializeToString()


def read_metadata(model: bytes) -> dict[str, Any] | None:
    import onnx

    for p in onnx.load_from_string(model).metadata_props:
        if p.key == METADATA_NAME:
            return json.loads(p.value)
    return None


def op_histogram(model: bytes) -> dict[str, Any]:
    import onnx

    proto = onnx.load_from_string(model)
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in proto.graph.node)
    return {"ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))), "op_count": sum(ops.values()),
            "initializers": len(proto.graph.initializer),
            "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import}}
