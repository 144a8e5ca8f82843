"""Write docs/cli.md, the CLI reference, from the click command tree of `elasticvit_deploy.cli.main`.

    .venv/bin/python scripts/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # exit 1 if docs/cli.md differs from the command tree

tests/test_docs.py regenerates the text in memory and compares it with the file, so the reference cannot drift.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = ROOT / "docs" / "cli.md"
PROG = "elasticvit-deploy"

INTRO = """# CLI reference

Every command of `elasticvit-deploy`, with its usage, help and options, generated from the command tree by
`scripts/cli_reference.py` (do not edit by hand: run `.venv/bin/python scripts/cli_reference.py` after changing a
command; `tests/test_docs.py` fails when this file and the code disagree). `-h` works as `--help` everywhere.

Bad input (a malformed file, an unknown option, an invalid value) prints one line `error: ...` and exits with
status 2; work that fails exits with status 1.
"""


def walk(command: click.Command, path: list[str],
         parent: click.Context | None = None) -> Iterator[tuple[list[str], click.Command, click.Context]]:
    """Yield (path, command, context) for `command` and, if it is a group, every visible command below it, in
    name order (hidden commands, such as old names kept as aliases, are left out). Each context is made as click
    makes it on a real invocation: under its parent's, with the command's own context settings."""
    ctx = click.Context(command, info_name=path[-1], parent=parent, **command.context_settings)
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in visible(command):
            yield from walk(command.commands[name], [*path, name], ctx)


def visible(group: click.Group) -> list[str]:
    """The names of a group's commands that are not hidden, sorted."""
    return sorted(name for name, sub in group.commands.items() if not sub.hidden)


def help_text(command: click.Command) -> str:
    """The command's help as click shows it: the docstring up to a form feed, `\\b` paragraphs kept as they are."""
    text = inspect.cleandoc(command.help or "").split("\f")[0].strip()
    paragraphs = []
    for para in text.split("\n\n"):
        if para.startswith("\b\n"):
            paragraphs.append("```text\n" + para[2:] + "\n```")
        else:
            paragraphs.append(" ".join(line.strip() for line in para.splitlines()))
    return "\n\n".join(paragraphs)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def options_table(command: click.Command, ctx: click.Context) -> str:
    """Arguments and options as a markdown table (option, what it does)."""
    rows = []
    for param in command.params:  # the help option is added below from the context (click caches its own)
        if isinstance(param, click.Argument):
            rows.append((param.make_metavar(ctx), "argument" + (" (repeatable)" if param.nargs == -1 else "")))
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            rows.append(record)
    if command.add_help_option and ctx.help_option_names:
        rows.append((", ".join(ctx.help_option_names), "Show this message and exit."))
    if not rows:
        return ""
    lines = ["| option | meaning |", "|---|---|"]
    lines += [f"| `{_cell(opts)}` | {_cell(meaning)} |" for opts, meaning in rows]
    return "\n".join(lines)


def render(main: click.Command) -> str:
    """The whole reference as markdown."""
    sections = [INTRO]
    for path, command, ctx in walk(main, [PROG]):
        name = " ".join(path)
        pieces = command.collect_usage_pieces(ctx)
        usage = " ".join([name, *pieces])
        body = [f"## `{name}`", "", "```text", usage, "```", "", help_text(command)]
        if isinstance(command, click.Group):
            subs = [f"[`{sub}`](#{anchor(' '.join([*path, sub]))})" for sub in visible(command)]
            body += ["", "Commands: " + ", ".join(subs) + "."]
        table = options_table(command, ctx)
        if table:
            body += ["", table]
        sections.append("\n".join(body).rstrip() + "\n")
    return "\n".join(sections)


def anchor(title: str) -> str:
    """GitHub's anchor for a heading `` `title` ``: lower case, spaces to dashes, punctuation dropped."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/cli.md instead of writing it")
    args = parser.parse_args(argv)
    from elasticvit_deploy.cli import main as cli_main

    text = render(cli_main)
    if args.check:
        if not CLI_MD.is_file() or CLI_MD.read_text(encoding="utf-8") != text:
            print(f"{CLI_MD.relative_to(ROOT)} is out of date: run .venv/bin/python scripts/cli_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    CLI_MD.parent.mkdir(parents=True, exist_ok=True)
    CLI_MD.write_text(text, encoding="utf-8")
    print(f"wrote {CLI_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
