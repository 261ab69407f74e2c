"""Reading what a test's pools left in Redis, independently of the library's own decoding: every
key under a prefix, and a consistency check of one pool's raw keys."""

from __future__ import annotations

import re

import redis

from thread_pool._store.keys import PoolKeys, owners_key, registry_key

_INT = re.compile(r"0|[1-9][0-9]*")


def keys_under(client: redis.Redis, prefix: str) -> set[str]:
    """Every key under ``prefix`` (on every node of a cluster)."""
    found = client.scan_iter(match=f"{prefix}:*", count=1000)
    return {k if isinstance(k, str) else k.decode() for k in found}


def pool_problems(client: redis.Redis, prefix: str, key: str) -> list[str]:
    """What is wrong with pool ``key`` as Redis holds it (empty: nothing): each thread in exactly
    one state (idle, leased, settling) with a hold record iff leased, fences and hold fences
    plain integers below 2^53, no thread both registered and retired, the pool in the registry,
    and every thread of it (registered or retired) owned by it."""
    k = PoolKeys.of(prefix, key)
    problems: list[str] = []
    # One round trip: these are read for every case of the backup fuzzer.
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(k.threads)
    for where in (k.idle, k.leases, k.settling):
        pipe.zrange(where, 0, -1)
    pipe.hgetall(k.holds)
    pipe.lrange(k.retired, 0, -1)
    pipe.sismember(registry_key(prefix), key)
    pipe.hgetall(owners_key(prefix))
    threads, idle, leases, settling, holds, retired_list, registered, owners = pipe.execute()
    states: dict[str, list[str]] = {t: [] for t in threads}
    for name, members in (("idle", idle), ("leased", leases), ("settling", settling)):
        for member in members:
            states.setdefault(str(member), []).append(name)
    for thread, found in states.items():
        if thread not in threads:
            problems.append(f"{thread} is {found} but not a thread of the pool")
        elif len(found) != 1:
            problems.append(f"{thread} is in {len(found)} states: {found}")
    leased = {t for t, s in states.items() if s == ["leased"]}
    if set(holds) != leased:
        problems.append(f"holds {sorted(holds)} differ from leases {sorted(leased)}")
    fences = list(threads.values()) + [h.split("|")[1] for h in holds.values() if "|" in h]
    for fence in fences:
        if not _INT.fullmatch(fence) or int(fence) >= 2**53:
            problems.append(f"fence {fence!r} is not an integer below 2^53")
    retired = [str(t) for t in retired_list]
    problems += [f"{t} is registered and retired" for t in retired if t in threads]
    if not registered:
        problems.append("the pool is not in the registry")
    problems += [
        f"{t} is owned by {owners.get(t)!r}" for t in [*threads, *retired] if owners.get(t) != key
    ]
    return problems
