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

from ..errors import shorten
from ..jsontext import JSONTextError, load_json_text
from .blocks import CONVENTIONS, NNMETER_NUM_CLASSES, Block, Convention
from .tables import TableError, read_table

_BLOCK_FIELDS = {f.name for f in fields(Block)}


class MeasurementsError(ValueError):
    """A measurements file that cannot be read (the message names the file and line)."""


def parse_lut_key(key: str) -> Block:
    """The Block behind an nn-Meter hybrid-table key (nnmeter convention: floor sides)."""
    p = key.split("_")
    try:
        if p[0] == "firstconv":
            hw, cin, cout, s, k = map(int, p[1:6])
            return Block("firstconv", hw, hw // s, cin, cout, s, kernel=k)
        if p[0] == "conv" and p[6:8] == ["hard", "swish"]:
            hw, cin, cout, e, s = map(int, p[1:6])
            return Block("conv", hw, hw // s, cin, cout, s, e, int(p[8]), {"se": True, "nose": False}[p[9]])
        if p[0] == "transds":
            hw, cin, cout, s, e = map(int, p[1:6])
            return Block("transds", hw, hw // s, cin, cout, s, e, 3, True)
        if p[0] == "transattn" and p[3:5] == ["hard", "swish"]:
            hw, c, v = int(p[1]), int(p[2]), int(p[5])
            return Block("transattn", hw, hw, c, c, v_scale=v)
        if p[0] == "transffn":
            hw, c, mlp = map(int, p[1:4])
            return Block("transffn", hw, hw, c, c, mlp_ratio=mlp)
        if p[0] == "mbpool":
            hw, c, head, e = map(int, p[1:5])
            return Block("mbpool", hw, 1, c, NNMETER_NUM_CLASSES, expansion=e, head_width=head,
                         classes=NNMETER_NUM_CLASSES)
    except (ValueError, IndexError, KeyError):
        pass
    raise MeasurementsError(f"not an nn-Meter block key: {shorten(key)}")


def _line(obj: object, where: str, convention: Convention | None) -> tuple[Block, float, Convention]:
    if not isinstance(obj, dict) or "ms" not in obj:
        raise MeasurementsError(f"{where}: expected an object with 'ms' and 'block' or 'key'")
    ms = obj["ms"]
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not math.isfinite(ms) or ms <= 0:
        raise MeasurementsError(f"{where}: 'ms' must be a positive number, got {shorten(ms)}")
    if "key" in obj:
        return parse_lut_key(str(obj["key"])), float(ms), "nnmeter"
    spec = obj.get("block")
    conv = obj.get("convention", convention or "graph")
    if conv not in CONVENTIONS:
        raise MeasurementsError(f"{where}: unknown convention {shorten(conv)}")
    if not isinstance(spec, dict) or set(spec) - _BLOCK_FIELDS or "family" not in spec:
        raise MeasurementsError(f"{where}: 'block' must be an object of Block fields")
    try:
        return Block(**spec), float(ms), conv
    except TypeError as e:
        raise MeasurementsError(f"{where}: bad block ({e})") from None


def read_measurements(path: str | Path) -> tuple[list[Block], list[float], Convention]:
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
        try:
            table = read_table(path)
        except TableError as e:
            raise MeasurementsError(str(e)) from None
        blocks = [parse_lut_key(k) for k in table]
        return blocks, list(table.values()), "nnmeter"
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
    return blocks, ms, conventions.pop()


def measurement_line(block: Block, ms: float, convention: Convention) -> str:
    return json.dumps({"block": block.to_dict(), "ms": float(ms), "convention": convention},
                      separators=(",", ":"))
