#!/usr/bin/env bash
# Install everything elasticvit-deploy needs: ./.venv (Python >= 3.11), the pinned dependency set
# (constraints.txt, torch==2.13.0 CPU-compatible pin), the package itself (editable), the test tools and, as root,
# the Debian package dataset-fashion-mnist (training demo data).
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
# Fashion-MNIST for the CPU training demo ships as a Debian package (no download at run time).
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing dataset-fashion-mnist (apt)..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "warning: could not install dataset-fashion-mnist; the Fashion-MNIST demo needs it (tests do not)" >&2
  else
    echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the Fashion-MNIST training demo" >&2
  fi
fi
echo "ready: .venv/bin/elasticvit-deploy"
