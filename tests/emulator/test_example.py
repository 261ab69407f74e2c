"""examples/naive_shared_thread.py shows the failure it was written to show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "naive_shared_thread.py"


def test_naive_shared_thread_mostly_fails() -> None:
    finished = subprocess.run(
        # Runs much longer than the retry pauses, as upstream (seconds against a quick retry).
        [sys.executable, str(EXAMPLE), "--json", "--latency", "0.15-0.4", "--retry-pause", "0.03"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["requests"] == 50
    assert result["successes"] + result["failures"] == 50
    assert result["failures"] > 30  # most iterations fail (typically ~42 of 50)
    assert result["lock_errors"] > 0
    assert result["lock_errors"] == result["server_lock_errors"]["total"]
    assert result["other_errors"] == 0
    assert result["peak_active_runs_on_thread"] == 1
