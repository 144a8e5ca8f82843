"""The header every document the toolkit writes carries: ``{"format": "elasticvit-deploy.<kind>", "version": N}``
as its first two keys (JSON files, JSON output, checkpoint payloads, saved states). Readers check both before they
look at anything else, so a file of another kind or a newer layout is refused by name instead of guessed from keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .arch import shorten
from .errors import BadInput

__all__ = ["DocumentError", "PREFIX", "document_kind", "check_header", "header"]

PREFIX = "elasticvit-deploy."


class DocumentError(BadInput):
    """A document is not of the expected format, or has a version this release cannot read."""


def header(kind: str, version: int) -> dict[str, Any]:
    """The two header keys of a document of `kind` (e.g. ``"measurement"``) at layout `version`."""
    return {"format": PREFIX + kind, "version": int(version)}


def document_kind(data: Any) -> str | None:
    """The kind named by `data`'s header (``"measurement"`` for ``elasticvit-deploy.measurement``), or None."""
    fmt = data.get("format") if isinstance(data, Mapping) else None
    return fmt[len(PREFIX):] if isinstance(fmt, str) and fmt.startswith(PREFIX) else None


def check_header(data: Any, kind: str, versions: int | tuple[int, ...], where: str = "document") -> int:
    """The version of `data`, checked to be a document of `kind` at one of `versions`; `DocumentError` naming
    `where` and what was found otherwise."""
    accepted = (versions,) if isinstance(versions, int) else tuple(versions)
    found = document_kind(data)
    if found != kind:
        got = "no format header" if found is None else f"a {shorten(found)} document"
        raise DocumentError(f"{where}: expected an {PREFIX}{kind} document, found {got}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in accepted:
        raise DocumentError(f"{where}: {PREFIX}{kind} version {shorten(version)} is not readable by this "
                            f"release (reads {', '.join(map(str, accepted))})")
    return version
