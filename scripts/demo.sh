#!/usr/bin/env bash
# The demo: the measured contention on one shared thread, then the same work through a pool.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python examples/demo.py "$@"
