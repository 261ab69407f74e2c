"""The dispatcher: one per store (a pool object's Redis client, so one per event loop; blocking,
one thread per pool waited on) that waits for all of its callers queued on a pool at once.

A caller's ticket is ``<box>.<n>``: a hand-off to it goes into the pool's shared mailbox of this
dispatcher (``d:<box>``, in the pool's cluster slot), which one reader per pool blocks on and
passes on to the waiter in the process. So a process holds one connection per pool it waits on,
not one per waiter. The reader also says, in one call per pool every ``WAIT_REFRESH_S``, that
its waiters are still there (``wait_alive.lua``): if the process dies, their queue entries lapse
and hand-offs skip them.

A message can reach the reader before its waiter registers (the acquire that queued it answers
on another connection): it is kept for the waiter a while. A message for a waiter that has left
(cancelled: its abandon gives the thread back; timed out: ``take_wait`` took the grant) is
dropped: the thread is in Redis's hands, not in the message.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from thread_pool._acompat import Inbox, Spawned, mutex, sleep
from thread_pool._model.log_events import event
from thread_pool._store.replies import text
from thread_pool._store.scripts import ms
from thread_pool.errors import ThreadPoolError

if TYPE_CHECKING:
    from thread_pool._async.store import AsyncStore

logger = logging.getLogger("thread_pool")

# A waiter's queue entry lapses this long after its dispatcher last said it is still there (and a
# hand-off skips a lapsed entry), so a waiter that died costs no thread more than this; a live
# dispatcher says so every WAIT_REFRESH_S.
WAIT_LIVE_S = 5.0
WAIT_REFRESH_S = 2.0

# How long a message is kept for a waiter that has not registered (yet), and a left waiter is
# remembered (so that a late message for it is dropped rather than kept).
_KEEP_S = 60.0


@dataclass
class _Lane:
    """The waiters of one pool in this process, and its reader's state."""

    waiters: dict[str, tuple[Inbox, float]] = field(default_factory=dict)  # ticket -> give-up
    early: dict[str, tuple[str, float]] = field(default_factory=dict)  # ticket -> message, when
    left: dict[str, float] = field(default_factory=dict)  # ticket -> when it left
    reader: Spawned | None = None


class AsyncDispatcher:
    """Receives the hand-offs of every caller of one store waiting on any pool."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self.box = secrets.token_hex(6)
        self._lanes: dict[str, _Lane] = {}
        self._mutex = mutex()
        self._closed = False

    def ticket(self) -> str:
        """A new token for an acquire: its hand-offs come to this dispatcher."""
        # 32 characters, as a token always was: 48 random bits name the box, 76 the caller.
        return f"{self.box}.{secrets.token_hex(10)[:19]}"

    @contextlib.contextmanager
    def waiting(self, key: str, ticket: str, give_up: float) -> Iterator[Inbox]:
        """Register ``ticket`` as waiting on pool ``key`` until ``give_up`` (monotonic): its
        messages come to the inbox until the block ends."""
        inbox = Inbox()
        with self._mutex:
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane()
            lane.waiters[ticket] = (inbox, give_up)
            lane.left.pop(ticket, None)
            early = lane.early.pop(ticket, None)
            if early is not None:
                inbox.put(early[0])
            if lane.reader is None and not self._closed:
                lane.reader = Spawned(lambda: self._read(key, lane), f"thread-pool-waiters-{key}")
        try:
            yield inbox
        finally:
            with self._mutex:
                lane.waiters.pop(ticket, None)
                lane.left[ticket] = time.monotonic()

    async def _read(self, key: str, lane: _Lane) -> None:
        """Pass the pool's hand-offs on to its waiters while it has any; then end."""
        refresh_at = time.monotonic() + WAIT_REFRESH_S
        pause = 0.05
        quiet = False  # the last read found nothing
        while True:
            with self._mutex:
                # A reader outlives its last waiter by one quiet read: callers that wait one
                # after another (the common case) find it still there, ready.
                if self._closed or (quiet and not (lane.waiters or lane.early)):
                    lane.reader = None
                    if self._lanes.get(key) is lane:
                        del self._lanes[key]
                    return
            try:
                block = max(min(refresh_at - time.monotonic(), WAIT_REFRESH_S), 0.001)
                message = await self._store.pop_shared(key, self.box, block)
                quiet = message is None
                if message:  # "" is close() waking the reader
                    ticket, _, body = message.partition("|")
                    self._deliver(lane, ticket, body, keep=True)
                    # Let the waiter take it (and leave) before looking for more.
                    await sleep(0)
                if time.monotonic() >= refresh_at:
                    refresh_at = time.monotonic() + WAIT_REFRESH_S
                    await self._refresh(key, lane)
                pause = 0.05
            except Exception as exc:
                if self._closed:
                    continue  # the client closed under the read: end at the check above
                # Redis away: the waiters keep waiting (each times out by itself); try again.
                message = "pool %r: waiting for hand-offs failed, trying again: %s"
                if isinstance(exc, ThreadPoolError):
                    logger.info(message, key, exc, extra=event("dispatch.retry", key))
                else:
                    logger.warning(message, key, exc, extra=event("dispatch.failed", key))
                await sleep(pause)
                pause = min(pause * 2, 1.0)

    def _deliver(self, lane: _Lane, ticket: str, message: str, *, keep: bool) -> None:
        """Hand ``message`` to ``ticket``'s waiter; or, with ``keep``, keep it for a waiter that
        has not registered yet."""
        with self._mutex:
            waiter = lane.waiters.get(ticket)
            if waiter is not None:
                waiter[0].put(message)
            elif keep and ticket not in lane.left:
                lane.early[ticket] = (message, time.monotonic())

    async def _refresh(self, key: str, lane: _Lane) -> None:
        """Keep the queue entries of the pool's waiters live, in one call; pass on what the
        call found for those no longer queued. Forget what is kept past ``_KEEP_S``."""
        now = time.monotonic()
        args: list[str | int] = []
        with self._mutex:
            for kept in [t for t, (_, at) in lane.early.items() if now - at > _KEEP_S]:
                del lane.early[kept]
            for gone in [t for t, at in lane.left.items() if now - at > _KEEP_S]:
                del lane.left[gone]
            for ticket, (_, give_up) in lane.waiters.items():
                live = ms(min(give_up - now, WAIT_LIVE_S))
                if live > 0:  # else it is about to ask take_wait itself
                    args += [ticket, live]
        if not args:
            return
        reply = await self._store.call("wait_alive", key, *args)
        for n in range(0, len(reply), 2):
            message = text(reply[n + 1])
            # Lapsed: ask again, as after a wake-up.
            self._deliver(lane, text(reply[n]), "R" if message == "GONE" else message, keep=False)

    async def aclose(self) -> None:
        """Stop every reader (the store is closing), before the client closes under it."""
        with self._mutex:
            self._closed = True
            readers = [(k, lane.reader) for k, lane in self._lanes.items() if lane.reader]
        for key, reader in readers:
            if not reader.stop():
                # A reader blocked in BLPOP (a thread) would otherwise wait out its read.
                with contextlib.suppress(ThreadPoolError):
                    await self._store.wake_shared(key, self.box)
            await reader.join()
