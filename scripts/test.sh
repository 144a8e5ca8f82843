#!/usr/bin/env bash
# Install (scripts/setup.sh), check that the built wheel works on its own (scripts/wheel_check.sh), run the lint
# and type gates (scripts/lint.sh: ruff, mypy), and run the default test suite. Extra arguments go to pytest
# (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/wheel_check.sh
bash scripts/lint.sh
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests (exit 5)"
  rc=0
fi
exit "$rc"
