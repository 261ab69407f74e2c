"""Redis failures reach callers as thread_pool's typed errors (thread_pool._store.errors)."""

from __future__ import annotations

import pytest
import redis.exceptions as rexc

from thread_pool._store.errors import mapped, url_checked
from thread_pool.errors import CorruptState, InvalidSettings, StoreRefused, StoreUnavailable


@pytest.mark.parametrize(
    "failure",
    [
        rexc.ConnectionError("Connection refused"),
        rexc.TimeoutError("Timeout reading from socket"),
        rexc.BusyLoadingError("Redis is loading the dataset in memory"),
        rexc.ClusterDownError("The cluster is down"),
        rexc.MasterDownError("Link with MASTER is down"),
        rexc.TryAgainError("Multiple keys request during rehashing of slot"),
        rexc.ReadOnlyError("You can't write against a read only replica."),
        rexc.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
        rexc.SlotNotCoveredError("Slot 1234 is not covered by the cluster"),
        rexc.ResponseError("BUSY Redis is busy running a script."),
        rexc.ResponseError("NOREPLICAS Not enough good replicas to write."),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_store_that_cannot_serve_now_is_unavailable(failure: Exception) -> None:
    with pytest.raises(StoreUnavailable, match="during acquire on pool 'doc'") as caught:
        with mapped("acquire on pool 'doc'"):
            raise failure
    assert caught.value.__cause__ is failure


def test_foreign_data_is_corrupt_state() -> None:
    with pytest.raises(CorruptState, match="did not write"), mapped("stats on pool 'doc'"):
        raise rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")


@pytest.mark.parametrize(
    "failure",
    [
        rexc.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
        rexc.AuthenticationError("invalid username-password pair or user is disabled."),
        rexc.AuthorizationError("NOAUTH Authentication required."),
        rexc.ResponseError("ERR unknown command 'FCALL'"),
        rexc.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
    ],
    ids=lambda e: str(e).split()[0],
)
def test_a_refused_command_is_store_refused_not_a_raw_redis_error(failure: Exception) -> None:
    # A denial does not pass by itself: it is not StoreUnavailable (which callers may retry).
    with pytest.raises(StoreRefused, match="redis refused acquire on pool 'doc'") as caught:
        with mapped("acquire on pool 'doc'"):
            raise failure
    assert not isinstance(caught.value, StoreUnavailable)
    assert caught.value.__cause__ is failure


def test_a_database_number_the_server_lacks_is_invalid_settings() -> None:
    with pytest.raises(InvalidSettings, match="database number"), mapped("x"):
        raise rexc.ResponseError("DB index is out of range")


def test_an_ill_formed_url_is_invalid_settings_without_the_url() -> None:
    with pytest.raises(InvalidSettings, match="THREAD_POOL_REDIS_URL") as caught, url_checked():
        raise ValueError("Redis URL must specify one of the following schemes")
    assert "secret" not in str(caught.value)
