"""The toolkit's one error hierarchy. Every error raised on purpose derives from `ToolkitError`; the command line
translates it, in one place, into a single line ``error: ...`` and the class's exit status:

- `BadInput` (exit 2): what the user gave is wrong (a file, a value, a setting), whatever the operation;
- `OperationFailed` (exit 1): the input was fine but the work could not be done (a phone vanished, a check failed).

Anything else that escapes a command is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["BadInput", "OperationFailed", "ToolkitError"]


class ToolkitError(Exception):
    """Base of the errors the toolkit raises on purpose; `exit_code` is the command line's exit status."""

    exit_code = 1


class BadInput(ToolkitError):
    """The user's input is wrong: exit status 2."""

    exit_code = 2


class OperationFailed(ToolkitError):
    """The input was fine but the operation failed: exit status 1."""

    exit_code = 1
