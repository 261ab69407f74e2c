"""The merging tests' pool factory: asyncio pools on the emulator over HTTP and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest

from tests.support.upstream import make_backend
from thread_pool import AsyncThreadPool
from thread_pool.emulator import EmulatorServer

MakePool = Callable[..., AsyncThreadPool]


@pytest.fixture
async def make_pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> AsyncIterator[MakePool]:
    pools: list[AsyncThreadPool] = []

    def make(kind: str, **overrides: Any) -> AsyncThreadPool:
        backend = make_backend(kind, thread_pool_async_openai_client, thread_pool_emulator)
        pool = AsyncThreadPool(
            backend=backend,
            redis_url=thread_pool_redis_url,
            key_prefix=thread_pool_prefix,
            **overrides,
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()
