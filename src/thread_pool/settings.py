"""Settings: the one place that reads the environment (prefix ``THREAD_POOL_``) and ``.env``."""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Self

from dotenv import dotenv_values
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from thread_pool._model.limits import (
    MAX_CONNECTIONS,
    MAX_LOG_AGE,
    MAX_LOG_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_SECONDS,
    MAX_SIZE,
    MAX_WAITERS,
    MIN_LOG_CHARS,
    MIN_SECONDS,
)
from thread_pool._model.redaction import mask_url
from thread_pool.errors import InvalidSettings, UnknownSettingWarning

ENV_PREFIX = "THREAD_POOL_"

OTHER_VARIABLES = frozenset({"THREAD_POOL_TEST_REDIS", "THREAD_POOL_CHAOS_TURNS"})
"""Variables with the prefix that are not settings: the pytest plugin's choice of Redis
(``thread_pool.testing``) and the chaos harness's turn count. Not warned about."""


class Settings(BaseSettings):
    """Every tunable of a pool; each field can be set as ``THREAD_POOL_<NAME>``.

    ``Settings(**values)`` and ``Settings.load(**overrides)`` raise ``InvalidSettings`` naming
    the setting: for a value out of range, and for a name that is no setting (with the closest
    one that is). A ``THREAD_POOL_*`` variable in the environment or ``.env`` that names no
    setting is reported with an ``UnknownSettingWarning``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", min_length=1)
    """Where the pools live; any redis-py URL (``redis://``, ``rediss://``, ``unix://``)."""

    redis_cluster: bool = False
    """``redis_url`` names a node of a Redis Cluster: open cluster clients (they find the other
    nodes from it and send each pool's commands to the node serving its slot)."""

    key_prefix: str = Field(default="tp", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """Prefix of every Redis key the library writes (no ``:``, ``{`` or ``}``)."""

    lease_ttl: float = Field(default=60.0, ge=MIN_SECONDS, le=MAX_SECONDS)
    """Seconds a lease lasts unless renewed."""

    acquire_timeout: float = Field(default=30.0, ge=0, le=MAX_SECONDS)
    """Seconds ``acquire`` waits for a free thread before ``PoolTimeout``."""

    min_size: int = Field(default=0, ge=0, le=MAX_SIZE)
    """Default minimum number of threads of a new pool (pre-warm target)."""

    max_size: int = Field(default=8, ge=1, le=MAX_SIZE)
    """Default maximum number of threads of a new pool."""

    max_waiters: int = Field(default=1_000, ge=0, le=MAX_WAITERS)
    """Callers allowed to wait on one pool at once; one more gets ``TooManyWaiters``."""

    renew_margin: float = Field(default=15.0, gt=0, le=MAX_SECONDS)
    """Seconds before the deadline at which a held lease is renewed; also the least time a lease
    must have left for a fenced write to go ahead."""

    max_connections: int = Field(default=1_000, ge=1, le=MAX_CONNECTIONS)
    """Connections the pool's own Redis client may open. Each caller waiting for a thread holds
    one (it blocks on its mailbox), so this bounds the waiters of one process."""

    grow_timeout: float = Field(default=120.0, ge=MIN_SECONDS, le=MAX_SECONDS)
    """Seconds a slot reserved for a thread being created is kept before it is reclaimed."""

    settle_timeout: float = Field(default=120.0, ge=MIN_SECONDS, le=MAX_SECONDS)
    """Seconds a reaper may take to settle a thread before another reaper may claim it."""

    reclaim_delay: float = Field(default=0.0, ge=0, le=MAX_SECONDS)
    """Seconds after a lease's deadline before its thread is reclaimed (a "lock-delay", as in
    Chubby). A holder paused (SIGSTOP, a VM stall) in the instant between its last check and a
    write sends that write late; during the delay nobody else holds the thread, and the settling
    that follows cancels what the late write started. Longer covers longer pauses and delays
    recovery from a crashed holder by as much; 0 reclaims at the deadline."""

    merge: Literal["full", "none"] = "full"
    """How threads of one pool share the conversation: ``full``, every thread receives the log
    entries it is missing with its next turn (and a new thread starts out holding the log);
    ``none``, each thread keeps only its own turns. A pool object may also be given a callable
    (``merge=policy``); what the environment says is what pre-warm and other processes use."""

    merge_max_entries: int | None = Field(default=None, ge=1)
    """At most this many missing entries travel whole with a turn (or seed a new thread); older
    ones are folded into one marked digest. None: no limit."""

    merge_max_chars: int | None = Field(default=None, ge=1)
    """At most this many characters of missing entries travel whole; older ones are folded.
    None: no limit."""

    request_max_items: int | None = Field(default=None, ge=3)
    """What one upstream request may carry, in items (messages; a tool call counts two), for the
    backends the CLI builds (``thread-pool prewarm``, ``stress``); a backend you build yourself
    takes ``max_request_items``. None: the backend's default (no limit). llama-stack: 20."""

    request_max_chars: int | None = Field(default=None, ge=1000)
    """What one upstream request may carry, in characters of context, for the backends the CLI
    builds; None: the backend's default (1,000,000)."""

    log_max_entries: int | None = Field(default=None, ge=1)
    """The log keeps this many newest entries; a thread that lost entries to the trim first
    receives a marked gap message. None: the log is not trimmed."""

    log_max_age: float | None = Field(default=None, ge=0.001, le=MAX_LOG_AGE)
    """Seconds an entry stays in the log; older entries are trimmed as turns are appended, and a
    thread that lost entries to the trim first receives a marked gap message, as with
    ``log_max_entries``. None: no limit by age."""

    merge_tools: Literal["native", "text", "none"] = "native"
    """How tool calls made on one thread reach its siblings (each call is logged with its
    arguments and output): ``native``, as the API's own items where it has them
    (``function_call`` / ``function_call_output`` on Conversations) and as marked text where it
    does not (Assistants); ``text``, as marked text everywhere (for servers that refuse
    function-call items in ``input``); ``none``, not at all (only through the reply's prose)."""

    log_entry_max_chars: int = Field(default=MAX_MESSAGE_CHARS, ge=MIN_LOG_CHARS, le=MAX_LOG_CHARS)
    """The most characters one log entry (a message, a reply, a tool call) may hold; a longer
    one is logged cut, with a marker saying so, and a warning is logged. The thread that ran the
    turn holds it whole; its siblings receive the cut entry."""

    log_turn_max_chars: int = Field(
        default=4 * MAX_MESSAGE_CHARS, ge=MIN_LOG_CHARS, le=MAX_LOG_CHARS
    )
    """The most characters one turn may add to the log (its message, tool calls and reply): the
    message and the reply come first, then the tool calls; what does not fit is cut (marked) or,
    for tool calls with no room left, left out, with a warning. No server's answer can make the
    log grow faster than this per turn."""

    otel_pool_key: Literal["key", "hash", "none"] = "key"
    """How the pool key appears in the OpenTelemetry metrics and spans (attribute
    ``thread_pool.pool``): ``key``, as it is; ``hash``, the first 12 hex digits of its SHA-256
    (keys that name users or documents stay out of the monitoring system); ``none``, left out
    (one series for all pools: for deployments with one pool per document or user)."""

    def __init__(self, **values: Any) -> None:
        check_names(values)
        warn_unknown_environment()
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSettings(describe(exc)) from None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() show the URL with its password masked; model_dump() keeps it.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "redis_url" else value

    @model_validator(mode="after")
    def _check_relations(self) -> Self:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) exceeds max_size ({self.max_size})")
        if self.renew_margin >= self.lease_ttl:
            raise ValueError(
                f"renew_margin ({self.renew_margin}) must be less than lease_ttl ({self.lease_ttl})"
            )
        return self

    @classmethod
    def resolve(cls, settings: Settings | None, overrides: dict[str, Any]) -> Settings:
        """What a pool object runs with: ``settings`` if given (else the environment), with
        ``overrides`` on top, validated again."""
        if settings is None:
            return cls.load(**overrides)
        return cls.load(**{**settings.model_dump(), **overrides}) if overrides else settings

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment and ``.env``, with ``overrides`` on top."""
        return cls(**{k: v for k, v in overrides.items() if v is not None})


def check_names(values: dict[str, Any]) -> None:
    """Raise ``InvalidSettings`` for a keyword that names no setting (``max_sise=4`` would
    otherwise be dropped silently and the pool run with the default), naming the closest one.
    Names with a leading ``_`` are pydantic-settings' own options (``_env_file``)."""
    unknown = [name for name in values if name not in Settings.model_fields and name[:1] != "_"]
    if unknown:
        raise InvalidSettings("; ".join(f"unknown setting {n!r}{_closest(n)}" for n in unknown))


def warn_unknown_environment() -> None:
    """Warn (``UnknownSettingWarning``) about ``THREAD_POOL_*`` variables in the environment or
    ``.env`` that name no setting: a misspelt variable would otherwise be ignored silently."""
    names = {n.upper() for n in os.environ}
    env_file = Path(".env")
    if env_file.is_file():
        names |= {n.upper() for n in dotenv_values(env_file)}
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields} | OTHER_VARIABLES
    unknown = sorted(n for n in names if n.startswith(ENV_PREFIX) and n not in known)
    if unknown:
        described = ", ".join(
            f"{n}{_closest(n.removeprefix(ENV_PREFIX).lower(), env=True)}" for n in unknown
        )
        warnings.warn(
            f"ignored environment variable(s) that name no setting: {described}",
            UnknownSettingWarning,
            stacklevel=3,
        )


def _closest(name: str, *, env: bool = False) -> str:
    """`` (did you mean 'max_size'?)`` for the setting nearest ``name``, if one is near."""
    found = difflib.get_close_matches(name.lower(), list(Settings.model_fields), n=1, cutoff=0.6)
    if not found:
        return ""
    return f" (did you mean {ENV_PREFIX + found[0].upper() if env else repr(found[0])}?)"


def describe(exc: ValidationError) -> str:
    """One line per bad setting, naming it the way the environment spells it."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc:
            parts.append(f"invalid setting {ENV_PREFIX}{loc[0].upper()}: {err['msg']}")
        else:  # a relation between settings; the message names both
            parts.append(f"invalid settings: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
