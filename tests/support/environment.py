"""A subprocess a test starts as a user would (the CLI, the stress test): its command and its
environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("thread-pool")
# The ``thread-pool`` command, as installed next to this Python (or run as a module).
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "thread_pool.cli"]

# Says what the session's Redis is (a cluster, in the cluster pass): a subprocess must keep it.
KEPT = ("THREAD_POOL_REDIS_CLUSTER",)


def clean_environment() -> dict[str, str]:
    """This process's environment without ``THREAD_POOL_*`` and ``OPENAI_*`` settings, so a test
    passes each one it means explicitly; ``THREAD_POOL_REDIS_CLUSTER`` is kept."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("THREAD_POOL_", "OPENAI_")) or k in KEPT
    }
