"""Errors of the admin operations (the library's own are in ``errors.py``)."""

from __future__ import annotations

from thread_pool.errors import ThreadPoolError


class PoolBusy(ThreadPoolError):
    """The operation would cut off holders of leases (drain the pool first, or force it)."""


class PoolExists(ThreadPoolError):
    """An import would overwrite a pool that exists (delete it first)."""
