"""The manifest written beside every exported model (an ``elasticvit-deploy.export-manifest`` document): its header,
the provenance it records (tool versions, file hashes), and reading back the hash it recorded.

Manifests written before the document header existed carry ``"schema": "elasticvit-deploy/export-manifest@1"``
instead; the export cache (``<user data>/models/``) and users' earlier export directories hold such files, so the
reader accepts them as version 1. The model's format is the manifest's ``model_format`` (``format`` is the header's).
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from supernet.documents import DocumentError, check_header, header

from .formats import registered_formats

TOOL_PACKAGES = ("elasticvit-deploy", "torch", "numpy")  # besides each registered format's own packages
MANIFEST_KIND = "export-manifest"
MANIFEST_VERSION = 1
HEADERLESS_SCHEMA = "elasticvit-deploy/export-manifest@1"  # what manifests said before the header


def manifest_header() -> dict[str, Any]:
    """The header a manifest starts with."""
    return header(MANIFEST_KIND, MANIFEST_VERSION)


def tool_versions() -> dict[str, str]:
    """Versions of Python and of every package the export uses, the registered formats' included ("not installed"
    for one that is missing)."""
    versions = {"python": platform.python_version()}
    for name in dict.fromkeys([*TOOL_PACKAGES, *(p for fmt in registered_formats() for p in fmt.packages)]):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded_sha256(path: Path) -> str | None:
    """The model hash the manifest at `path` records; None when the file is not a readable manifest (unreadable,
    not JSON, another document, a newer version), so the model is reported as not matching it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("schema") != HEADERLESS_SCHEMA:
        try:
            check_header(data, MANIFEST_KIND, MANIFEST_VERSION, str(path))
        except DocumentError:
            return None
    digest = data.get("sha256")
    return digest if isinstance(digest, str) else None
