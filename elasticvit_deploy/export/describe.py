"""Read back what an exported model file says about itself (embedded metadata, graph) and check its manifest: an
``elasticvit-deploy.model-info`` document, what ``inspect --json`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernet.documents import header

from .errors import ModelFileError
from .formats import format_for_path
from .manifest import recorded_sha256, sha256_bytes

__all__ = ["MODEL_INFO_KIND", "MODEL_INFO_VERSION", "ModelFileError", "ModelInfo", "describe_model"]

MODEL_INFO_KIND = "model-info"
MODEL_INFO_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself, and whether the manifest beside it matches it (`format`: the model's,
    "model_format" in the document, whose "format" is its header)."""

    path: Path
    format: str
    size_bytes: int
    sha256: str
    metadata: dict[str, Any] | None     # the embedded ``elasticvit_deploy`` entry; None for foreign models
    graph: dict[str, Any]               # the format's graph summary ("ops", "op_count", ...)
    manifest_path: Path | None          # None: no manifest beside the file
    manifest_matches: bool | None       # None without a manifest; False for one that is unreadable or foreign

    def to_dict(self) -> dict[str, Any]:
        """The ``elasticvit-deploy.model-info`` document."""
        return {**header(MODEL_INFO_KIND, MODEL_INFO_VERSION), "path": str(self.path), "model_format": self.format,
                "size_bytes": self.size_bytes, "sha256": self.sha256, "metadata": self.metadata, "graph": self.graph,
                "manifest": {"path": None if self.manifest_path is None else str(self.manifest_path),
                             "matches": self.manifest_matches}}


def describe_model(path: str | Path) -> ModelInfo:
    """Read the model file at `path`: `ModelFileError` for one that is missing, of an unknown type or unreadable as
    its format."""
    path = Path(path)
    fmt = format_for_path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    data = fmt.read_model(path)
    try:
        metadata = fmt.read_metadata(data)
        graph = fmt.graph_summary(data)
    except Exception as e:  # flatbuffer/protobuf parsers raise assorted types on garbage
        raise ModelFileError(f"{path}: not a readable {fmt.name} model ({e.__class__.__name__})") from None
    digest = sha256_bytes(data)
    beside = path.with_name(path.name + ".json")
    if not beside.is_file():
        return ModelInfo(path, fmt.name, len(data), digest, metadata, graph, None, None)
    return ModelInfo(path, fmt.name, len(data), digest, metadata, graph, beside, recorded_sha256(beside) == digest)
