"""Naming an arch in configuration: "min", "max", an arch JSON file, or the arch itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .arch import Arch, ArchError, parse_arch, shorten
from .sampling import max_arch, min_arch
from .space import SearchSpace
from .validation import check_arch


def resolve_arch(spec: Any, space: SearchSpace) -> Arch:
    """The arch `spec` names in `space`: "min" or "max", a path to an arch JSON file, or a canonical object / official
    list. Raises `ArchError` naming the problem (an unreadable file, bad JSON, or an arch outside the space)."""
    if spec in ("min", "max"):
        return min_arch(space) if spec == "min" else max_arch(space)
    try:
        data = json.loads(Path(spec).read_text(encoding="utf-8")) if isinstance(spec, str) else spec
        return check_arch(parse_arch(data, space), space)
    except RecursionError:
        raise ArchError(f"{shorten(str(spec))}: JSON nested too deeply") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ArchError(str(e)) from None
