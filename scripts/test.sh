#!/usr/bin/env bash
# Everything CI checks: generated code current, lint, format, types, then the test suite
# (against a real Redis and the emulator over real HTTP). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "== generated sync code is current"
.venv/bin/python tools/async_to_sync.py --check
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
