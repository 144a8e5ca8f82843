"""Naming an arch in configuration: "min", "max", a published model (``elastic_M``), an arch JSON file, or the arch
itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .arch import Arch, ArchError, parse_arch, shorten
from .published import PUBLISHED, published_arch
from .sampling import max_arch, min_arch
from .space import SearchSpace
from .validation import check_arch

ARCH_NAMES: tuple[str, ...] = ("min", "max", *PUBLISHED)


def named_arch(name: str, space: SearchSpace) -> Arch:
    """The arch of one of `ARCH_NAMES`: the smallest or largest of `space`, or a published model (of the elasticvit
    space only). Raises `ArchError` for another name, or a published model asked of another space."""
    if name == "min":
        return min_arch(space)
    if name == "max":
        return max_arch(space)
    return published_arch(name, space)


def resolve_arch(spec: Any, space: SearchSpace) -> Arch:
    """The arch `spec` names in `space`: one of `ARCH_NAMES`, a path to an arch JSON file, or a canonical object /
    official list. Raises `ArchError` naming the problem (an unreadable file, bad JSON, or an arch outside the
    space)."""
    if isinstance(spec, str) and spec in ARCH_NAMES:
        return named_arch(spec, space)
    try:
        data = json.loads(Path(spec).read_text(encoding="utf-8")) if isinstance(spec, str) else spec
        return check_arch(parse_arch(data, space), space)
    except RecursionError:
        raise ArchError(f"{shorten(str(spec))}: JSON nested too deeply") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ArchError(str(e)) from None
