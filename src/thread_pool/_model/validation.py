"""Checks of what callers hand in (pool keys, thread ids, numbers), done before any write."""

from __future__ import annotations

import re

from thread_pool.errors import InvalidArgument, InvalidPoolKey

MAX_KEY_LENGTH = 200
# Letters, digits and a few separators people use in ids (doc:42, user@host, a/b). No braces (they
# would break the hash tag), no whitespace or control characters (they make logs lie).
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*")
# Upstream ids are short ASCII tokens (thread_abc, conv_abc). ``|`` separates fields in lease
# records and mailbox messages, so it must never appear in one.
_THREAD_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid pool key, else raise ``InvalidPoolKey``."""
    if not isinstance(key, str):
        raise InvalidPoolKey(f"pool key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidPoolKey("pool key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidPoolKey(
            f"pool key {key[:40]!r}... is {len(key)} characters long; at most {MAX_KEY_LENGTH}"
        )
    if not _KEY_RE.fullmatch(key):
        raise InvalidPoolKey(
            f"pool key {key!r} may hold only letters, digits and . _ : @ / + = - "
            "and must start with a letter or digit"
        )
    return key


def validate_thread_id(thread_id: object) -> str:
    """Return ``thread_id`` if it looks like an upstream id, else raise ``InvalidArgument``."""
    if not isinstance(thread_id, str) or not _THREAD_ID_RE.fullmatch(thread_id):
        raise InvalidArgument(
            f"thread id {thread_id!r} must be 1-128 characters of letters, digits and . _ : -"
        )
    return thread_id


MAX_SECONDS = 86_400.0
"""The longest TTL, timeout or wait accepted (one day): more is a mistake, and it would also
overflow the exact integers Lua keeps for milliseconds."""

MAX_SIZE = 100_000
"""The largest pool size accepted."""


def check_positive(
    name: str, value: float, *, allow_zero: bool = False, at_most: float = MAX_SECONDS
) -> float:
    """Return ``value`` if it is a finite number > 0 (or >= 0) and at most ``at_most``, else raise
    ``InvalidArgument``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number, not {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidArgument(f"{name} must be finite, not {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgument(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value}")
    if value > at_most:
        raise InvalidArgument(f"{name} must be at most {at_most:g}, not {value}")
    return value
