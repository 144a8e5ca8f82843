"""The one error type the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """Bad input from the user: printed as one line ``error: ...``, exit status 2, never a traceback."""

    exit_code = 2

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        click.echo(f"error: {self.format_message()}", err=True)


class CommandFailed(UserError):
    """The input was fine but the work failed (e.g. an export did not pass verification): one line, exit 1."""

    exit_code = 1
