#!/usr/bin/env bash
# Build the wheel, install it (without dependencies: they are those of .venv) into a directory of its own, and run
# every command's --help and `info` from it, outside the repository, so nothing can come from the source tree or
# the editable install. Fails if the wheel lacks a module or a data file that a command needs.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# from a copy of the checkout's files (what git tracks or would), so no earlier build output can fill a gap
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -x -C "$work/src"
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" "$work/src" \
  >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$work/site" "$work"/dist/*.whl
cd "$work"  # away from the source tree
PYTHONPATH="$work/site" ELASTICVIT_DEPLOY_HOME="$work/home" "$root/.venv/bin/python" - "$work/site" <<'PY'
import sys

import click
from click.testing import CliRunner

import android_runner, elasticvit_deploy, supernet
from elasticvit_deploy.cli import main

for module in (android_runner, elasticvit_deploy, supernet):
    assert module.__file__.startswith(sys.argv[1]), f"{module.__name__} imported from {module.__file__}, not the wheel"
assert android_runner.RUNNER.is_file(), "runner.sh is not in the wheel"


def paths(group: click.Group, prefix: list[str]):
    for name, command in group.commands.items():
        yield [*prefix, name]
        if isinstance(command, click.Group):
            yield from paths(command, [*prefix, name])


every = list(paths(main, []))
for args in [*every, ["info"]]:
    result = CliRunner().invoke(main, args if args == ["info"] else [*args, "--help"])
    assert result.exit_code == 0, f"{' '.join(args)}: exit {result.exit_code}: {result.output[-300:]}"
ours = [m for name, m in sys.modules.items() if name.split(".")[0] in ("android_runner", "elasticvit_deploy", "supernet")]
stray = [m.__name__ for m in ours if not (getattr(m, "__file__", None) or "").startswith(sys.argv[1])]
assert not stray, f"not imported from the wheel: {', '.join(sorted(stray)[:5])}"
print(f"wheel check: {elasticvit_deploy.__version__} installs alone; --help of {len(every)} commands and info ran from it, "
      f"{len(ours)} of its modules imported")
PY
