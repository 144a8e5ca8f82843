"""ONNX: PyTorch module -> ONNX (torch.onnx dynamo exporter, opset 20), quantization with onnxruntime's tools,
the same ``elasticvit_deploy`` metadata entry as TFLite (in `metadata_props`), and the host runner (onnxruntime);
`OnnxFormat` is the `ExportFormat` of all this.

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

from supernet.arch import shorten

from .errors import ExportRequestError, ModelFileError
from .inputs import to_layout
from .quiet import native_output_captured
from .tflite_format import METADATA_NAME

OPSET = 20
QUANTIZATIONS = ("none", "fp16", "dynamic-int8", "int8")


def convert_module(module: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> bytes:
    """fp32 ONNX model of `module` at `example`'s shape (NHWC input if `channels_last`), checked by onnx.checker."""
    with native_output_captured():
        import litert_torch
        import onnx

        traced = litert_torch.to_channel_last_io(module, args=[0]).eval() if channels_last else module.eval()
        program = torch.onnx.export(traced, (to_layout(example, channels_last),), dynamo=True, opset_version=OPSET,
                                    verbose=False)
        assert program is not None  # the dynamo exporter always returns its program
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
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "q.onnx")
            src.write_bytes(fp32_model)
            if mode == "dynamic-int8":
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            elif mode == "int8":
                if not len(calibration):
                    raise ExportRequestError("int8 quantization needs calibration inputs")
                name = onnx.load_from_string(fp32_model).graph.input[0].name
                quantize_static(src, dst, _Calibration(name, calibration), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                                op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                                calibrate_method=CalibrationMethod.MinMax)
            else:
                raise ExportRequestError(f"unknown quantization {shorten(mode)}; choose from "
                                         f"{', '.join(QUANTIZATIONS)}")
            return dst.read_bytes()


def embed_metadata(model: bytes, info: dict[str, Any]) -> bytes:
    """Return `model` with `info` stored as JSON under the metadata key ``elasticvit_deploy`` (replacing any)."""
    import onnx

    proto = onnx.load_from_string(model)
    kept = [p for p in proto.metadata_props if p.key != METADATA_NAME]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, json.dumps(info, sort_keys=True)
    return proto.SerializeToString()


def read_metadata(model: bytes) -> dict[str, Any] | None:
    """The ``elasticvit_deploy`` metadata of an ONNX model, or None if it has none."""
    import onnx

    for p in onnx.load_from_string(model).metadata_props:
        if p.key == METADATA_NAME:
            return json.loads(p.value)
    return None


def op_histogram(model: bytes) -> dict[str, Any]:
    """Op histogram (most frequent first), op and initializer counts and opsets of an ONNX model."""
    import onnx

    proto = onnx.load_from_string(model)
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in proto.graph.node)
    return {"ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))), "op_count": sum(ops.values()),
            "initializers": len(proto.graph.initializer),
            "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import}}


class OnnxRunner:
    """An ONNX model in the host's onnxruntime, CPU provider (see `formats.HostRunner`)."""

    def __init__(self, model: str | Path | bytes, num_threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self._inp = self._session.get_inputs()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._inp.shape)

    @property
    def input_dtype(self) -> str:
        name = self._inp.type.removeprefix("tensor(").removesuffix(")")
        return {"float": "float32", "double": "float64"}.get(name, name)

    def run(self, x: np.ndarray) -> np.ndarray:
        """One inference on `x` (shape `input_shape` or without the batch dimension)."""
        x = np.asarray(x, dtype=np.float32).reshape(self.input_shape)
        return np.asarray(self._session.run(None, {self._inp.name: x})[0], dtype=np.float32)


class OnnxFormat:
    """ONNX models, for runtimes other than LiteRT (see `formats.ExportFormat`)."""

    name: str = "onnx"
    suffix: str = ".onnx"
    quantizations: tuple[str, ...] = QUANTIZATIONS
    native_modules: tuple[str, ...] = ("litert_torch", "onnx", "onnxruntime", "onnxruntime.quantization")
    packages: tuple[str, ...] = ("onnx", "onnxruntime", "onnxscript")

    def convert(self, module: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> bytes:
        return convert_module(module, example, channels_last)

    def quantize(self, fp32_model: bytes, quantization: str, calibration: Sequence[np.ndarray]) -> bytes:
        return quantize(fp32_model, quantization, calibration)

    def embed_metadata(self, model: bytes, info: dict[str, Any]) -> bytes:
        return embed_metadata(model, info)

    def read_metadata(self, model: bytes) -> dict[str, Any] | None:
        return read_metadata(model)

    def graph_summary(self, model: bytes) -> dict[str, Any]:
        return op_histogram(model)

    def non_builtin_ops(self, model: bytes) -> list[str]:
        return []  # onnxruntime runs every op the exporter and quantizers emit

    def manifest_extras(self, model: bytes) -> dict[str, Any]:
        return {}

    def read_model(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise ModelFileError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})") from None

    def runner(self, model: Path | bytes, num_threads: int = 1) -> OnnxRunner:
        return OnnxRunner(model, num_threads)
