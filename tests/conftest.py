"""Shared fixtures: every test gets its own key prefix on a real Redis (see thread_pool.testing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from thread_pool._store.clients import connect

# make_async_pool and make_pool, for every test directory.
pytest_plugins = ["tests.support.pools"]


@pytest.fixture
def redis_client(thread_pool_redis_url: str) -> Iterator[redis.Redis]:
    """A plain blocking client, for looking at the keys a test's pools wrote (a cluster client
    when the suite runs on a cluster)."""
    client = connect(thread_pool_redis_url, decode_responses=True)
    yield client
    client.close()
