"""Read back what an exported model file says about itself (embedded metadata, graph) and check its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import onnx_format, tflite_format
from .manifest import sha256_bytes
from .tflite_graph import inspect_graph


class ModelFileError(ValueError):
    """Not a readable TFLite/ONNX model file."""


def model_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".tflite", ".onnx"):
        raise ModelFileError(f"{path}: unknown model type {suffix or '(no extension)'}; expected .tflite or .onnx")
    return suffix[1:]


def describe_model(path: str | Path) -> dict[str, Any]:
    """Format, size, sha256, the embedded ``elasticvit_deploy`` metadata (None for foreign models), the op
    histogram, and whether a manifest beside the file matches it."""
    path = Path(path)
    fmt = model_format(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    data = path.read_bytes()
    try:
        if fmt == "tflite":
            metadata = tflite_format.read_metadata(data)
            graph = inspect_graph(data).to_dict()
        else:
            metadata = onnx_format.read_metadata(data)
            graph = onnx_format.op_histogram(data)
    except Exception as e:  # flatbuffer/protobuf parsers raise assorted types on garbage
        raise ModelFileError(f"{path}: not a readable {fmt} model ({e.__class__.__name__})") from None
    digest = sha256_bytes(data)
    manifest_path = path.with_name(path.name + ".json")
    manifest: dict[str, Any] = {"path": None, "matches": None}
    if manifest_path.is_file():
        try:
            recorded = json.loads(manifest_path.read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError):
            recorded = None
        manifest = {"path": str(manifest_path), "matches": recorded == digest}
    return {"path": str(path), "format": fmt, "size_bytes": len(data), "sha256": digest, "metadata": metadata,
            "graph": graph, "manifest": manifest}
