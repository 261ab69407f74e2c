"""Fuzzing every public method with any arguments: each call ends in success or a
``ThreadPoolError`` subclass, never another exception, and a call refused as bad input
(``InvalidArgument``, ``InvalidPoolKey``, ``InvalidSettings``) wrote nothing to Redis.

A fast profile runs in the default tier, a bigger one in the slow tier. The asyncio pool is the
source of the blocking one (``_sync`` is generated from it), so it gets a smaller run of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.snapshot import everything, writes
from thread_pool import (
    AsyncConversationsBackend,
    AsyncThreadPool,
    ConversationsBackend,
    InvalidArgument,
    InvalidPoolKey,
    InvalidSettings,
    Lease,
    PoolAdmin,
    ThreadPool,
    ThreadPoolError,
)
from thread_pool.emulator import EmulatorServer

BAD_INPUT = (InvalidArgument, InvalidPoolKey, InvalidSettings)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
BIG = settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))

# Anything a caller might hand in by mistake, and the edges of what is valid.
ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0004, -0.0, 1e-9, 0.001, 0.5, 86_400, 86_401, 1e400]),
    st.text(max_size=30),
    st.binary(max_size=8),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.sampled_from(["doc", "other", "thread_a", "user", "assistant", "{x}", "a|b", "\ud800"]),
    st.builds(object),
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` four times in five, else anything: enough calls get past the checks to reach
    Redis and the upstream."""
    return st.integers(0, 4).flatmap(lambda n: valid if n else ANY)


