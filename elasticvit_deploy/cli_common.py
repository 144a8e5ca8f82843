"""Pieces shared by the CLI's command modules: the one-line-error group, common options (space, adb server,
predictor kind), the device a command holds, JSON output and stderr messages."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn, cast

import click

from supernet.space import SearchSpace, get_space, space_names

from .errors import ToolkitError, UserError, one_line
from .farm.devices import single_device
from .farm.measure import Device, MeasureOptions
from .farm.runner_protocol import RunnerSettings
from .latency.model import ArchLatencyModel
from .latency.predictors import PREDICTOR_KINDS, PredictorKind, load_predictor


class OneLineErrors(click.Group):
    """The one place errors become messages: a `ToolkitError` from any command, or click's own usage error (unknown
    option, bad value), prints one line ``error: ...`` and exits with the error's status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        """Run a command; exit with its status. Click always runs with ``standalone_mode=False`` (whatever the
        caller passes) so that this method, not click, turns errors into messages and exits. Called in-process
        with explicit `args` (tests, scripts), the caller gets back the SIGINT/SIGTERM handlers it had: a command
        may take them over for the rest of its process (export ignores them once it has published)."""
        del standalone_mode  # accepted for click's signature; this group always exits itself
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
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


def adb_option(f: Any) -> Any:
    return click.option("--adb", "adb", default=None, metavar="HOST:PORT",
                        help="adb server (default: $ADB_SERVER_SOCKET, $ANDROID_ADB_SERVER_PORT, 127.0.0.1:5037).")(f)


def say(message: str) -> None:
    """A progress or waiting message, on stderr (stdout stays the command's output)."""
    click.echo(message, err=True)


def held_device(name: str, adb: str | None, settings: RunnerSettings, options: MeasureOptions) -> Device:
    """`single_device` for the running command: leased and prepared until the command ends, saying on stderr
    when it waits for another process to release the device."""
    return click.get_current_context().with_resource(single_device(name, adb, settings, options, on_wait=say))


def open_predictor(device: str, space_name: str, kind: str) -> ArchLatencyModel:
    """The latency model of the predictor answering for `device` in the space named `space_name`."""
    return load_predictor(device, resolve_space(space_name), cast(PredictorKind, kind))


def predictor_kind_option(default: str, help_text: str | None = None) -> Any:
    """`--predictor auto|table|learned`: which installed predictor answers."""
    return click.option("--predictor", "kind", type=click.Choice(PREDICTOR_KINDS), default=default,
                        show_default=True, help=help_text)
