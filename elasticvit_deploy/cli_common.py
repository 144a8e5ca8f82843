"""Pieces shared by the CLI's command modules: the one-line-error group, common options, JSON output."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from supernet.space import SearchSpace, get_space, space_names

from .errors import ToolkitError, UserError, one_line


class OneLineErrors(click.Group):
    """The one place errors become messages: a `ToolkitError` from any command, or click's own usage error (unknown
    option, bad value), prints one line ``error: ...`` and exits with the error's status."""

    def main(self, args: Any = None, prog_name: str | None = None, **kwargs: Any) -> Any:
        """Run a command; exit with its status. Called in-process with explicit `args` (tests, scripts), the
        caller gets back the SIGINT/SIGTERM handlers it had: a command may take them over for the rest of its
        process (export ignores them once it has published)."""
        kwargs.pop("standalone_mode", None)
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            rv = super().main(args, prog_name, standalone_mode=False, **kwargs)
        except ToolkitError as e:
            click.echo(f"error: {one_line(str(e))}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(130)
        finally:
            if args is not None and threading.current_thread() is threading.main_thread():
                for signum, handler in handlers.items():
                    signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        sys.exit(rv if isinstance(rv, int) else 0)


def space_option(f: Any) -> Any:
    return click.option("--space", "space_name", default="elasticvit", show_default=True, metavar="NAME",
                        help=f"Search space ({', '.join(space_names())}).")(f)


def resolve_space(name: str) -> SearchSpace:
    try:
        return get_space(name)
    except KeyError as e:
        raise UserError(str(e.args[0])) from None


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


