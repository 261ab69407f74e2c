#!/usr/bin/env bash
# The interop tier: the pool against a Conversations server nobody here wrote.
#
#   scripts/interop.sh llama-stack [pytest args...]
#
# Builds llama-stack 0.7.3 in its own virtualenv (.venv-llama-stack, Python >= 3.12: set
# PYTHON312, default pyenv's 3.12.1; from the package registries only, ~800 MB, about a minute
# once), starts the deterministic model stub (interop/model_stub.py) and llama-stack on it
# (interop/serve_llama_stack.py: sqlite state in a temporary directory, its offline start-up
# workaround), runs interop/ against them, and stops both. Not part of CI (its time budget);
# record the figures it prints in docs/compatibility.md.
set -euo pipefail
cd "$(dirname "$0")/.."

server="${1:-}"
if [ "$server" != "llama-stack" ]; then
  echo "usage: scripts/interop.sh llama-stack [pytest args...]" >&2
  exit 2
fi
shift
scripts/bootstrap.sh

PYTHON312="${PYTHON312:-/root/.pyenv/versions/3.12.1/bin/python}"
venv=.venv-llama-stack
# Pins (UPSTREAM.md): llama-stack 0.7.3 imports McpError, renamed in mcp 2; its responses
# provider needs vector_io (sqlite-vec: sqlite-vec, chardet, pypdf), tool_runtime and files.
pins=("llama-stack==0.7.3" "mcp<2" sqlite-vec chardet pypdf)
stamp=$venv/.installed-$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-16)
if [ ! -e "$stamp" ]; then
  if ! "$PYTHON312" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    echo "llama-stack 0.7.3 needs Python >= 3.12 (set PYTHON312=/path/to/python3.12)" >&2
    exit 1
  fi
  echo "== building $venv (llama-stack 0.7.3)"
  "$PYTHON312" -m venv --clear "$venv"
  # (pip warns about every local index path that lacks a package: not worth showing)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch "$stamp"
fi

free_port() { .venv/bin/python -c 'from thread_pool.testing.redis_server import free_port; print(free_port())'; }
state=$(mktemp -d "${TMPDIR:-/tmp}/interop-llama-stack.XXXXXX")
stub_port=$(free_port)
server_port=$(free_port)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$state"
}
trap cleanup EXIT

.venv/bin/python -m interop.model_stub --port "$stub_port" >"$state/stub.log" 2>&1 &
pids+=($!)
STUB_URL="http://127.0.0.1:$stub_port/v1" STATE_DIR="$state" \
  "$venv/bin/python" interop/serve_llama_stack.py "$server_port" >"$state/server.log" 2>&1 &
pids+=($!)

echo "== starting llama-stack on port $server_port (model stub on $stub_port)"
started=$SECONDS
until curl -sf "http://127.0.0.1:$server_port/v1/models" 2>/dev/null | grep -q '"openai/stub"'; do
  if ! kill -0 "${pids[1]}" 2>/dev/null || [ $((SECONDS - started)) -gt 300 ]; then
    echo "llama-stack did not start; its log:" >&2
    tail -40 "$state/server.log" >&2
    exit 1
  fi
  sleep 1
done
echo "== llama-stack up after $((SECONDS - started)) s"

INTEROP_BASE_URL="http://127.0.0.1:$server_port/v1" \
  INTEROP_STUB_URL="http://127.0.0.1:$stub_port" \
  INTEROP_PYTHON="$PWD/.venv/bin/python" \
  .venv/bin/python -m pytest interop -p no:cacheprovider -s -q "$@"
