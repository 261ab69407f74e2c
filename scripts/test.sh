#!/usr/bin/env bash
# Everything CI checks: generated code current, lint, format, types, the built package
# (scripts/package_check.sh), then the test suite twice (against a real Redis and the emulator
# over real HTTP): on a single Redis, then on a private Redis Cluster of three masters. Meanwhile
# the fast tests run under Python 3.12 and 3.13 (scripts/test_pythons.sh, in the background: the
# passes leave one of the two cores mostly idle; its output is shown after them). Extra arguments
# go to pytest, in every pass. Every stage runs even when an earlier one failed, so one run shows
# every failure; the exit status is that of the first stage (in this order) that failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

status=0
failed=()
# stage NAME COMMAND...: run it, say how long it took, remember its failure.
stage() {
  local name=$1 result=0 start=$SECONDS
  shift
  "$@" || result=$?
  record "$name" "$result" $((SECONDS - start))
}
record() {
  if [ "$2" -eq 0 ]; then
    echo "== $1: ok (${3}s)"
  else
    echo "== $1: FAILED, exit $2 (${3}s)" >&2
    failed+=("$1")
    [ "$status" -ne 0 ] || status=$2
  fi
}

others_log=$(mktemp "${TMPDIR:-/tmp}/thread-pool-pythons.XXXXXX")
others_pid=
cleanup() {
  # The background job is a process group of its own (set -m): end it and its pytest.
  if [ -n "$others_pid" ]; then kill -- -"$others_pid" 2>/dev/null || true; fi
  rm -f "$others_log"
}
trap cleanup EXIT
trap 'echo "== interrupted" >&2; exit 130' INT TERM

echo "== Python 3.12 and 3.13: fast tests, started in the background (output after the passes)"
others_start=$SECONDS
set -m
scripts/test_pythons.sh "$@" </dev/null >"$others_log" 2>&1 &
others_pid=$!
set +m

echo "== generated sync code is current"
stage "generated code" .venv/bin/python tools/async_to_sync.py --check
echo "== ruff"
stage "ruff check" .venv/bin/ruff check .
stage "ruff format" .venv/bin/ruff format --check .
echo "== mypy (strict)"
stage mypy .venv/bin/mypy
echo "== package: wheel contents, install with [cli] into a new venv, CLI and a lease"
stage "package check" scripts/package_check.sh
echo "== pytest, pass 1 of 2: single Redis"
stage "pytest, single Redis" env THREAD_POOL_TEST_REDIS=single .venv/bin/pytest "$@"
echo "== pytest, pass 2 of 2: Redis Cluster (3 masters, THREAD_POOL_TEST_REDIS=cluster)"
stage "pytest, Redis Cluster" env THREAD_POOL_TEST_REDIS=cluster .venv/bin/pytest "$@"

others=0
wait "$others_pid" || others=$?
others_pid=
echo "== pytest on Python 3.12 and 3.13 (fast tests, ran in the background):"
cat "$others_log"
record "Python 3.12 and 3.13" "$others" $((SECONDS - others_start))

if [ "$status" -ne 0 ]; then
  printf -v list '%s; ' "${failed[@]}"
  echo "== FAILED: ${list%; } (exit status $status, the first failure's; see above)" >&2
fi
exit "$status"
