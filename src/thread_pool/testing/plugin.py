"""pytest plugin: ready fixtures for a Redis (and, below, the emulator) in any test suite.

Installed with the package (entry point ``pytest11``), so a user's own tests can ask for
``thread_pool_redis_url`` or ``thread_pool_prefix`` without any conftest, and, with the
``emulator`` extra, for ``thread_pool_emulator`` (a reset in-process emulator),
``thread_pool_openai_client`` and ``thread_pool_async_openai_client`` (SDK clients of it).

With ``THREAD_POOL_TEST_REDIS=cluster`` the session runs on a private Redis Cluster of three
masters instead (see ``thread_pool_redis_url``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from thread_pool._store.clients import connect
from thread_pool.testing.redis_server import URL_ENV, LocalCluster, local_redis

if TYPE_CHECKING:
    import openai

    from thread_pool.emulator import EmulatorServer


TEST_REDIS_ENV = "THREAD_POOL_TEST_REDIS"
CLUSTER_ENV = "THREAD_POOL_REDIS_CLUSTER"


def cluster_mode() -> bool:
    """True when the session is asked to run on a Redis Cluster (``THREAD_POOL_TEST_REDIS``)."""
    mode = os.environ.get(TEST_REDIS_ENV, "").strip().lower()
    if mode not in ("", "single", "cluster"):
        raise pytest.UsageError(f"{TEST_REDIS_ENV} must be 'single' or 'cluster', not {mode!r}")
    return mode == "cluster"


@pytest.fixture(scope="session")
def thread_pool_redis_url() -> Iterator[str]:
    """URL of a Redis for the test session (env, else 127.0.0.1:6379, else a private server).

    With ``THREAD_POOL_TEST_REDIS=cluster``: a private cluster of three masters, started for the
    session; ``THREAD_POOL_REDIS_CLUSTER=1`` and ``THREAD_POOL_REDIS_URL`` (its first node) are
    exported meanwhile, so pools and admin objects built from the environment, CLI commands and
    worker processes the tests start all open cluster clients of it."""
    if not cluster_mode():
        with local_redis() as url:
            yield url
        return
    saved = {name: os.environ.get(name) for name in (CLUSTER_ENV, URL_ENV)}
    with LocalCluster(masters=3) as cluster:
        os.environ.update({CLUSTER_ENV: "1", URL_ENV: cluster.url})
        try:
            yield cluster.url
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture
def thread_pool_prefix(thread_pool_redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys (and only its keys) are deleted afterwards
    (on every node of a cluster: its client scans each master and deletes slot by slot)."""
    prefix = f"tpt-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = connect(thread_pool_redis_url)
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
