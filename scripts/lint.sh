#!/usr/bin/env bash
# The lint and type gates (run by scripts/test.sh, and by pre-commit): ruff (pyflakes, pycodestyle at 120 columns,
# isort, bugbear, pyupgrade; configured in pyproject.toml) over the whole repository, then mypy over the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check --quiet .
.venv/bin/mypy
echo "lint: ruff and mypy clean"
