"""Reading what a test's pools left in Redis, independently of the library's own decoding: every
key under a prefix, and a consistency check of one pool's raw keys."""

from __future__ import annotations

import re

import redis

from thread_pool._store.keys import PoolKeys, owners_key, registry_key

_INT = re.compile(r"0|[1-9][0-9]*")


def keys_under(client: redis.Redis, prefix: str) -> set[str]:
    """Every key under ``prefix`` (on every node of a cluster)."""
    return {k if isinstance(k, str) else k.decode() for k in client.scan_iter(match=f"{prefix}:*")}


def pool_problems(client: redis.Redis, prefix: str, key: str) -> list[str]:
    """What is wrong with pool ``key`` as Redis holds it (empty: nothing): each thread in exactly
    one state (idle, leased, settling) with a hold record iff leased, fences and hold fences
    plain integers below 2^53, no thread both registered and retired, the pool in the registry,
    and every thread of it (registered or retired) owned by it."""
    k = PoolKeys.of(prefix, key)
    problems: list[str] = []
    threads: dict[str, str] = client.hgetall(k.threads)  # type: ignore[assignment]
    states: dict[str, list[str]] = {t: [] for t in threads}
    for name, where in (("idle", k.idle), ("leased", k.leases), ("settling", k.settling)):
        for member in client.zrange(where, 0, -1):
            states.setdefault(str(member), []).append(name)
    for thread, found in states.items():
        if thread not in threads:
            problems.append(f"{thread} is {found} but not a thread of the pool")
        elif len(found) != 1:
            problems.append(f"{thread} is in {len(found)} states: {found}")
    holds: dict[str, str] = client.hgetall(k.holds)  # type: ignore[assignment]
    leased = {t for t, s in states.items() if s == ["leased"]}
    if set(holds) != leased:
        problems.append(f"holds {sorted(holds)} differ from leases {sorted(leased)}")
    fences = list(threads.values()) + [h.split("|")[1] for h in holds.values() if "|" in h]
    for fence in fences:
        if not _INT.fullmatch(fence) or int(fence) >= 2**53:
            problems.append(f"fence {fence!r} is not an integer below 2^53")
    retired = [str(t) for t in client.lrange(k.retired, 0, -1)]
    problems += [f"{t} is registered and retired" for t in retired if t in threads]
    if not client.sismember(registry_key(prefix), key):
        problems.append("the pool is not in the registry")
    owners: dict[str, str] = client.hgetall(owners_key(prefix))  # type: ignore[assignment]
    problems += [
        f"{t} is owned by {owners.get(t)!r}" for t in [*threads, *retired] if owners.get(t) != key
    ]
    return problems
