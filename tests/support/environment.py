"""The environment of a subprocess a test starts as a user would (the CLI, the stress test)."""

from __future__ import annotations

import os

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
