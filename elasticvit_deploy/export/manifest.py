"""Provenance recorded with every exported model: tool versions and file hashes."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata

TOOL_PACKAGES = ("elasticvit-deploy", "torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "onnx",
                 "onnxruntime", "onnxscript", "numpy")
MANIFEST_SCHEMA = "elasticvit-deploy/export-manifest@1"


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOL_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
