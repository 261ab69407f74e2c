"""thread_pool: pools of upstream conversation threads, leased through Redis.

Workers that share one conversation thread collide (one active run per thread). A pool keeps
several upstream threads per key and leases each to one caller at a time, so N threads serve N
callers at once and no run ever meets another on the same thread.
"""

import logging
from typing import TYPE_CHECKING, Any

from thread_pool._async.admin import AsyncPoolAdmin
from thread_pool._async.backend import AsyncBackend
from thread_pool._async.lease import AsyncLease
from thread_pool._async.pool import AsyncThreadPool
from thread_pool._async.streaming import AsyncTurnStream
from thread_pool._model.log import LogEntry
from thread_pool._model.redaction import RedactingFilter
from thread_pool._model.status import PoolStats, PoolStatus
from thread_pool._model.stream import StreamEvent, TextDelta, ToolCallEvent, TurnDone
from thread_pool._model.turns import ToolCall, Turn
from thread_pool._sync.admin import PoolAdmin
from thread_pool._sync.backend import Backend
from thread_pool._sync.lease import Lease
from thread_pool._sync.pool import ThreadPool
from thread_pool._sync.streaming import TurnStream
from thread_pool._telemetry import use_providers as use_telemetry_providers
from thread_pool.errors import (
    CorruptState,
    InvalidArgument,
    InvalidBackup,
    InvalidPoolKey,
    InvalidSettings,
    LeaseLost,
    LeaseNotOwned,
    PoolBusy,
    PoolClosed,
    PoolDraining,
    PoolExists,
    PoolFull,
    PoolStateLost,
    PoolTimeout,
    RequestTooLarge,
    StoreRefused,
    StoreUnavailable,
    ThreadBusy,
    ThreadOwned,
    ThreadPoolError,
    TooManyWaiters,
    TurnFailed,
    UnknownPool,
    UnknownSettingWarning,
    UpstreamError,
    WrongEventLoop,
)
from thread_pool.settings import Settings

# Every log line of the library passes this filter: none shows a password or an API key. A
# logger's filter does not see its children's records, so each logger the library uses is named.
for _name in ("thread_pool", "thread_pool.maintenance"):
    logging.getLogger(_name).addFilter(RedactingFilter())

if TYPE_CHECKING:
    from thread_pool._async.assistants import AsyncAssistantsBackend
    from thread_pool._async.conversations import AsyncConversationsBackend
    from thread_pool._sync.assistants import AssistantsBackend
    from thread_pool._sync.conversations import ConversationsBackend
    from thread_pool._upstream.build import build_backend
    from thread_pool._upstream.retry_policy import RetryPolicy

# The backends import the openai SDK (half a second); a process that only leases threads (a
# worker, the CLI) should not pay for it, so they are imported on first use.
_LAZY = {
    "AssistantsBackend": "thread_pool._sync.assistants",
    "AsyncAssistantsBackend": "thread_pool._async.assistants",
    "AsyncConversationsBackend": "thread_pool._async.conversations",
    "ConversationsBackend": "thread_pool._sync.conversations",
    "RetryPolicy": "thread_pool._upstream.retry_policy",
    "build_backend": "thread_pool._upstream.build",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thread_pool' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AssistantsBackend",
    "AsyncAssistantsBackend",
    "AsyncBackend",
    "AsyncConversationsBackend",
    "AsyncLease",
    "AsyncPoolAdmin",
    "AsyncThreadPool",
    "AsyncTurnStream",
    "Backend",
    "ConversationsBackend",
    "CorruptState",
    "InvalidArgument",
    "InvalidBackup",
    "InvalidPoolKey",
    "InvalidSettings",
    "Lease",
    "LeaseLost",
    "LeaseNotOwned",
    "LogEntry",
    "PoolAdmin",
    "PoolBusy",
    "PoolClosed",
    "PoolDraining",
    "PoolExists",
    "PoolFull",
    "PoolStateLost",
    "PoolStats",
    "PoolStatus",
    "PoolTimeout",
    "RequestTooLarge",
    "RetryPolicy",
    "Settings",
    "StoreRefused",
    "StoreUnavailable",
    "StreamEvent",
    "TextDelta",
    "ThreadBusy",
    "ThreadOwned",
    "ThreadPool",
    "ThreadPoolError",
    "TooManyWaiters",
    "ToolCall",
    "ToolCallEvent",
    "Turn",
    "TurnDone",
    "TurnFailed",
    "TurnStream",
    "UnknownPool",
    "UnknownSettingWarning",
    "UpstreamError",
    "WrongEventLoop",
    "build_backend",
    "use_telemetry_providers",
]

__version__ = "0.1.0"
