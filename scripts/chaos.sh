#!/usr/bin/env bash
# A chaos run of any size, longer than the one CI runs: 20 processes x 20 tasks through four
# pools while workers are killed and paused, turns cancelled, upstream storms and Redis restarts,
# then the independent checker. Options: --turns N, --processes N, --tasks N, --seed N, --json, ...
# (see --help). Exit status 1 when the checker found a violation.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m tests.chaos "$@"
