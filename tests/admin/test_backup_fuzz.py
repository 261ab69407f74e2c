"""A structure-aware fuzzer of backup files: real exports, mutated in types, values, shapes and
sizes. Every case ends in a typed error with nothing written to Redis, or in an import whose pools
pass a consistency check read straight from Redis and survive export -> import -> export.

The file check runs on every case; every case it passes goes to Redis through ``restore``, and
a share of the cases it refuses goes straight to the import script, which must refuse them by
itself (or, where it is more lenient, import a consistent pool).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.support.backends import RecordingBackend
from tests.support.redis_state import keys_under, pool_problems
from thread_pool import InvalidBackup, ThreadPool, ThreadPoolError
from thread_pool._model.backup import SCRIPT_LIMITS, check_document
from thread_pool._store.keys import PoolKeys
from thread_pool._sync.store import Store
from thread_pool.admin import PoolAdmin

CASES = int(os.environ.get("THREAD_POOL_FUZZ_CASES", "10000"))
SEED = 14
# One in this many of the cases the file check refuses also goes straight to the script.
TO_SCRIPT = 5
# One in this many imports is also exported, imported again and compared (every import is
# checked for consistency); it keeps the run near a minute, on a cluster too.
ROUND_TRIP = 2


@pytest.fixture
def admin(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[PoolAdmin]:
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as a:
        yield a


def real_exports(url: str, prefix: str, admin: PoolAdmin, client: redis.Redis) -> dict[str, Any]:
    """A backup of three pools in every state a pool's keys can hold: idle, leased, settling
    (with its claim) and retired threads, a log with cursors and idempotency records, a waiter, a
    growth reservation, an in-flight record. The pools are deleted afterwards."""
    with ThreadPool(redis_url=url, key_prefix=prefix, backend=RecordingBackend()) as pool:
        pool.add_threads("doc-a", ["a_1", "a_2", "a_3", "a_4"])
        for n in range(5):
            pool.append("doc-a", "user" if n % 2 == 0 else "assistant", f"message {n} é |")
        pool.release(pool.acquire("doc-a"))
        held = pool.acquire("doc-a")
        pool.configure("doc-a", max_size=3)  # retires an idle thread
        keys = PoolKeys.of(prefix, "doc-a")
        now_ms = int(time.time() * 1000)
        client.rpush(keys.waiters, f"ticket1|{now_ms + 60_000}|host:1:task")
        client.zadd(keys.reserved, {"ticket2": now_ms + 30_000})
        client.hset(keys.inflight, held.thread_id, f"{held.fence}|run_abc")
        pool.add_threads("doc-b", ["b_1", "b_2"])
        pool.append("doc-b", "user", "hello")
        b = PoolKeys.of(prefix, "doc-b")
        client.zrem(b.idle, "b_2")  # b_2 is being settled by someone
        client.zadd(b.settling, {"b_2": now_ms + 10_000})
        client.hset(b.claims, "b_2", "token9")
        pool.add_threads("doc-c", ["c_1"])
        doc = admin.export()
        pool.release(held)
    for key in admin.pools():
        admin.delete(key, force=True)
    assert keys_under(client, prefix) == set()
    assert [p["key"] for p in doc["pools"]] == ["doc-a", "doc-b", "doc-c"]
    return doc


# -- the mutator ---------------------------------------------------------------------------------


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 7, 2**53, 2**64, 1.5, math.nan, math.inf, -math.inf, 1e300,
    "", "0", "-1", "01", "1e5", "1.0", "1.", " 1", "0x10", "nan", "inf", "9007199254740993",
    "4503599627370495", "abc", "thread_x", "a|b|c", "|", "||", "\x00", "é", "\ud800", "\u202e",
    "1-0", "0-0", "99999999999999999-1", [], {}, ["a"], ["a", "b", "c"], {"a": "b"}, [["x"]],
    {"name": "meta", "type": "hash", "data": {}},
]  # fmt: skip

NUMERIC_TEXT = ["0", "1", "-5", "1.5", "1e3", "1E+3", "12345678901234567", "00", "+1", "1_000",
                "٣", "1e400", "-0", "3.0", str(2**52), str(2**53 - 1), str(2**53)]  # fmt: skip


def nodes(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, index-or-key) of ``value``, depth first (bounded: real docs are small)."""
    stack = [value]
    while stack:
        here = stack.pop()
        items = here.items() if isinstance(here, dict) else enumerate(here)
        for k, v in list(items):
            out.append((here, k))
            if isinstance(v, dict | list) and len(out) < 5000:
                stack.append(v)
    return out


