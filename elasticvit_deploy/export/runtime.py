"""Run an exported model on the host: the LiteRT interpreter for TFLite, onnxruntime for ONNX.

Both runners load a file path or the model's bytes, take inputs in the model's own layout with batch 1 and
return float32 outputs, handling int8 input and output tensors of full-integer models through their scale and
zero point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .quiet import native_output_captured


class TFLiteRunner:
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


class OnnxRunner:
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
        x = np.asarray(x, dtype=np.float32).reshape(self.input_shape)
        return np.asarray(self._session.run(None, {self._inp.name: x})[0], dtype=np.float32)


def open_runner(model: str | Path | bytes, fmt: str, num_threads: int = 1) -> TFLiteRunner | OnnxRunner:
    return TFLiteRunner(model, num_threads) if fmt == "tflite" else OnnxRunner(model, num_threads)
