"""TFLite: PyTorch module -> fp32 flatbuffer (litert-torch), post-training quantization (ai-edge-quantizer), the
self-describing metadata entry every exported model carries, and the host runner (the LiteRT interpreter);
`TFLiteFormat` is the `ExportFormat` of all this.

Quantization modes, all applied to the verified fp32 flatbuffer:
- ``fp16``: weights stored as float16, dequantized to float32 at load (float compute, half the size);
- ``dynamic-int8``: int8 per-channel weights, activations quantized on the fly (float32 input/output);
- ``int8``: full integer, int8 weights and activations calibrated on sample inputs; input and output tensors
  are int8 (quantize inputs / dequantize outputs with the tensors' scale and zero point).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.arch import shorten

from .errors import ExportRequestError
from .inputs import to_layout
from .quiet import native_output_captured
from .tflite_check import check_tflite
from .tflite_graph import inspect_graph, xnnpack_status

QUANTIZATIONS = ("none", "fp16", "dynamic-int8", "int8")
METADATA_NAME = "elasticvit_deploy"


def convert_module(module: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> bytes:
    """fp32 TFLite flatbuffer of `module` traced at `example`'s shape (NCHW example; NHWC model input if
    `channels_last`, so the converter folds the layout change instead of adding a transpose)."""
    with native_output_captured():
        import litert_torch

        traced = litert_torch.to_channel_last_io(module, args=[0]).eval() if channels_last else module.eval()
        edge = litert_torch.convert(traced, (to_layout(example, channels_last),))
        return bytes(edge.model_content())


def _recipe(mode: str) -> Any:
    from ai_edge_quantizer import recipe, recipe_manager

    if mode == "dynamic-int8":
        return recipe.dynamic_wi8_afp32()
    if mode == "int8":
        return recipe.static_wi8_ai8()
    if mode == "fp16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(regex=".*", operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
                                       num_bits=16, algorithm_key=recipe.AlgorithmName.FLOAT_CASTING)
        return manager.get_quantization_recipe()
    raise ExportRequestError(f"unknown quantization {shorten(mode)}; choose from {', '.join(QUANTIZATIONS)}")


def quantize(fp32_model: bytes, mode: str, calibration: Sequence[np.ndarray] = ()) -> bytes:
    """Quantize an fp32 flatbuffer. `calibration` (inputs in the model's layout, batch 1) is used by ``int8``."""
    if mode == "none":
        return fp32_model
    with native_output_captured():
        from ai_edge_quantizer import quantizer

        q = quantizer.Quantizer(bytearray(fp32_model), _recipe(mode))
        result = None
        if q.need_calibration:
            if not len(calibration):
                raise ExportRequestError("int8 quantization needs calibration inputs")
            (name,) = _input_names(fp32_model)
            result = q.calibrate({"serving_default": [{name: _batch1(x)} for x in calibration]})
        out = q.quantize(result, enable_progress_bar=False, enable_progress_report=False)
        return bytes(out.quantized_model)


def _batch1(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32)[None])


def _input_names(model: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_content=model).get_signature_list()["serving_default"]
    return list(sig["inputs"])


def embed_metadata(model: bytes, info: dict[str, Any]) -> bytes:
    """Return `model` with `info` stored as JSON under the metadata name ``elasticvit_deploy`` (replacing any)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    blob = np.frombuffer(json.dumps(info, sort_keys=True).encode(), dtype=np.uint8)
    obj.metadata = [m for m in (obj.metadata or []) if _name(m.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = blob
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(obj.buffers) - 1
    obj.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def read_metadata(model: bytes) -> dict[str, Any] | None:
    """The ``elasticvit_deploy`` metadata of a TFLite flatbuffer, or None if it has none."""
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    for m in obj.metadata or []:
        if _name(m.name) == METADATA_NAME:
            return json.loads(bytes(np.asarray(obj.buffers[m.buffer].data, dtype=np.uint8)).decode())
    return None


def _name(raw: str | bytes | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


class TFLiteRunner:
    """A TFLite model in the host's LiteRT interpreter (see `formats.HostRunner`)."""

    def __init__(self, model: str | Path | bytes, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        with native_output_captured():
            self._it = Interpreter(**source, num_threads=num_threads)
            self._it.allocate_tensors()
        self._inp = self._it.get_input_details()[0]
        self._out = self._it.get_output_details()[0]

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._inp["dtype"]).name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._inp["shape"])

    def run(self, x: np.ndarray) -> np.ndarray:
        """One inference on `x` (shape `input_shape` or without the batch dimension)."""
        x = np.asarray(x, dtype=np.float32).reshape(self.input_shape)
        dtype = np.dtype(self._inp["dtype"])
        if dtype != np.float32:
            scale, zero = self._inp["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self._it.set_tensor(self._inp["index"], x)
        self._it.invoke()
        y = self._it.get_tensor(self._out["index"])
        if np.dtype(self._out["dtype"]) != np.float32:
            scale, zero = self._out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


class TFLiteFormat:
    """TFLite flatbuffers, what the phones run (see `formats.ExportFormat`)."""

    name: str = "tflite"
    suffix: str = ".tflite"
    quantizations: tuple[str, ...] = QUANTIZATIONS
    native_modules: tuple[str, ...] = ("ai_edge_litert.interpreter", "litert_torch")
    packages: tuple[str, ...] = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer")

    def convert(self, module: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> bytes:
        return convert_module(module, example, channels_last)

    def quantize(self, fp32_model: bytes, quantization: str, calibration: Sequence[np.ndarray]) -> bytes:
        return quantize(fp32_model, quantization, calibration)

    def embed_metadata(self, model: bytes, info: dict[str, Any]) -> bytes:
        return embed_metadata(model, info)

    def read_metadata(self, model: bytes) -> dict[str, Any] | None:
        return read_metadata(model)

    def graph_summary(self, model: bytes) -> dict[str, Any]:
        return inspect_graph(model).to_dict()

    def non_builtin_ops(self, model: bytes) -> list[str]:
        graph = inspect_graph(model)
        return graph.flex_ops + graph.custom_ops

    def manifest_extras(self, model: bytes) -> dict[str, Any]:
        return {"xnnpack": xnnpack_status(model)}

    def read_model(self, path: Path) -> bytes:
        return check_tflite(path)

    def runner(self, model: Path | bytes, num_threads: int = 1) -> TFLiteRunner:
        return TFLiteRunner(model, num_threads)
