"""The pools a test makes: ``make_async_pool`` / ``make_pool`` build pools on the test's own key
prefix with a backend on the test's emulator, and close them after the test. Registered for the
whole suite by tests/conftest.py (``pytest_plugins``); the blocking twins of the asyncio tests
name ``make_pool`` where their source names ``make_async_pool`` (tools/async_to_sync.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest

from tests.support.upstream import make_backend
from thread_pool import AsyncThreadPool, ThreadPool
from thread_pool.emulator import EmulatorServer

AsyncMakePool = Callable[..., AsyncThreadPool]
"""``make_async_pool(kind="conversations", **settings)``: ``kind`` is the backend's API on the
emulator (``assistants``, ``conversations``, ``background``), None for a pool without one; a
``backend=`` setting of the test's own (a hooked client, other retry options) replaces it."""
MakePool = Callable[..., ThreadPool]
"""``make_pool``: the same for the blocking pool."""


@pytest.fixture
async def make_async_pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> AsyncIterator[AsyncMakePool]:
    pools: list[AsyncThreadPool] = []

    def make(kind: str | None = "conversations", **settings: Any) -> AsyncThreadPool:
        client, server = thread_pool_async_openai_client, thread_pool_emulator
        if "backend" not in settings:
            settings["backend"] = None if kind is None else make_backend(kind, client, server)
        pool = AsyncThreadPool(
            redis_url=thread_pool_redis_url,
            key_prefix=thread_pool_prefix,
            **settings,
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()


@pytest.fixture
def make_pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
) -> Iterator[MakePool]:
    made: list[ThreadPool] = []

    def make(kind: str | None = "conversations", **settings: Any) -> ThreadPool:
        client, server = thread_pool_openai_client, thread_pool_emulator
        if "backend" not in settings:
            settings["backend"] = None if kind is None else make_backend(kind, client, server)
        pool = ThreadPool(
            redis_url=thread_pool_redis_url,
            key_prefix=thread_pool_prefix,
            **settings,
        )
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()
