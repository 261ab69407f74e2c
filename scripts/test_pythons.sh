#!/usr/bin/env bash
# The library's core fast tests (units, pool, turns, streaming, merging, own calls; -m "not slow
# and not chaos", on a single Redis) under the other Pythons the package supports, 3.12 and 3.13 (PYTHONS="3.12 3.13" to choose), each in a venv of its own
# (.venv-3.12, .venv-3.13) that scripts/bootstrap.sh sets up and updates like .venv. Extra
# arguments go to pytest after the marker selection (a -m of yours replaces it); with --setup-only
# as the first argument it only sets the venvs up (test.sh does that while the linters run).
# Each interpreter is python3.X from the PATH, else the newest $PYENV_ROOT/versions/3.X.*. A
# missing one fails the run under CI=true (a required test is never skipped silently); elsewhere
# it is skipped with one line saying so. All versions run; the exit status is the first failure's.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHONS="${PYTHONS:-3.12 3.13}"
setup_only=false
if [ "${1:-}" = --setup-only ]; then
  setup_only=true
  shift
fi
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"

# Prints the path of a Python $1 (X.Y) that runs, or nothing.
find_python() {
  local want=$1 candidate
  for candidate in "$(command -v "python$want" || true)" \
    $(ls -d "$pyenv_root/versions/$want".*/bin/python3 2>/dev/null | sort -V -r); do
    [ -n "$candidate" ] || continue
    # A pyenv shim exists for every installed version but runs only the selected ones.
    if [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
      = "$want" ]; then
      echo "$candidate"
      return
    fi
  done
}

status=0
for version in $PYTHONS; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    # Reported by the run that follows, not twice.
    if $setup_only; then continue; fi
    where="no python$version on the PATH nor under $pyenv_root/versions/$version.*"
    if [ "${CI:-}" = true ]; then
      echo "== pytest on Python $version: FAILED, $where (required under CI)" >&2
      [ "$status" -ne 0 ] || status=1
    else
      echo "== pytest on Python $version: skipped, $where (CI=true makes this a failure)"
    fi
    continue
  fi
  venv=.venv-$version
  start=$SECONDS
  result=0
  if $setup_only; then
    echo "== setting up $venv ($python)"
  else
    echo "== pytest on Python $version ($python, $venv): fast tests, single Redis"
  fi
  PYTHON="$python" scripts/bootstrap.sh "$venv" || result=$?
  if [ "$result" -ne 0 ]; then
    echo "== setting up $venv failed (exit $result)" >&2
  elif ! $setup_only; then
    # A pytest cache of its own: --lf and friends then mean this version's last run.
    # The library's core paths, once each (the asyncio source; tests/pool runs both twins):
    # leases, turns, streaming, own calls; what a new interpreter can change. The CLI, the
    # emulator, security and the many-process runs are covered on the main interpreter.
    THREAD_POOL_TEST_REDIS=single "$venv/bin/pytest" -o cache_dir="$venv/.pytest_cache" \
      -m "not slow and not chaos" "$@" \
      tests/units tests/pool/test_pool_async.py tests/pool/test_pool_sync.py \
      tests/turns/test_turns_async.py tests/streaming/test_stream_async.py \
      tests/owncalls/test_own_calls_async.py tests/merging/test_merge.py \
      || result=$?
  fi
  if [ "$result" -eq 0 ] && $setup_only; then
    echo "== $venv ready ($((SECONDS - start))s)"
  elif [ "$result" -eq 0 ]; then
    echo "== Python $version: ok ($((SECONDS - start))s)"
  else
    echo "== Python $version: FAILED, exit $result ($((SECONDS - start))s)" >&2
  fi
  [ "$status" -ne 0 ] || status=$result
done
exit "$status"
