"""Parsing JSON that users hand in (archs, measurements, tables): every way it can fail is one `JSONTextError`."""

from __future__ import annotations

import json
from typing import Any

from .errors import BadInput


class JSONTextError(BadInput):
    """User-supplied JSON that does not parse; the message names the source and the problem."""


def load_json_text(text: str, name: str) -> Any:
    """`json.loads(text)`, with malformed, too deeply nested or out-of-range input as a `JSONTextError` naming
    `name` (json raises RecursionError on deep nesting and ValueError on integers of over 4300 digits)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise JSONTextError(f"{name}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise JSONTextError(f"{name}: JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer literal too long to convert
        raise JSONTextError(f"{name}: unreadable JSON ({str(e).split(';')[0]})") from None
