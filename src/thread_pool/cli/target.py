"""Where a command acts: settings (env/.env, then flags), Redis, and the upstream backend."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from thread_pool import AsyncBackend, AsyncPoolAdmin, AsyncThreadPool, PoolAdmin, Settings

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# SDK clients opened by ``Target.backend`` for the command being run (see ``_main``).
_opened: list[Any] = []

# The names build_backend takes (spelled here too: click needs them before anything is imported,
# and importing the builder would import the openai SDK for every command).
BACKENDS = ("assistants", "conversations")


@dataclass(frozen=True)
class Target:
    """The flags every Redis command shares; ``None`` leaves the library's setting in force."""

    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    key_prefix: str | None = None
    backend_name: str | None = None
    base_url: str | None = None
    redis_cluster: bool | None = None

    def settings(self) -> Settings:
        """The library's settings (``THREAD_POOL_*``, ``.env``) with the flags on top."""
        return Settings.load(
            redis_url=self.redis_url, key_prefix=self.key_prefix, redis_cluster=self.redis_cluster
        )

    def admin(self) -> AsyncPoolAdmin:
        """The admin object of these settings."""
        settings = self.settings()
        with _redis_url_checked():
            return AsyncPoolAdmin(settings=settings)

    def blocking_admin(self) -> PoolAdmin:
        """The blocking admin object of these settings (for a command served from threads)."""
        settings = self.settings()
        with _redis_url_checked():
            return PoolAdmin(settings=settings)

    def backend(self) -> AsyncBackend | None:
        """The upstream backend chosen with ``--backend`` (None: none chosen). The SDK reads
        ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL`` unless ``--base-url`` is given) itself;
        the key never passes through this program's output."""
        if self.backend_name is None:
            return None
        import openai

        from thread_pool import build_backend

        client = openai.AsyncOpenAI(base_url=self.base_url)
        _opened.append(client)
        # What one request may carry on this server (THREAD_POOL_REQUEST_MAX_*): a pre-warmed
        # thread is seeded within it, as one the pool grows.
        settings = self.settings()
        caps = {
            "max_request_items": settings.request_max_items,
            "max_request_chars": settings.request_max_chars,
        }
        options = {name: value for name, value in caps.items() if value is not None}
        return build_backend(self.backend_name, client, **options)

    def require_backend(self, what: str) -> AsyncBackend:
        """The backend, or a usage error saying ``what`` needs one."""
        backend = self.backend()
        if backend is None:
            raise click.UsageError(f"{what} needs --backend assistants|conversations")
        return backend

    def pool(self) -> AsyncThreadPool:
        """A pool object of these settings (with the backend as settler, if one is chosen)."""
        settings = self.settings()
        with _redis_url_checked():
            return AsyncThreadPool(settings=settings, backend=self.backend())


@contextlib.contextmanager
def _redis_url_checked() -> Iterator[None]:
    """redis-py refuses an ill-formed URL with a bare ValueError: that is a usage error."""
    try:
        yield
    except ValueError as exc:
        hint = "'--redis-url' / THREAD_POOL_REDIS_URL"
        raise click.BadParameter(str(exc), param_hint=hint) from None


def target_options(command: F) -> F:
    """Add the shared flags; the command receives them as ``target: Target``."""

    @click.option("--redis-url", help="Redis URL [env THREAD_POOL_REDIS_URL]")
    @click.option(
        "--redis-cluster/--no-redis-cluster",
        default=None,
        help="the Redis URL names a node of a Redis Cluster [env THREAD_POOL_REDIS_CLUSTER]",
    )
    @click.option("--key-prefix", help="key prefix of the pools [env THREAD_POOL_KEY_PREFIX]")
    @click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        help="upstream API, for commands that create, delete or settle threads",
    )
    @click.option("--base-url", help="upstream base URL [env OPENAI_BASE_URL]")
    @click.option("--debug", is_flag=True, help="show a traceback on failure")
    @functools.wraps(command)
    def wrapper(
        redis_url: str | None,
        redis_cluster: bool | None,
        key_prefix: str | None,
        backend: str | None,
        base_url: str | None,
        debug: bool,
        **kwargs: Any,
    ) -> Any:
        target = Target(redis_url, key_prefix, backend, base_url, redis_cluster)
        return command(target=target, **kwargs)

    return wrapper  # type: ignore[return-value]


def run(main: Awaitable[T]) -> T:
    """Run one command's coroutine (Ctrl-C cancels it, so its clean-up runs)."""
    return asyncio.run(_main(main))


async def _main(main: Awaitable[T]) -> T:
    try:
        return await main
    finally:
        # The SDK clients the command made: closed in the loop that used their connections
        # (left to garbage collection, their sockets outlive the loop, unclosed).
        while _opened:
            await _opened.pop().close()
