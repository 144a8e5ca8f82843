#!/usr/bin/env bash
# Install everything elasticvit-deploy needs into ./.venv: Python >= 3.11 venv, the pinned dependency set
# (constraints.txt, torch==2.13.0 CPU-compatible pin), the package itself (editable) and the test tools.
# Idempotent: a second run only checks the stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "error: Python >= 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing pinned dependencies into .venv (first run: a few minutes, ~2.3 GB)..."
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "ready: .venv/bin/elasticvit-deploy"