def _bounded(value: Any) -> Any:
    """A wait of more than a second becomes one (a day's timeout would stall the run); NaN,
    infinities and everything else pass unchanged."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return min(value, 1)
    return value


KEYS = mostly(st.sampled_from(["doc", "other", "doc", "new", "", "x" * 201, "a b"]))
IDS = mostly(st.lists(st.sampled_from(["thread_a", "thread_c", "t|x", "", "x" * 129]), max_size=3))
LEASES = st.sampled_from(["held", "held", "released", None, "junk", 7])
WAITS = mostly(st.floats(0, 1)).map(_bounded)
SIZES = mostly(st.one_of(st.none(), st.integers(0, 10)))
TTLS = mostly(st.one_of(st.none(), st.floats(0.0005, 120)))
TEXT = mostly(st.text(min_size=1, max_size=20))
METADATA = mostly(st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5))))
PARAMS = st.one_of(
    st.just({}),
    st.dictionaries(
        st.sampled_from(
            ["temperature", "temprature", "stream", "input", "bogus", "max_output_tokens"]
        ),
        ANY,
        max_size=2,
    ),
)

# name -> the arguments it is fuzzed with; "lease" names a LEASES slot.
POOL_CALLS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "acquire": st.fixed_dictionaries({"key": KEYS, "timeout": WAITS}),
    "release": st.fixed_dictionaries({"lease": LEASES}),
    "renew": st.fixed_dictionaries({"lease": LEASES, "ttl": TTLS}),
    "check": st.fixed_dictionaries(
        {
            "lease": LEASES,
            "min_remaining": mostly(st.floats(0, 5)),
            "starts_run": mostly(st.booleans()),
        }
    ),
    "add_threads": st.fixed_dictionaries({"key": KEYS, "thread_ids": IDS}),
    "configure": st.fixed_dictionaries(
        {"key": KEYS, "min_size": SIZES, "max_size": SIZES, "ttl": TTLS}
    ),
    "stats": st.fixed_dictionaries({"key": KEYS}),
    "history": st.fixed_dictionaries({"key": KEYS}),
    "reap": st.fixed_dictionaries({"key": KEYS}),
    "purge_retired": st.fixed_dictionaries({"key": KEYS}),
    "append": st.fixed_dictionaries(
        {
            "key": KEYS,
            "role": mostly(st.sampled_from(["user", "assistant"])),
            "content": TEXT,
            "append_id": mostly(st.one_of(st.none(), st.text(min_size=1, max_size=8))),
        }
    ),
    "run": st.fixed_dictionaries(
        {"key": KEYS, "message": TEXT, "metadata": METADATA, "timeout": WAITS, "params": PARAMS}
    ),
    "lease.run": st.fixed_dictionaries(
        {"lease": LEASES, "message": TEXT, "metadata": METADATA, "params": PARAMS}
    ),
}
ADMIN_CALLS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "status": st.fixed_dictionaries({"key": KEYS}),
    "set_draining": st.fixed_dictionaries({"key": KEYS, "draining": mostly(st.booleans())}),
    "drain": st.fixed_dictionaries({"key": KEYS, "timeout": WAITS, "poll": WAITS}),
    "export": st.fixed_dictionaries({"keys": st.one_of(st.lists(KEYS, max_size=2), ANY)}),
    "delete": st.fixed_dictionaries(
        {
            "key": mostly(st.sampled_from(["gone", "gone", "", "a b"])),
            "backend": st.sampled_from(["real", None, "junk"]),
            "force": mostly(st.booleans()),
        }
    ),
    "grow_one": st.fixed_dictionaries(
        {
            "key": KEYS,
            "target": mostly(st.integers(0, 4)),
            "backend": st.sampled_from(["real", "real", None, "junk"]),
        }
    ),
}
CALLS = st.one_of(
    *(st.tuples(st.just(name), args) for name, args in {**POOL_CALLS, **ADMIN_CALLS}.items())
)


class World:
    """A pool with a backend (the emulator), an admin object and a key prefix of their own."""

    def __init__(
        self,
        pool: ThreadPool,
        admin: PoolAdmin,
        backend: ConversationsBackend,
        options: dict[str, Any],
    ) -> None:
        self.pool = pool
        self.options = options
        self.admin = admin
        self.backend = backend
        self.outcomes: Counter[str] = Counter()
        self.written: list[str] = []

    def reset(self) -> None:
        """The same starting point for every case: pools doc and other, not draining, and pool
        gone (the one deleted: made by a pool object of its own, as a pool object that knew a
        pool deleted under it rightly finds it lost)."""
        if "gone" not in self.admin.pools():
            with ThreadPool(**self.options) as other:
                other.add_threads("gone", ["thread_g"])
        for key, ids in (("doc", ["thread_a", "thread_b"]), ("other", ["thread_o", "thread_p"])):
            self.pool.configure(key, min_size=0, max_size=8, ttl=60)
            self.pool.add_threads(key, ids)  # a thread is in one pool
            self.admin.set_draining(key, False)

    def lease(self, slot: Any) -> Any:
        if slot == "held":
            return self.pool.acquire("doc", timeout=1)
        if slot == "released":
            held = self.pool.acquire("doc", timeout=1)
            self.pool.release(held)
            return held
        return slot

    def backend_of(self, slot: Any) -> Any:
        return self.backend if slot == "real" else slot

    def call(self, name: str, args: dict[str, Any]) -> Any:
        a = dict(args)
        if "lease" in a:
            a["lease"] = self.lease(a["lease"])
        if "backend" in a:
            a["backend"] = self.backend_of(a["backend"])
        params = a.pop("params", {})
        if name == "lease.run":
            lease = a.pop("lease")
            if not isinstance(lease, Lease):
                return self.pool.work.run_on(lease, a["message"], metadata=a["metadata"], **params)
            return lease.run(a["message"], metadata=a["metadata"], **params)
        if name == "run":
            return self.pool.run(a.pop("key"), a.pop("message"), **a, **params)
        target = getattr(self.pool if name in POOL_CALLS else self.admin, name)
        return target(**a)


def check_one(world: World, client: redis.Redis, prefix: str, name: str, args: Any) -> None:
    """One case: success or a typed error, and nothing written when refused as bad input."""
    world.reset()
    try:
        # Making a lease for a "lease" slot is setup, not the call under test.
        with contextlib.ExitStack() as cleanup:
            before = everything(client, prefix)
            result = None
            try:
                result = world.call(name, args)
            except ThreadPoolError as error:
                world.outcomes[type(error).__name__] += 1
                if isinstance(error, BAD_INPUT) and not _made_a_lease(args):
                    changed = writes(before, everything(client, prefix))
                    if changed:
                        world.written.append(f"{name}({args!r}): {error} wrote {changed}")
                return
            world.outcomes["ok"] += 1
            if isinstance(result, Lease):
                cleanup.callback(_quietly, world.pool.release, result)
    finally:
        world.pool.reap()  # leases made for the case (held slots) go back


def _made_a_lease(args: Any) -> bool:
    # The "held"/"released" slots acquire before the call: their writes are the setup's.
    return isinstance(args, dict) and args.get("lease") in ("held", "released")


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(ThreadPoolError):
        call(*args)


@pytest.fixture
def world(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_openai_client: openai.OpenAI,
    thread_pool_emulator: EmulatorServer,
) -> Iterator[World]:
    backend = ConversationsBackend(thread_pool_openai_client, model="emulated")
    options: dict[str, Any] = {"redis_url": thread_pool_redis_url, "key_prefix": thread_pool_prefix}
    # A short TTL: leases a case leaves behind expire, and the next case's reap takes them back.
    with (
        ThreadPool(backend=backend, lease_ttl=2, renew_margin=1, **options) as pool,
        PoolAdmin(**options) as admin,
    ):
        yield World(pool, admin, backend, options)


def _fuzz(world: World, client: redis.Redis, prefix: str, profile: settings) -> None:
    @profile
    @given(call=CALLS)
    def one(call: tuple[str, dict[str, Any]]) -> None:
        check_one(world, client, prefix, *call)

    one()
    total = sum(world.outcomes.values())
    typed = total - world.outcomes["ok"]
    print(f"\nfuzzed {total} calls: {world.outcomes['ok']} ok, {typed} typed errors")
    print(f"  by type: {dict(world.outcomes.most_common())}")
    print(f"  refused calls that wrote: {len(world.written)}")
    assert world.written == []
    assert world.outcomes["ok"] > 0
    assert typed > 0


def test_every_public_method_answers_any_arguments_with_success_or_a_typed_error(
    world: World, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    _fuzz(world, redis_client, thread_pool_prefix, FAST)


@pytest.mark.slow
# About a minute on an idle machine; several times that on a loaded one.
@pytest.mark.timeout(900)
def test_every_public_method_answers_any_arguments_at_length(
    world: World, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    _fuzz(world, redis_client, thread_pool_prefix, BIG)


ASYNC_CALLS = st.one_of(
    *(
        st.tuples(st.just(name), POOL_CALLS[name])
        for name in ("acquire", "renew", "check", "add_threads", "configure", "append", "run")
    )
)


def test_the_asyncio_pool_answers_any_arguments_with_success_or_a_typed_error(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
) -> None:
    outcomes: Counter[str] = Counter()
    written: list[str] = []

    async def case(name: str, args: dict[str, Any]) -> None:
        client = openai.AsyncOpenAI(
            base_url=thread_pool_emulator.base_url, api_key=thread_pool_emulator.api_key
        )
        backend = AsyncConversationsBackend(client, model="emulated")
        async with AsyncThreadPool(
            backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
        ) as pool:
            await pool.add_threads("doc", ["thread_a", "thread_b"])
            a = dict(args)
            held = None
            if "lease" in a:
                held = await pool.acquire("doc", timeout=1) if a["lease"] == "held" else None
                a["lease"] = held if held is not None else a["lease"]
            before = everything(redis_client, thread_pool_prefix)
            try:
                if name == "run":
                    params = a.pop("params")
                    result: Any = await pool.run(a.pop("key"), a.pop("message"), **a, **params)
                else:
                    result = await getattr(pool, name)(**a)
            except ThreadPoolError as error:
                outcomes[type(error).__name__] += 1
                if isinstance(error, BAD_INPUT):
                    changed = writes(before, everything(redis_client, thread_pool_prefix))
                    if changed:
                        written.append(f"{name}({args!r}) wrote {changed}")
            else:
                outcomes["ok"] += 1
                if name == "acquire":
                    held = result
            if held is not None:
                with contextlib.suppress(ThreadPoolError):
                    await pool.release(held)
        await client.close()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(call=ASYNC_CALLS)
    def one(call: tuple[str, dict[str, Any]]) -> None:
        asyncio.run(case(*call))

    one()
    print(f"\nasyncio pool: {sum(outcomes.values())} calls, {dict(outcomes.most_common())}")
    assert written == []
