#!/usr/bin/env bash
# Everything CI checks: generated code current, lint, format, types, then the test suite twice
# (against a real Redis and the emulator over real HTTP): on a single Redis, then on a private
# Redis Cluster of three masters. Extra arguments go to pytest, in both passes.
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
# Both passes run even if the first fails, so one CI run shows every failure; the exit status
# is that of the first pass that failed.
status=0
echo "== pytest, pass 1 of 2: single Redis"
THREAD_POOL_TEST_REDIS=single .venv/bin/pytest "$@" || status=$?
echo "== pytest, pass 2 of 2: Redis Cluster (3 masters, THREAD_POOL_TEST_REDIS=cluster)"
cluster=0
THREAD_POOL_TEST_REDIS=cluster .venv/bin/pytest "$@" || cluster=$?
[ "$status" -ne 0 ] || status=$cluster
if [ "$status" -ne 0 ]; then
  echo "== pytest failed (exit $status): see the passes above" >&2
fi
exit "$status"
