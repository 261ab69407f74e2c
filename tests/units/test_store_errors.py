"""Redis failures reach callers as thread_pool's typed errors (thread_pool._store.errors)."""

from __future__ import annotations

import pytest
import redis.exceptions as rexc

from thread_pool._store.errors import mapped
from thread_pool.errors import CorruptState, StoreUnavailable


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
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_store_that_cannot_serve_now_is_unavailable(failure: Exception) -> None:
    with pytest.raises(StoreUnavailable, match="during acquire on pool 'doc'") as caught:
        with mapped("acquire on pool 'doc'"):
            raise failure
    assert caught.value.__cause__ is failure


def test_foreign_data_is_corrupt_state_and_other_replies_pass_through() -> None:
    with pytest.raises(CorruptState, match="did not write"), mapped("stats on pool 'doc'"):
        raise rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    with pytest.raises(rexc.ResponseError, match="unknown command"), mapped("x"):
        raise rexc.ResponseError("ERR unknown command 'FCALL'")
