"""Block measurement files: what `predictor fit` reads and `predictor build` writes.

Accepted inputs:
- an nn-Meter table (a JSON object of block key -> ms), read in the ``nnmeter`` convention;
- JSON lines, one measured block per line: ``{"block": {<Block fields>}, "ms": 1.23, "convention": "graph"}``
  or ``{"key": "<nn-Meter key>", "ms": 1.23}``. The builder writes this form (``blocks.jsonl``).
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

from ..errors import BadInput, shorten
from ..jsontext import JSONTextError, load_json_text
from .blocks import CONVENTIONS, NNMETER_NUM_CLASSES, Block, Convention
from .tables import read_table

_BLOCK_FIELDS = {f.name for f in fields(Block)}


class MeasurementsError(BadInput):
    """A measurements file that cannot be read (the message names the file and line)."""


def _ints(fields: list[str], count: int) -> list[int] | None:
    """`fields` as `count` positive integers, or None if they are not exactly that."""
    if len(fields) != count or not all(f.isascii() and f.isdigit() and int(f) > 0 for f in fields):
        return None
    return [int(f) for f in fields]


def _table_block(p: list[str]) -> Block | None:
    family = p[0]
    if family == "firstconv" and (v := _ints(p[1:6], 5)):
        hw, cin, cout, s, k = v
        return Block("firstconv", hw, hw // s, cin, cout, s, kernel=k)
    if family == "conv" and p[6:8] == ["hard", "swish"] and p[9:10] in (["se"], ["nose"]) \
            and (v := _ints(p[1:6] + p[8:9], 6)):
        hw, cin, cout, e, s, k = v
        return Block("conv", hw, hw // s, cin, cout, s, e, k, p[9] == "se")
    if family == "transds" and (v := _ints(p[1:6], 5)):
        hw, cin, cout, s, e = v
        return Block("transds", hw, hw // s, cin, cout, s, e, 3, True)
    if family == "transattn" and p[3:5] == ["hard", "swish"] and (v := _ints(p[1:3] + p[5:6], 3)):
        hw, c, vs = v
        return Block("transattn", hw, hw, c, c, v_scale=vs)
    if family == "transffn" and (v := _ints(p[1:4], 3)):
        hw, c, mlp = v
        return Block("transffn", hw, hw, c, c, mlp_ratio=mlp)
    if family == "mbpool" and (v := _ints(p[1:5], 4)):
        hw, c, head, e = v
        return Block("mbpool", hw, 1, c, NNMETER_NUM_CLASSES, expansion=e, head_width=head,
                     classes=NNMETER_NUM_CLASSES)
    return None


def parse_table_key(key: str) -> Block:
    """The Block behind an nn-Meter hybrid-table key (nnmeter convention: floor sides)."""
    block = _table_block(key.split("_"))
    if block is None:
        raise MeasurementsError(f"not an nn-Meter block key: {shorten(key)}")
    return block


def _line(obj: object, where: str, convention: Convention | None) -> tuple[Block, float, Convention]:
    if not isinstance(obj, dict) or "ms" not in obj:
        raise MeasurementsError(f"{where}: expected an object with 'ms' and 'block' or 'key'")
    ms = obj["ms"]
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not math.isfinite(ms) or ms <= 0:
        raise MeasurementsError(f"{where}: 'ms' must be a positive number, got {shorten(ms)}")
    if "key" in obj:
        return parse_table_key(str(obj["key"])), float(ms), "nnmeter"
    given = obj.get("block")
    conv = obj.get("convention", convention or "graph")
    if conv not in CONVENTIONS:
        raise MeasurementsError(f"{where}: unknown convention {shorten(conv)}")
    if not isinstance(given, dict) or set(given) - _BLOCK_FIELDS or "family" not in given:
        raise MeasurementsError(f"{where}: 'block' must be an object of Block fields")
    try:
        return Block(**given), float(ms), conv
    except TypeError as e:
        raise MeasurementsError(f"{where}: bad block ({e})") from None


class MeasuredBlocks(NamedTuple):
    """Measured blocks, their latencies (ms) and the one block convention they follow."""

    blocks: list[Block]
    ms: list[float]
    convention: Convention


def read_measurements(path: str | Path) -> MeasuredBlocks:
    """Blocks, their ms and their (single) convention from a table or a JSON-lines file."""
    path = Path(path)
    if not path.is_file():
        raise MeasurementsError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MeasurementsError(f"{path}: cannot read ({e.__class__.__name__})") from None
    try:
        whole = load_json_text(text, str(path))
    except JSONTextError:
        whole = None
    if isinstance(whole, dict) and "ms" not in whole:  # a table, not one measurement line
        table = read_table(path)
        return MeasuredBlocks([parse_table_key(k) for k in table], list(table.values()), "nnmeter")
    blocks, ms, conventions = [], [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = load_json_text(line, f"{path}:{n}")
        except JSONTextError as e:
            raise MeasurementsError(str(e)) from None
        block, value, conv = _line(obj, f"{path}:{n}", None)
        blocks.append(block)
        ms.append(value)
        conventions.add(conv)
    if not blocks:
        raise MeasurementsError(f"{path}: no measurements")
    if len(conventions) > 1:
        raise MeasurementsError(f"{path}: mixes block conventions {sorted(conventions)}")
    return MeasuredBlocks(blocks, ms, conventions.pop())


def measurement_line(block: Block, ms: float, convention: Convention) -> str:
    """One line of a blocks.jsonl file (a JSON-lines log, one record a line, so it carries no document header)."""
    return json.dumps({"block": block.to_dict(), "ms": float(ms), "convention": convention},
                      separators=(",", ":"))
