"""Export formats: what a format does (`ExportFormat`), the host runner it opens (`HostRunner`), and the registry
the export pipeline, `inspect` and the command line take every format from.

Adding a format is one module implementing `ExportFormat`, its run of the contract test
(``tests/test_export_formats.py`` checks every registered format the same way) and one `register_format` line in
``elasticvit_deploy/export/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from supernet.arch import shorten

from .errors import ExportRequestError, ModelFileError

__all__ = ["QUANTIZATIONS", "ExportFormat", "HostRunner", "format_for_path", "format_names", "get_format",
           "quantization_names", "quantization_tag", "register_format", "registered_formats"]

QUANTIZATIONS: dict[str, str] = {"none": "fp32", "fp16": "fp16", "dynamic-int8": "dynint8", "int8": "int8"}
"""The toolkit's quantization names (what ``--quantize`` takes), each with the tag output file names carry. Every
format supports a subset; the modes themselves are described by each format's module."""


class HostRunner(Protocol):
    """A model loaded in this host's runtime for the format: batch-1 inputs in the model's own layout, float32
    outputs (a full-integer model's int8 input and output quantized and dequantized by the runner)."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def input_dtype(self) -> str: ...

    def run(self, x: np.ndarray) -> np.ndarray:
        """One inference on `x` (shape `input_shape`, or without the batch dimension)."""
        ...


class ExportFormat(Protocol):
    """One model format the export writes. Every model it converts, quantizes or reads is the file's bytes."""

    name: str                        # what ``--format`` takes, the manifest's "format"
    suffix: str                      # of the files, e.g. ".tflite"
    quantizations: tuple[str, ...]   # the `QUANTIZATIONS` it supports, "none" (fp32) first
    native_modules: tuple[str, ...]  # native extensions its converter and runtime import (loaded with Ctrl-C held)
    packages: tuple[str, ...]        # distributions its converter and runtime come from (versions in manifests)

    def convert(self, module: torch.nn.Module, example: torch.Tensor, channels_last: bool) -> bytes:
        """The fp32 model of `module` traced at the NCHW `example`'s shape (NHWC input when `channels_last`)."""
        ...

    def quantize(self, fp32_model: bytes, quantization: str, calibration: Sequence[np.ndarray]) -> bytes:
        """`fp32_model` quantized (`calibration`: batch-1 inputs in the model's layout, used by ``int8``)."""
        ...

    def embed_metadata(self, model: bytes, info: dict[str, Any]) -> bytes:
        """`model` with `info` stored as JSON under the name ``elasticvit_deploy`` (replacing any)."""
        ...

    def read_metadata(self, model: bytes) -> dict[str, Any] | None:
        """The ``elasticvit_deploy`` metadata of `model`, or None for a model this tool did not write."""
        ...

    def graph_summary(self, model: bytes) -> dict[str, Any]:
        """What is in the graph, JSON-able: at least ``ops`` (op name -> count, most frequent first) and
        ``op_count``. Written to the manifest and shown by ``inspect``."""
        ...

    def non_builtin_ops(self, model: bytes) -> list[str]:
        """Ops that need runtime support beyond the format's builtin set on the phone (TFLite's Flex and custom
        ops); the export refuses a graph with any unless they are allowed."""
        ...

    def manifest_extras(self, model: bytes) -> dict[str, Any]:
        """Format-specific manifest entries (TFLite: whether XNNPACK takes the graph)."""
        ...

    def read_model(self, path: Path) -> bytes:
        """The bytes of the model file at `path`, checked to be of this format as far as that is cheap;
        `ModelFileError` naming the file otherwise."""
        ...

    def runner(self, model: Path | bytes, num_threads: int = 1) -> HostRunner:
        """`model` (a file or its bytes) loaded in this host's runtime."""
        ...


_REGISTRY: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add `fmt` to the formats the toolkit exports and reads (in registration order: the first is the default)."""
    if fmt.name in _REGISTRY or any(f.suffix == fmt.suffix for f in _REGISTRY.values()):
        raise ValueError(f"a format named {fmt.name!r} or with suffix {fmt.suffix!r} is already registered")
    unknown = [q for q in fmt.quantizations if q not in QUANTIZATIONS]
    if unknown or not fmt.quantizations or fmt.quantizations[0] != "none":
        raise ValueError(f"format {fmt.name!r}: quantizations must start with 'none' and come from "
                         f"{', '.join(QUANTIZATIONS)}; got {', '.join(fmt.quantizations)}")
    _REGISTRY[fmt.name] = fmt
    return fmt


def registered_formats() -> tuple[ExportFormat, ...]:
    """The registered formats, the default first."""
    return tuple(_REGISTRY.values())


def format_names() -> tuple[str, ...]:
    """The registered formats' names, the default first."""
    return tuple(_REGISTRY)


def get_format(name: str) -> ExportFormat:
    """The registered format `name`; `ExportRequestError` naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ExportRequestError(f"unknown format {shorten(name)}; choose from {', '.join(_REGISTRY)}") from None


def format_for_path(path: Path) -> ExportFormat:
    """The format of the model file `path`, by its suffix; `ModelFileError` naming the known suffixes otherwise."""
    suffix = path.suffix.lower()
    for fmt in _REGISTRY.values():
        if fmt.suffix == suffix:
            return fmt
    expected = " or ".join(f.suffix for f in _REGISTRY.values())
    raise ModelFileError(f"{path}: unknown model type {suffix or '(no extension)'}; expected {expected}")


def quantization_names() -> tuple[str, ...]:
    """Every quantization some registered format supports, in `QUANTIZATIONS` order."""
    return tuple(q for q in QUANTIZATIONS if any(q in f.quantizations for f in _REGISTRY.values()))


def quantization_tag(quantization: str) -> str:
    """The tag of `quantization` in output file names (``none`` -> ``fp32``)."""
    return QUANTIZATIONS[quantization]
