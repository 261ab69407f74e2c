"""Assertions about what a pool left in Redis, read with plain commands (not through the pool)."""

from __future__ import annotations

import redis

from thread_pool._store.keys import PoolKeys


def assert_quiet(client: redis.Redis, prefix: str, key: str, threads: int | None = None) -> None:
    """Pool ``key`` is fully idle: no lease, hold, waiter, mailbox, reservation, settling claim
    or request in flight, and every thread is in the idle set (exactly ``threads`` of them when
    given)."""
    k = PoolKeys.of(prefix, key)
    # Every key the scripts wrote is one that keys.py knows (else the checks below see nothing).
    known = set(k.all_fixed())
    for name in client.scan_iter(match=f"{k.base}*"):
        assert name in known or name.startswith((f"{k.base}w:", f"{k.base}x:")), name
    registered = client.hlen(k.threads)
    assert client.zcard(k.leases) == 0, client.zrange(k.leases, 0, -1, withscores=True)
    assert client.hlen(k.holds) == 0, client.hgetall(k.holds)
    assert client.llen(k.waiters) == 0, client.lrange(k.waiters, 0, -1)
    assert client.zcard(k.reserved) == 0, client.zrange(k.reserved, 0, -1)
    assert client.zcard(k.settling) == 0, client.zrange(k.settling, 0, -1)
    assert client.hlen(k.claims) == 0, client.hgetall(k.claims)
    # Nothing in flight on an idle thread (a clean release or a settling clears the record).
    assert client.hlen(k.inflight) == 0, client.hgetall(k.inflight)
    assert list(client.scan_iter(match=f"{k.base}w:*")) == []
    assert client.zcard(k.idle) == registered
    if threads is not None:
        assert registered == threads
    else:
        assert registered <= 1
