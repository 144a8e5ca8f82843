"""Reading archs given on the command line (a JSON file or `-` for stdin)."""

from __future__ import annotations

import sys
from pathlib import Path

from supernet.arch import Arch, ArchError, parse_arch
from supernet.arch_spec import ARCH_NAMES, named_arch
from supernet.space import SearchSpace
from supernet.validation import check_arch

from .errors import UserError
from .jsontext import JSONTextError, load_json_text


def read_text(source: str) -> str:
    """The text of the file `source`, or of stdin for ``-``; a one-line `UserError` if it cannot be read."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: no such file")
    if path.is_dir():
        raise UserError(f"{source}: is a directory, expected a JSON file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{source}: cannot read ({e.__class__.__name__}: {e})") from None


def load_arch(source: str, space: SearchSpace) -> Arch:
    """Parse and validate an arch (canonical object or official 10-element list) from a file or stdin."""
    name = "stdin" if source == "-" else source
    text = read_text(source)
    data = load_json_text(text, name)
    try:
        return check_arch(parse_arch(data, space), space)
    except ArchError as e:
        raise UserError(f"{name}: {e}") from None


def load_archs(source: str, space: SearchSpace) -> list[Arch]:
    """Archs from `source`: "min", "max", a published model (``elastic_M``, elasticvit space), or a file (or - for
    stdin) holding one arch, a JSON list of canonical objects, or JSON lines (one arch per line, as `sample`
    prints)."""
    if source in ARCH_NAMES:
        try:
            return [named_arch(source, space)]
        except ArchError as e:
            raise UserError(str(e)) from None
    name = "stdin" if source == "-" else source
    text = read_text(source)
    try:
        whole = load_json_text(text, name)
        items = whole if isinstance(whole, list) and whole and all(isinstance(d, dict) for d in whole) else [whole]
        where = [name] * len(items)
    except JSONTextError:
        items, where = [], []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                items.append(load_json_text(line, f"{name} line {lineno}"))
                where.append(f"{name} line {lineno}")
    if not items:
        raise UserError(f"{name}: no arch found")
    out = []
    for data, label in zip(items, where, strict=True):
        try:
            out.append(check_arch(parse_arch(data, space), space))
        except ArchError as e:
            raise UserError(f"{label}: {e}") from None
    return out
