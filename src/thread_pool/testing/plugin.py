"""pytest plugin: ready fixtures for a Redis (and, below, the emulator) in any test suite.

Installed with the package (entry point ``pytest11``), so a user's own tests can ask for
``thread_pool_redis_url`` or ``thread_pool_prefix`` without any conftest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from thread_pool.redis_server import local_redis


@pytest.fixture(scope="session")
def thread_pool_redis_url() -> Iterator[str]:
    """URL of a Redis for the test session (env, else 127.0.0.1:6379, else a private server)."""
    with local_redis() as url:
        yield url


@pytest.fixture
def thread_pool_prefix(thread_pool_redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys (and only its keys) are deleted afterwards."""
    prefix = f"tpt-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(thread_pool_redis_url)
    try:
        batch: list[bytes] = []
        for name in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(name)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