def mutate(doc: dict[str, Any], rng: random.Random) -> str:
    """Change ``doc`` in place one way; the name of the way."""
    spots = nodes(doc, [])
    parent, k = rng.choice(spots)
    how = rng.choice(
        ["replace", "replace", "delete", "insert", "duplicate", "text", "number", "number",
         "swap", "grow", "long", "deep", "exported_at", "state", "retype", "rename"]
    )  # fmt: skip
    value = parent[k]
    if how == "replace":
        parent[k] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif how == "delete":
        del parent[k]
    elif how == "insert":
        if isinstance(value, list):
            value.insert(rng.randint(0, len(value)), copy.deepcopy(rng.choice(ODD_VALUES)))
        elif isinstance(value, dict):
            value[rng.choice(["x", "thread_9", "min_size", "", "epoch"])] = rng.choice(NUMERIC_TEXT)
        else:
            parent[k] = [value, value]
    elif how == "duplicate" and isinstance(value, list) and value:
        value.append(copy.deepcopy(rng.choice(value)))
    elif how == "text" and isinstance(value, str):
        parent[k] = rng.choice([value + "|", "|" + value, value.upper(), value[:-1], value * 2])
    elif how == "number":
        parent[k] = rng.choice(NUMERIC_TEXT)
    elif how == "swap" and isinstance(value, list) and len(value) > 1:
        i, j = rng.sample(range(len(value)), 2)
        value[i], value[j] = value[j], value[i]
    elif how == "grow" and isinstance(value, list) and value:
        value.extend([value[-1]] * rng.randint(100, 2000))
    elif how == "long":
        parent[k] = "x" * rng.choice([129, 1000, 300_000])
    elif how == "deep":
        parent[k] = deep(rng.choice([50, 3000]))
    elif how == "exported_at":
        pools = doc.get("pools")
        pool = rng.choice(pools) if isinstance(pools, list) and pools else {}
        if isinstance(pool, dict):
            pool["exported_at"] = rng.choice(
                [time.time() - 3 * 365 * 86400, time.time() + 10, time.time() + 3600, "1", None,
                 math.nan, 0, time.time() - 10 * 365 * 86400, time.time()]
            )  # fmt: skip
    elif how in ("state", "retype", "rename"):
        mutate_key(doc, rng, how)
    else:
        parent[k] = copy.deepcopy(rng.choice(ODD_VALUES))
        how = "replace"
    return how


