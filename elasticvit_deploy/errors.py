"""The one error type the CLI turns into a one-line message and exit status 2, and the helpers that keep it one
short line whatever the user gave (`shorten` for quoted values, `one_line` for the whole message)."""

from __future__ import annotations

import re

import click

from supernet.arch import shorten

__all__ = ["CommandFailed", "UserError", "one_line", "shorten"]

MAX_LINE = 400


def one_line(message: str, limit: int = MAX_LINE) -> str:
    """`message` with its line breaks collapsed to spaces and cut to `limit` characters."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", message).strip()
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


class UserError(click.ClickException):
    """Bad input from the user: printed as one line ``error: ...``, exit status 2, never a traceback."""

    exit_code = 2

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        click.echo(f"error: {one_line(self.format_message())}", err=True)


class CommandFailed(UserError):
    """The input was fine but the work failed (e.g. an export did not pass verification): one line, exit 1."""

    exit_code = 1
