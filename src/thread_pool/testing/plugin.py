"""pytest plugin: ready fixtures for a Redis (and, below, the emulator) in any test suite.

Installed with the package (entry point ``pytest11``), so a user's own tests can ask for
``thread_pool_redis_url`` or ``thread_pool_prefix`` without any conftest, and, with the
``emulator`` extra, for ``thread_pool_emulator`` (a reset in-process emulator),
``thread_pool_openai_client`` and ``thread_pool_async_openai_client`` (SDK clients of it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis

from thread_pool.redis_server import local_redis

if TYPE_CHECKING:
    import openai

    from thread_pool.emulator import EmulatorServer


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


# -- the emulator ----------------------------------------------------------------------------
# Imported lazily, so suites without the ``emulator`` extra can still use the Redis fixtures.

EMULATOR_MARKER = "thread_pool_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that configures the emulator for one test."""
    config.addinivalue_line(
        "markers",
        f"{EMULATOR_MARKER}(**options): configure the emulator for this test "
        "(EmulatorConfig fields, or latency=/fault_rate= shorthands)",
    )


@pytest.fixture(scope="session")
def thread_pool_emulator_options() -> dict[str, Any]:
    """Options of the session's emulator; override this fixture to change them.

    Default: 20-50 ms per run (fast tests that still see runs queued and in progress), seed 0,
    no faults, no API key.
    """
    return {"latency": "0.02-0.05", "seed": 0}


@pytest.fixture(scope="session")
def thread_pool_emulator_server(
    thread_pool_emulator_options: dict[str, Any],
) -> Iterator[EmulatorServer]:
    """One emulator served in-process for the whole session (use ``thread_pool_emulator``)."""
    from thread_pool.emulator import start_emulator

    server = start_emulator(**thread_pool_emulator_options)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def thread_pool_emulator(
    thread_pool_emulator_server: EmulatorServer, request: pytest.FixtureRequest
) -> EmulatorServer:
    """The session's emulator, reset for this test: no objects, zero counters, fault sequences
    from their start, and the session options plus any ``@pytest.mark.thread_pool_emulator(...)``
    options."""
    marker = request.node.get_closest_marker(EMULATOR_MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    thread_pool_emulator_server.emulator.reset(**options)
    return thread_pool_emulator_server


@pytest.fixture
def thread_pool_openai_client(thread_pool_emulator: EmulatorServer) -> Iterator[openai.OpenAI]:
    """An ``openai.OpenAI`` client of the emulator, with the SDK's own retries off."""
    import openai

    client = openai.OpenAI(
        base_url=thread_pool_emulator.base_url,
        api_key=thread_pool_emulator.api_key,
        max_retries=0,
    )
    try:
        yield client
    finally:
        client.close()


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the async fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def thread_pool_async_openai_client(
        thread_pool_emulator: EmulatorServer,
    ) -> AsyncIterator[openai.AsyncOpenAI]:
        """An ``openai.AsyncOpenAI`` client of the emulator, with the SDK's own retries off."""
        import openai

        client = openai.AsyncOpenAI(
            base_url=thread_pool_emulator.base_url,
            api_key=thread_pool_emulator.api_key,
            max_retries=0,
        )
        try:
            yield client
        finally:
            await client.close()
