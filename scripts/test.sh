#!/usr/bin/env bash
# Everything CI checks: generated code current, lint, format, types, the built package
# (scripts/package_check.sh), then the test suite (against a real Redis and the emulator over
# real HTTP): all of it on a single Redis; the fast tier of what touches Redis and the chaos runs
# again on a private Redis Cluster of three masters (the fuzzers and the other many-process runs
# once); then the library's core fast tests under Python 3.12 and 3.13 (scripts/test_pythons.sh).
# Extra arguments go to pytest, in every pass (a -m of yours replaces the cluster pass's). Every stage runs even
# when an earlier one failed, so one run shows every failure; the exit status is that of the
# first stage (in this order) that failed.
#
# The venvs of 3.12 and 3.13 are set up in the background while the stages before the tests run.
# The test passes themselves run one at a time: several tests race a process start or a CLI
# against a 1-10 s deadline, and a second pass beside them made those fail (measured on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

# What the cluster pass runs: every test whose Redis calls a cluster can change (key slots,
# redirections, a master restarted), on the asyncio client (the blocking one is generated from
# it; tests/pool runs both). Not again there: the emulator, units, the CLI's input checks (refused
# before Redis), security and demo tests (they start clusters of their own where it matters).
CLUSTER_TESTS=(
  tests/pool tests/admin --ignore=tests/admin/test_cli_input.py tests/merging tests/chaos
  tests/turns/test_turns_async.py tests/turns/test_turns_faults.py tests/turns/test_turns_in_flight.py
  tests/streaming/test_stream_async.py tests/owncalls/test_own_calls_async.py
)

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

setup_log=$(mktemp "${TMPDIR:-/tmp}/thread-pool-setup.XXXXXX")
setup_pid=
cleanup() {
  # The background set-up is a process group of its own (set -m): end it with its pip.
  if [ -n "$setup_pid" ]; then kill -- -"$setup_pid" 2>/dev/null || true; fi
  rm -f "$setup_log"
}
trap cleanup EXIT
trap 'echo "== interrupted" >&2; exit 130' INT TERM

echo "== venvs for Python 3.12 and 3.13: set up in the background (output before the tests)"
setup_start=$SECONDS
set -m
scripts/test_pythons.sh --setup-only </dev/null >"$setup_log" 2>&1 &
setup_pid=$!
set +m

echo "== generated sync code is current"
stage "generated code" .venv/bin/python tools/async_to_sync.py --check
echo "== docs/reference.md is current"
stage "reference page" .venv/bin/python tools/reference.py --check
echo "== ruff"
stage "ruff check" .venv/bin/ruff check .
stage "ruff format" .venv/bin/ruff format --check .
echo "== mypy (strict)"
stage mypy .venv/bin/mypy
echo "== package: wheel contents, install with [cli] into a new venv, CLI and a lease"
stage "package check" scripts/package_check.sh

setup=0
wait "$setup_pid" || setup=$?
setup_pid=
echo "== venvs for Python 3.12 and 3.13 (set up in the background):"
cat "$setup_log"
record "venvs for 3.12 and 3.13" "$setup" $((SECONDS - setup_start))

echo "== pytest, pass 1 of 2: single Redis"
stage "pytest, single Redis" env THREAD_POOL_TEST_REDIS=single .venv/bin/pytest "$@"
echo "== pytest, pass 2 of 2: Redis Cluster (3 masters, THREAD_POOL_TEST_REDIS=cluster), fast tier"
stage "pytest, Redis Cluster" env THREAD_POOL_TEST_REDIS=cluster .venv/bin/pytest \
  -m "not slow or chaos" "${CLUSTER_TESTS[@]}" "$@"
echo "== pytest on Python 3.12 and 3.13: fast tests, single Redis"
stage "pytest, Python 3.12 and 3.13" scripts/test_pythons.sh "$@"

if [ "$status" -ne 0 ]; then
  printf -v list '%s; ' "${failed[@]}"
  echo "== FAILED: ${list%; } (exit status $status, the first failure's; see above)" >&2
fi
exit "$status"
