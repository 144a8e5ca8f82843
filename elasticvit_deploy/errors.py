"""The toolkit's errors (one hierarchy, from `supernet.errors`) and the helpers that keep a message one short line
whatever the user gave (`shorten` for quoted values, `one_line` for the whole message). The command line turns any
`ToolkitError` into ``error: <one line>`` and its exit status in one place (`cli_common.OneLineErrors`)."""

from __future__ import annotations

import re

from supernet.arch import shorten
from supernet.errors import BadInput, OperationFailed, ToolkitError

__all__ = ["BadInput", "CommandFailed", "OperationFailed", "ToolkitError", "UserError", "one_line", "shorten"]

MAX_LINE = 400


def one_line(message: str, limit: int = MAX_LINE) -> str:
    """`message` with its line breaks collapsed to spaces and cut to `limit` characters."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", message).strip()
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


class UserError(BadInput):
    """Bad input found by a command itself (an option that contradicts another, a missing file): exit status 2."""


class CommandFailed(OperationFailed):
    """The input was fine but the command's work failed (e.g. an export did not pass verification): exit 1."""
