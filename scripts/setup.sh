#!/usr/bin/env bash
# Install everything elasticvit-deploy needs: ./.venv (Python >= 3.11), the pinned dependency set
# (constraints.txt, torch==2.13.0 CPU-compatible pin), the package itself (editable), the test tools and, as root,
# the Debian packages dataset-fashion-mnist (training demo data), chromium (the report's rendering test),
# bubblewrap, mksh and toybox (the simulated phones' sandboxed Android shell) and adb (the simulator's peer test).
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
# Debian packages: Fashion-MNIST for the training demo (no download at run time), Chromium for the report test,
# bubblewrap + mksh + toybox for the simulated phones (without them `farm simulate` refuses to start), Debian's adb
# client for the test that drives the simulated server with it (skipped without it).
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
for tool in bwrap:bubblewrap mksh:mksh toybox:toybox; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
[ -x /usr/bin/adb ] || missing+=(adb)  # Debian's client, the one the peer test runs
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (apt)..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "warning: could not install ${missing[*]}; the demo falls back to digits, the HTML rendering test is skipped, simulated phones cannot start and the adb peer test is skipped" >&2
  else
    echo "note: run 'sudo apt-get install ${missing[*]}' (Fashion-MNIST demo data; headless Chromium for the report test; the simulated phones' sandbox; the adb client for the peer test)" >&2
  fi
fi
echo "ready: .venv/bin/elasticvit-deploy"
