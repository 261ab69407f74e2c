"""Waiting for a thread: a caller queued by acquire waits, through its store's dispatcher, until a
release hands it a thread, a growth slot comes free, or its time runs out."""

from __future__ import annotations

import time

from thread_pool._async.dispatch import WAIT_LIVE_S, WAIT_REFRESH_S
from thread_pool._async.settling import AsyncSettling
from thread_pool._async.store import AsyncStore
from thread_pool._store.replies import Grant, Outcome, grant, mailbox_grant, outcome
from thread_pool.errors import PoolTimeout

__all__ = ["WAIT_LIVE_S", "WAIT_REFRESH_S", "wait"]


async def wait(
    store: AsyncStore,
    settling: AsyncSettling,
    key: str,
    token: str,
    give_up: float,
    next_ms: int,
) -> tuple[Grant, float] | None:
    """Wait for the message to ``token`` (a ticket of ``store``'s dispatcher) until a thread is
    handed to it (the grant, and when it was received), a growth slot came free or its queue
    entry lapsed (None: ask again), or time runs out (``PoolTimeout``). While waiting, wake when
    a lease is due to expire and reclaim it (its holder may be dead, and nobody else may be
    asking). The dispatcher keeps the queue entry live meanwhile."""
    due_at = None if next_ms < 0 else time.monotonic() + next_ms / 1000 + 0.001
    with store.dispatcher.waiting(key, token, give_up) as inbox:
        while True:
            wake = min(give_up, give_up if due_at is None else due_at)
            message = await inbox.get(wake - time.monotonic())
            received_at = time.monotonic()
            if message == "R":
                return None
            if message is not None:
                # Granted when the releaser ran, a moment before we read it: the hand-off takes
                # well under a millisecond, so the receipt time stands in for the grant time.
                return mailbox_grant(message), received_at
            if received_at >= give_up:
                # Out of time; a hand-off may still have raced in, and then it is ours.
                word, rest = outcome(await store.call("take_wait", key, token))
                if word is Outcome.GRANTED:
                    return grant(rest), received_at
                if word is Outcome.RETRY:
                    return None
                raise PoolTimeout(f"no thread of pool {key!r} became free in time")
            if due_at is not None and received_at >= due_at:
                # A lease is due: reclaim it; settled, it goes to the oldest waiter (maybe us).
                next_ms = await settling.reap_due(key)
                due_at = None if next_ms < 0 else time.monotonic() + next_ms / 1000 + 0.001