def mutate_key(doc: dict[str, Any], rng: random.Random, how: str) -> None:
    """Mutations that know the model: a thread moved between states, a key's type or name."""
    found = doc.get("pools")
    pools = [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []
    keys = rng.choice(pools).get("keys") if pools else None
    if not isinstance(keys, list) or not keys:
        return
    entry = rng.choice(keys)
    if not isinstance(entry, dict):
        return
    if how == "retype":
        entry["type"] = rng.choice(["hash", "zset", "list", "set", "string", "stream", "none"])
    elif how == "rename":
        entry["name"] = rng.choice(["meta", "threads", "idle", "leases", "log", "pools", "x"])
    else:
        by_name = {
            e["name"]: e for e in keys if isinstance(e, dict) and isinstance(e.get("name"), str)
        }
        threads_entry = by_name.get("threads")
        registered = threads_entry.get("data") if threads_entry else None
        if isinstance(registered, dict) and registered:
            thread = rng.choice(list(registered))
            target = rng.choice(["idle", "leases", "settling", "retired"])
            if target not in by_name:
                kind = "list" if target == "retired" else "zset"
                by_name[target] = {"name": target, "type": kind, "data": []}
                keys.append(by_name[target])
            data = by_name[target].get("data")
            if isinstance(data, list):
                data.append(thread if target == "retired" else [thread, "1"])


# -- one case ------------------------------------------------------------------------------------


def loose_flat(entry: Any) -> Any:
    """Whatever a pool entry holds, in the flat form the script takes (as far as it has one)."""
    keys = entry.get("keys") if isinstance(entry, dict) else entry
    if not isinstance(keys, list):
        return keys
    out = []
    for k in keys:
        if not isinstance(k, dict):
            out.append(k)
            continue
        data = k.get("data")
        if isinstance(data, dict):
            data = [x for pair in data.items() for x in pair]
        elif k.get("type") == "zset" and isinstance(data, list):
            data = [x for pair in data for x in (pair if isinstance(pair, list) else [pair])]
        out.append([k.get("name"), k.get("type"), data])
    return out


class Fuzz:
    """Runs cases on one prefix and counts what they ended in."""

    def __init__(self, admin: PoolAdmin, client: redis.Redis, prefix: str) -> None:
        self.admin = admin
        self.client = client
        self.prefix = prefix
        self.store = Store(client, prefix)
        self.names = set(admin.key_names)
        self.counts: Counter[str] = Counter()

    def nothing_written(self, case: int) -> None:
        left = keys_under(self.client, self.prefix)
        if left:
            self.counts["writes after a failed case"] += 1
        assert left == set(), (case, sorted(left)[:5])

    def imported(self, case: int) -> None:
        """The restored pools are consistent and round-trip; then they are deleted again."""
        keys = self.admin.pools()
        for key in keys:
            assert pool_problems(self.client, self.prefix, key) == [], (case, key)
        if self.counts["imported"] % ROUND_TRIP == 0:
            first = self.admin.export(keys)
            self.wipe()
            self.admin.restore(first, exact=True)
            again = self.admin.export(keys)
            for doc in (first, again):
                for p in doc["pools"]:
                    p.pop("exported_at")
            assert again == first, case
            self.counts["round trips"] += 1
        self.wipe()

    def wipe(self) -> None:
        """Remove every key under the prefix (the tests of delete are elsewhere; here it would
        only cost time)."""
        left = keys_under(self.client, self.prefix)
        if left:
            self.client.delete(*left)

    def run(self, case: int, doc: Any, rng: random.Random) -> None:
        exact = rng.random() < 0.3
        try:
            check_document(doc, self.names, recover=not exact)
        except InvalidBackup:
            self.counts["refused by the file check"] += 1
            if case % TO_SCRIPT == 0:
                self.to_script(case, doc)
            return
        try:
            self.admin.restore(doc, exact=exact)
        except ThreadPoolError as exc:
            self.counts[f"refused in redis: {type(exc).__name__}"] += 1
            self.nothing_written(case)
            return
        self.counts["imported"] += 1
        self.imported(case)

    def to_script(self, case: int, doc: Any) -> None:
        """Send a refused file's pools straight to the import script."""
        pools = doc.get("pools") if isinstance(doc, dict) else None
        for entry in pools if isinstance(pools, list) else []:
            try:
                check_document({**doc, "pools": [entry]}, self.names)
                continue  # a good pool of a file refused for another: nothing to learn
            except InvalidBackup:
                pass
            try:
                payload = json.dumps(loose_flat(entry))
            except (RecursionError, ValueError):
                continue
            at = entry.get("exported_at") if isinstance(entry, dict) else None
            finite = isinstance(at, float | int) and math.isfinite(at) and abs(at) < 1e15
            exported = str(round(at * 1000)) if finite and at is not None else "x"
            mode = "exact" if case % 3 == 0 else "recover"
            reply = self.store.call(
                "admin_import", "fuzz", payload, mode, exported, SCRIPT_LIMITS, 0
            )
            self.counts["sent straight to the script"] += 1
            if reply[0] == "INVALID":
                self.counts["refused by the script"] += 1
                self.nothing_written(case)
                continue
            assert reply[0] == "OK", (case, reply)
            # What the file check refused lay outside what the script is given (the file's
            # header, the pool key, fields the flat form drops): the pool must still be sound.
            self.counts["imported by the script alone"] += 1
            self.client.sadd(f"{self.prefix}:pools", "fuzz")  # restore() registers; this did not
            self.claim_for_check("fuzz")
            self.imported(case)

    def claim_for_check(self, key: str) -> None:
        """Own a script-only import's threads as restore() would have, before the checks."""
        k = PoolKeys.of(self.prefix, key)
        threads = [*self.client.hkeys(k.threads), *self.client.lrange(k.retired, 0, -1)]
        if threads:
            self.store.owners("claim", key, [str(t) for t in threads])


@pytest.mark.slow
def test_mutated_exports_end_in_a_typed_error_writing_nothing_or_a_consistent_pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    admin: PoolAdmin,
    redis_client: redis.Redis,
) -> None:
    base = real_exports(thread_pool_redis_url, thread_pool_prefix, admin, redis_client)
    fuzz = Fuzz(admin, redis_client, thread_pool_prefix)
    rng = random.Random(SEED)
    ways: Counter[str] = Counter()
    started = time.monotonic()
    for case in range(CASES):
        doc = copy.deepcopy(base)
        if rng.random() < 0.3:  # a single pool's file, as `export KEY` writes
            doc["pools"] = [rng.choice(doc["pools"])]
        doc["pools"][0]["exported_at"] = time.time() - rng.choice([0, 5, 86400 * 30])
        if case % 50:  # every 50th case is the untouched export: it must import
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                how = mutate(doc, rng)
                ways[how] += 1
                if how == "deep":
                    break  # nothing copies a value nested thousands deep
        fuzz.run(case, doc, rng)
    took = time.monotonic() - started
    counts = fuzz.counts
    typed = sum(n for name, n in counts.items() if name.startswith("refused ")) - counts.get(
        "refused by the script", 0
    )
    print(
        f"\nbackup fuzz: {CASES} cases in {took:.1f}s; typed errors {typed}, imported "
        f"{counts['imported']}; writes after a failed case "
        f"{counts['writes after a failed case']}; {dict(counts)}; mutations {dict(ways)}"
    )
    assert counts["writes after a failed case"] == 0
    assert counts["imported"] >= CASES // 50  # at least the untouched ones
    assert counts["refused by the file check"] > CASES // 2
    assert counts["refused by the script"] > 0
