"""The errors thread_pool raises: one flat family under ``ThreadPoolError``.

Messages are lowercase and name the pool, so a log line says which pool it is about.
"""

from __future__ import annotations

import time


class ThreadPoolError(Exception):
    """Base class of every error raised by thread_pool."""


class InvalidSettings(ThreadPoolError, ValueError):
    """A setting (from the environment, ``.env`` or an argument) has an invalid value."""


class UnknownSettingWarning(UserWarning):
    """A ``THREAD_POOL_*`` variable in the environment or ``.env`` names no setting (it is
    ignored); the warning names it and the closest setting."""


class InvalidPoolKey(ThreadPoolError, ValueError):
    """A pool key is empty, too long or has characters that are not allowed."""


class InvalidArgument(ThreadPoolError, ValueError):
    """An argument (size, TTL, timeout, thread id) is out of range or ill-formed."""


class InvalidBackup(InvalidArgument):
    """A backup file (``import``) is malformed or holds values a pool cannot have; nothing of it
    was written."""


class UnknownPool(ThreadPoolError, LookupError):
    """The pool has never been configured and this pool object cannot create threads for it."""


class PoolFull(ThreadPoolError):
    """Registering these threads would take the pool beyond its ``max_size``."""


class PoolTimeout(ThreadPoolError, TimeoutError):
    """No thread of the pool became free before the acquire timeout.

    ``waited`` is how long the caller waited (seconds); ``threads``, ``max_size`` and
    ``waiting`` are the pool's counts when it gave up (None when they could not be read).
    """

    def __init__(
        self,
        message: str,
        *,
        waited: float | None = None,
        threads: int | None = None,
        max_size: int | None = None,
        waiting: int | None = None,
    ) -> None:
        super().__init__(message)
        self.waited = waited
        self.threads = threads
        self.max_size = max_size
        self.waiting = waiting


class TooManyWaiters(ThreadPoolError):
    """The pool already has ``max_waiters`` callers waiting for a thread."""


class PoolClosed(ThreadPoolError):
    """The pool object was closed; it grants no more leases."""


class WrongEventLoop(ThreadPoolError, RuntimeError):
    """An ``AsyncThreadPool`` was used from another event loop than the one it first ran on (it
    and its Redis connections belong to one loop: create the pool where it is used)."""


class PoolDraining(ThreadPoolError):
    """The pool is being drained (``thread-pool drain``): it grants no new leases."""


class LeaseLost(ThreadPoolError):
    """The lease expired or was taken over: its holder must not write to the thread any more."""


class LeaseNotOwned(ThreadPoolError):
    """A release by a caller that does not hold the lease (any more); nothing was changed."""


class StoreUnavailable(ThreadPoolError, ConnectionError):
    """Redis could not be reached or did not answer in time."""


class StoreRefused(ThreadPoolError):
    """Redis answered but refused the command: the user's ACL does not allow it, the password
    is wrong, or the server will not take writes (``MISCONF``). It does not pass by itself: the
    deployment must change (the user needs the library's commands on the prefix's keys)."""


class PoolStateLost(StoreUnavailable):
    """The pool's state is gone from Redis (a restart without persistence, a failover to an empty
    replica): a caller that knew the pool found it missing or re-created, and marked it lost.

    Every caller gets this until an operator restores the pool (``thread-pool import`` of a
    backup), registers its threads again (``add_threads``), deletes it or re-creates it
    (``thread-pool prewarm``); nothing grows meanwhile, so the threads the pool had upstream are
    not silently replaced by new ones.
    """

    @classmethod
    def of(cls, key: str, found: float | None) -> PoolStateLost:
        """The error for pool ``key``, found lost at Unix time ``found`` (if known)."""
        when = (
            ""
            if found is None
            else f" (found lost at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(found))} UTC"
            ": redis restarted without persistence, or the pool's keys were removed while in use)"
        )
        return cls(
            f"the state of pool {key!r} is gone from redis{when}; restore it with 'thread-pool "
            f"import <backup>', register its threads again with add_threads, or remove it with "
            f"'thread-pool delete {key}' (none of these needs --backend)"
        )


class CorruptState(ThreadPoolError):
    """A pool's keys in Redis hold something thread_pool did not write (wrong type or shape)."""


class UpstreamError(ThreadPoolError):
    """The upstream API refused or failed a request (after the retries it was worth).

    ``status_code``, ``code`` and ``request_id`` come from the upstream response when there was
    one; the SDK's exception is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id


class ThreadBusy(UpstreamError):
    """Upstream said the thread already has an active run (the 400 the pool exists to prevent)."""


class RequestTooLarge(UpstreamError):
    """Upstream refused a request for its size (too many items or characters), or could not
    save what it answered (a background response that turned failed): see ``max_request_items``
    / ``max_request_chars``. A turn so refused is tried once more with its context folded."""


class TurnFailed(UpstreamError):
    """A turn's run (response) ended ``failed``, ``expired``, ``cancelled`` or ``incomplete``.

    ``last_error`` is upstream's ``{"code", "message"}`` for it, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: str,
        thread_id: str,
        run_id: str | None,
        last_error: dict[str, str] | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.status = status
        self.thread_id = thread_id
        self.run_id = run_id
        self.last_error = last_error


class PoolBusy(ThreadPoolError):
    """The operation would cut off holders of leases (drain the pool first, or force it)."""


class PoolExists(ThreadPoolError):
    """An import would overwrite a pool that exists (delete it first)."""


class ThreadOwned(ThreadPoolError):
    """An upstream thread is already registered with another pool under the same key prefix
    (``owner`` names it): a thread belongs to one pool at a time."""

    def __init__(self, message: str, *, thread_id: str, owner: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.owner = owner
