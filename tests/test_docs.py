"""The documentation stays true to the code: the CLI reference is the command tree's, the README stays a front
page, links lead somewhere, commands and options named in the docs exist, and no doc points at internal material."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import click
import pytest

from elasticvit_deploy.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")])
README_MAX_LINES = 260
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
INTERNAL = [re.compile(p, re.IGNORECASE) for p in (
    r"\bspec\s+§?\d+(\.\d+)*", r"\bthe spec\b", r"shared/docs", r"\.\./shared\b", r"\bissues?\s+#?\d+")]
SHELL_STOP = {"|", "||", ">", ">>", "2>", "<", "&", "&&", ";", "#"}
REPO_PATH = re.compile(r"(?:supernet|elasticvit_deploy|android_runner|tests|scripts|benchmarks|configs|docs|\.ci)/"
                       r"[\w./-]*")


def load_cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file (code blocks skipped)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found = set()
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            title = m.group(1).strip().lower().replace(" ", "-")
            found.add("".join(c for c in title if c.isalnum() or c in "-_"))
    return found


def test_cli_reference_is_generated_from_the_command_tree():
    expected = load_cli_reference().render(main)
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is out of date: run .venv/bin/python scripts/cli_reference.py"


def test_cli_reference_does_not_depend_on_what_ran_before():
    """click caches a command's help option on first use: a subcommand first used without its parent's context
    (`-h` unknown there) must not change the reference."""
    analyze = main.commands["analyze"]
    analyze.get_help_option(click.Context(analyze))
    assert load_cli_reference().render(main) == (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def test_cli_reference_covers_every_visible_command():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    reference = load_cli_reference()
    paths = [" ".join(p) for p, _, _ in reference.walk(main, ["elasticvit-deploy"])]
    assert len(paths) > 20
    for path in paths:
        assert f"## `{path}`" in text


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    text = "\n".join(lines)
    assert "bash scripts/setup.sh && .venv/bin/elasticvit-deploy demo" in text
    assert "bash scripts/test.sh" in text
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_links_lead_to_files_and_headings_that_exist(doc):
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # an external address
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        assert linked.exists(), f"{rel(doc)}: link to a missing file: {target}"
        assert ROOT in linked.parents or linked == ROOT, f"{rel(doc)}: link outside the repository: {target}"
        if anchor:
            assert linked.suffix == ".md" and anchor in anchors(linked), f"{rel(doc)}: no heading for {target}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_no_doc_points_at_internal_material(doc):
    text = doc.read_text(encoding="utf-8")
    for pattern in INTERNAL:
        hit = pattern.search(text)
        assert hit is None, f"{rel(doc)}: {hit.group(0)!r}: cite the paper or the official code's file instead"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_repository_paths_named_in_the_docs_exist(doc):
    for span in INLINE.findall(FENCE.sub("", doc.read_text(encoding="utf-8"))):
        for word in re.split(r"[\s,;()]+", span):
            path = word.rstrip(".:")
            if REPO_PATH.fullmatch(path):  # placeholders (<area>, *) never match: only literal paths are checked
                assert (ROOT / path).exists(), f"{rel(doc)}: names {path}, which does not exist"


def invocations(doc: Path) -> list[str]:
    """Command lines of the docs that run `elasticvit-deploy`: lines of code blocks, and inline code spans."""
    text = doc.read_text(encoding="utf-8")
    lines = [line for _, block in FENCE.findall(text) for line in block.replace("\\\n", " ").splitlines()]
    lines += INLINE.findall(FENCE.sub("", text))
    found = []
    for line in lines:
        m = re.search(r"(?:^|[\s/])elasticvit-deploy(\s.*)?$", line)
        if m and m.group(1):
            found.append(m.group(1).strip())
    return found


def command_and_options(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The deepest command `words` name, its path, and the option names given to it."""
    command: click.Command = main
    path = ["elasticvit-deploy"]
    options = []
    for word in words:
        if word in SHELL_STOP or word.startswith(("#", "$(", ">", "2>")):
            break
        if word.startswith("-"):
            options.append(word.split("=", 1)[0])
        elif isinstance(command, click.Group) and not options and word in command.commands:
            command = command.commands[word]
            path.append(word)
    return command, path, options


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name != "cli.md"], ids=rel)
def test_commands_and_options_named_in_the_docs_exist(doc):
    for line in invocations(doc):
        try:
            words = shlex.split(line, comments=False)
        except ValueError:
            words = line.split()
        command, path, options = command_and_options(words)
        known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        known |= {"--help", "-h", "--version"}
        for option in options:
            if option.startswith("--") or option == "-h":
                assert option in known, f"{rel(doc)}: `{' '.join(path)}` has no option {option} ({line!r})"
