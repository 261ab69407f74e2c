"""Waiting for a thread: a caller queued by acquire blocks on its own mailbox until a release
hands it a thread, a growth slot comes free, or its time runs out."""

from __future__ import annotations

import time

from thread_pool._async.settling import AsyncSettling
from thread_pool._async.store import AsyncStore
from thread_pool._store.replies import Grant, Outcome, grant, mailbox_grant, outcome, text
from thread_pool._store.scripts import ms
from thread_pool.errors import PoolTimeout

# A waiter's queue entry lapses this long after the waiter last said it is still there (and a
# hand-off skips a lapsed entry), so a waiter that died costs no thread more than this; a live
# waiter says so every WAIT_REFRESH_S.
WAIT_LIVE_S = 5.0
WAIT_REFRESH_S = 2.0


async def wait(
    store: AsyncStore,
    settling: AsyncSettling,
    key: str,
    token: str,
    queued: str,
    give_up: float,
    next_ms: int,
) -> tuple[Grant, float] | None:
    """Block on ``token``'s mailbox until a thread is handed to it (the grant, and when it was
    received), a growth slot came free (None: ask again), or time runs out (``PoolTimeout``).
    While waiting, wake when a lease is due to expire and reclaim it (its holder may be dead,
    and nobody else may be asking), and every ``WAIT_REFRESH_S`` to keep the queue entry live."""
    refresh_at = time.monotonic() + WAIT_REFRESH_S
    due_at = None if next_ms < 0 else time.monotonic() + next_ms / 1000 + 0.001
    while True:
        wake = min(give_up, refresh_at, give_up if due_at is None else due_at)
        message = await store.wait_mailbox(key, token, wake - time.monotonic())
        received_at = time.monotonic()
        if message == "R":
            return None
        if message is not None:
            # Granted when the releaser ran, a moment before we read it: the hand-off takes
            # well under a millisecond, so the receipt time stands in for the grant time.
            return mailbox_grant(message), received_at
        if received_at >= give_up:
            # Out of time; a hand-off may still have raced in, and then it is ours.
            word, rest = outcome(await store.call("take_wait", key, token, queued))
            if word is Outcome.GRANTED:
                return grant(rest), received_at
            if word is Outcome.RETRY:
                return None
            raise PoolTimeout(f"no thread of pool {key!r} became free in time")
        if due_at is not None and received_at >= due_at:
            # A lease is due: reclaim it; settled, it goes to the oldest waiter (maybe us).
            next_ms = await settling.reap_due(key)
            due_at = None if next_ms < 0 else time.monotonic() + next_ms / 1000 + 0.001
        if received_at >= refresh_at:
            live = ms(min(give_up - received_at, WAIT_LIVE_S))
            word, rest = outcome(await store.call("wait_alive", key, token, queued, live))
            if word is Outcome.GRANTED:
                return grant(rest), received_at
            if word in (Outcome.RETRY, Outcome.GONE):
                return None  # ask again: a slot came free, or we were dropped as gone
            queued = text(rest[0])
            refresh_at = time.monotonic() + WAIT_REFRESH_S
