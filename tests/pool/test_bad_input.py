"""Bad input and corrupted state give a clear typed error, never a hang or a wrong answer."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.upstream import requests_made
from thread_pool import (
    ConversationsBackend,
    CorruptState,
    InvalidArgument,
    InvalidPoolKey,
    InvalidSettings,
    Settings,
    ThreadPool,
    ThreadPoolError,
)
from thread_pool._model.limits import MAX_KEY_LENGTH
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer

VALID_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*")
QUICK = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as made:
        yield made


@QUICK
@given(key=st.one_of(st.text(max_size=250), st.from_regex(VALID_KEY, fullmatch=True)))
def test_any_pool_key_is_either_refused_or_works(pool: ThreadPool, key: str) -> None:
    valid = bool(VALID_KEY.fullmatch(key)) and len(key) <= MAX_KEY_LENGTH
    if not valid:
        with pytest.raises(InvalidPoolKey):
            pool.add_threads(key, ["thread_a"])
        return
    # One pool per thread: each key gets its own (the same one when an example is replayed).
    thread = f"thread_{hashlib.sha1(key.encode()).hexdigest()[:24]}"
    pool.add_threads(key, [thread])
    with pool.lease(key, timeout=0) as lease:
        assert (lease.key, lease.thread_id) == (key, thread)
    assert key in pool.pools()


@QUICK
@given(
    min_size=st.one_of(
        st.integers(-5, 20),
        st.integers(-5, 10**20),
        st.floats(allow_nan=True),
        st.none(),
        st.text(),
    ),
    max_size=st.one_of(
        st.integers(-5, 20),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=True),
        st.none(),
        st.booleans(),
    ),
    ttl=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 100), st.none()),
)
def test_any_configuration_is_either_refused_whole_or_applied(
    pool: ThreadPool, min_size: Any, max_size: Any, ttl: Any
) -> None:
    before = pool.configure("conf", max_size=10, min_size=0, ttl=60)
    try:
        after = pool.configure("conf", min_size=min_size, max_size=max_size, ttl=ttl)
    except InvalidArgument:
        unchanged = pool.stats("conf")
        assert (unchanged.min_size, unchanged.max_size, unchanged.lease_ttl) == (
            before.min_size,
            before.max_size,
            before.lease_ttl,
        )
        return
    assert after.min_size == (before.min_size if min_size is None else min_size)
    assert after.max_size == (before.max_size if max_size is None else max_size)
    assert after.min_size <= after.max_size
    assert after.lease_ttl > pool.settings.renew_margin


@QUICK
@given(
    name=st.sampled_from(
        ["LEASE_TTL", "ACQUIRE_TIMEOUT", "MAX_SIZE", "MIN_SIZE", "MAX_WAITERS", "KEY_PREFIX"]
    ),
    value=st.text(max_size=20),
)
def test_any_setting_from_the_environment_is_either_refused_by_name_or_valid(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with monkeypatch.context() as env:
        try:
            env.setenv(f"THREAD_POOL_{name}", value)
        except ValueError:  # a NUL byte cannot be in the environment at all
            return
        try:
            loaded = Settings.load()
        except InvalidSettings as error:
            message = str(error)
        else:
            assert loaded.min_size <= loaded.max_size
            assert loaded.lease_ttl > loaded.renew_margin
            return
        # Named as the environment spells it, or (for a relation of two) by both field names.
        assert f"THREAD_POOL_{name}" in message or name.lower() in message, message


@pytest.mark.parametrize("which", PoolKeys.of("p", "k").all_fixed(), ids=lambda n: n.split(":")[-1])
def test_a_key_of_the_wrong_type_is_corrupt_state(
    pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str, which: str
) -> None:
    pool.add_threads("doc", ["thread_a", "thread_b"])
    held = pool.acquire("doc", timeout=0)
    name = which.replace("p:{k}:", f"{thread_pool_prefix}:{{doc}}:")
    redis_client.delete(name)
    redis_client.set(name, "not what thread_pool wrote")
    outcomes = []
    for call in (
        lambda: pool.acquire("doc", timeout=0),
        lambda: pool.release(held),
        lambda: pool.stats("doc"),
        lambda: pool.add_threads("doc", ["thread_c"]),
        lambda: pool.reap("doc"),
    ):
        try:
            call()
            outcomes.append("ok")
        except CorruptState:
            outcomes.append("corrupt")
        except ThreadPoolError as error:  # a typed error that the damage explains
            outcomes.append(type(error).__name__)
    # Nothing raised an untyped error (that would have failed the test above). The keys every
    # operation reads report their damage as such; the others (queues, claims, retired list)
    # are touched only on their own paths, where the same mapping applies.
    if which.rsplit(":", 1)[-1] in {"meta", "threads", "idle", "leases", "holds"}:
        assert "corrupt" in outcomes, outcomes


@pytest.mark.parametrize("field", ["max_size", "ttl_ms", "min_size"])
def test_a_missing_field_is_corrupt_state(
    pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str, field: str
) -> None:
    pool.add_threads("doc", ["thread_a"])
    held = pool.acquire("doc", timeout=0)
    redis_client.hdel(PoolKeys.of(thread_pool_prefix, "doc").meta, field)
    errors = []
    for call in (
        lambda: pool.release(held),
        lambda: pool.acquire("doc", timeout=0),
        lambda: pool.stats("doc"),
    ):
        try:
            call()
        except CorruptState as error:
            errors.append(str(error))
        except ThreadPoolError:
            pass  # a consequence of the damage (e.g. no thread came back): typed, so fine
    assert errors, f"nobody noticed that {field} is missing"
    assert all("'doc'" in e for e in errors)


# Any text a caller may send, surrogates and control characters included, plus the edges.
MESSAGES = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=300),
    st.sampled_from(
        ["", " ", "\n\t", "\x00", "é" * 256_000, "x" * 256_001, "🧵" * 1000, "\ud800 lone"]
    ),
)


def _acceptable(message: str) -> bool:
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(message.strip()) and len(message) <= 256_000


@QUICK
@given(message=MESSAGES)
def test_any_message_is_either_refused_before_any_request_or_arrives_intact(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    message: str,
) -> None:
    backend = ConversationsBackend(thread_pool_openai_client, model="emulated")
    with ThreadPool(
        backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as pool:
        before = requests_made(thread_pool_emulator)
        try:
            turn = pool.run("messages", message)
        except InvalidArgument:
            assert not _acceptable(message)
            assert requests_made(thread_pool_emulator) == before
            return
        assert _acceptable(message)
        # Upstream holds exactly the text sent, and so does the pool's log.
        items = thread_pool_openai_client.conversations.items.list(
            turn.thread_id, order="desc", limit=2
        )
        sent = items.data[1]
        assert sent.type == "message"
        assert sent.role == "user"
        assert "".join(part.text for part in sent.content) == message  # type: ignore[union-attr]
        logged = pool.history("messages")[-2]
        assert (logged.role, logged.content) == ("user", message)


def test_text_that_cannot_be_sent_is_refused_wherever_it_enters(pool: ThreadPool) -> None:
    with pytest.raises(InvalidArgument, match="content is not valid text"):
        pool.append("doc", "user", "half a pair \udc80")
    with pytest.raises(InvalidArgument, match="append_id is not valid text"):
        pool.append("doc", "user", "fine", append_id="\ud800")
    with pytest.raises(InvalidArgument, match="metadata value of 'k' is not valid text"):
        pool.run("doc", "fine", metadata={"k": "\ud800"})
    assert pool.pools() == []  # nothing was created for any of them
