"""Shared fixtures: every test gets its own key prefix on a real Redis (see thread_pool.testing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def redis_client(thread_pool_redis_url: str) -> Iterator[redis.Redis]:
    """A plain blocking client, for looking at the keys a test's pools wrote."""
    client = redis.Redis.from_url(thread_pool_redis_url, decode_responses=True)
    yield client
    client.close()
