"""examples/agents_example.py runs with one command and shows what it says it shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "agents_example.py"


def test_the_agents_example_shares_one_conversation_without_lock_errors(
    thread_pool_redis_url: str,
) -> None:
    finished = subprocess.run(
        [sys.executable, str(EXAMPLE), "--json", "--runs", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "THREAD_POOL_REDIS_URL": thread_pool_redis_url},
    )
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["runs"] == 4
    assert result["lock_errors"] == 0
    assert result["conversations"] == 2
    assert result["logged_tool_calls"] == 4
    assert result["logged_entries"] == 5 * 3 - 1  # 4 runs with a tool call, a follow-up without
    # The follow-up's conversation held all 4 runs (question, call, output, reply each), from
    # both conversations, plus its own question.
    assert result["follow_up_saw"] == 4 * 4 + 1
