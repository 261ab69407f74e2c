"""thread_pool: pools of upstream conversation threads, leased through Redis.

Workers that share one conversation thread collide (one active run per thread). A pool keeps
several upstream threads per key and leases each to one caller at a time, so N threads serve N
callers at once and no run ever meets another on the same thread.
"""

from thread_pool._async.factory import AsyncSettler, AsyncThreadFactory
from thread_pool._async.lease import AsyncLease
from thread_pool._async.pool import AsyncThreadPool
from thread_pool._sync.factory import Settler, ThreadFactory
from thread_pool._sync.lease import Lease
from thread_pool._sync.pool import ThreadPool
from thread_pool.errors import (
    CorruptState,
    InvalidArgument,
    InvalidPoolKey,
    InvalidSettings,
    LeaseLost,
    LeaseNotOwned,
    PoolClosed,
    PoolFull,
    PoolTimeout,
    StoreUnavailable,
    ThreadPoolError,
    TooManyWaiters,
    UnknownPool,
)
from thread_pool.protocol import PoolStats
from thread_pool.settings import Settings

__all__ = [
    "AsyncLease",
    "AsyncSettler",
    "AsyncThreadFactory",
    "AsyncThreadPool",
    "CorruptState",
    "InvalidArgument",
    "InvalidPoolKey",
    "InvalidSettings",
    "Lease",
    "LeaseLost",
    "LeaseNotOwned",
    "PoolClosed",
    "PoolFull",
    "PoolStats",
    "PoolTimeout",
    "Settings",
    "Settler",
    "StoreUnavailable",
    "ThreadFactory",
    "ThreadPool",
    "ThreadPoolError",
    "TooManyWaiters",
    "UnknownPool",
]

__version__ = "0.1.0"
