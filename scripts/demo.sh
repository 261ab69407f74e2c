#!/usr/bin/env bash
# The demo: the measured failure (5 workers x 10 turns on one shared thread), the usual fix (a
# Redis lock around the thread), and the same work through a pool, side by side. It starts its own
# emulator; Redis as thread_pool.testing.redis_server finds it. Extra arguments go to `thread-pool stress`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/thread-pool stress --strategy all "$@"
