"""The interop tier's fixtures: a third-party Conversations server (llama-stack 0.7.3) started by
``scripts/interop.sh llama-stack`` on the deterministic model stub (``interop/model_stub.py``).

The tier runs only through that script, which exports ``INTEROP_BASE_URL`` (the server's
``/v1``) and ``INTEROP_STUB_URL`` (the stub's root); without them every test here fails at once
saying so (the directory is outside the main suite's ``testpaths``)."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest

from thread_pool import AsyncConversationsBackend, AsyncThreadPool, RetryPolicy

MODEL = "openai/stub"  # llama-stack names a provider's model <provider_id>/<model>
ITEM_CAP = 20  # llama-stack saves at most 20 items per response (input + output)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the interop tier with scripts/interop.sh llama-stack")
    return value


class Stub:
    """The model stub: what the server asked the model, oldest first."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, path: str, body: object | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def requests(self) -> list[list[dict[str, Any]]]:
        """Every chat-completions request's messages."""
        seen: list[list[dict[str, Any]]] = self._call("/_stub/requests")
        return seen

    def reset(self) -> None:
        self._call("/_stub/reset", {})

    def latency(self, seconds: float) -> None:
        self._call("/_stub/latency", {"seconds": seconds})

    def asked_with(self, marker: str) -> list[dict[str, Any]]:
        """The messages of the (last) request whose last user message contains ``marker``."""
        messages: list[dict[str, Any]]
        for messages in reversed(self.requests()):
            users = [m for m in messages if m.get("role") == "user"]
            if users and marker in text_of(users[-1]):
                return messages
        raise AssertionError(f"the model was never asked {marker!r}")


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("INTEROP_BASE_URL")


@pytest.fixture
def stub() -> Stub:
    found = Stub(_env("INTEROP_STUB_URL"))
    found.reset()
    found.latency(0.02)
    return found


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    yield sdk
    await sdk.close()


MakePool = Callable[..., AsyncThreadPool]


@pytest.fixture
async def make_pool(
    client: openai.AsyncOpenAI, thread_pool_redis_url: str, thread_pool_prefix: str
) -> AsyncIterator[MakePool]:
    """Pools on the server, with the request cap llama-stack needs (``max_request_items=20``)
    unless ``caps=False``."""
    pools: list[AsyncThreadPool] = []

    def make(*, caps: bool = True, background: bool = False, **overrides: Any) -> AsyncThreadPool:
        options: dict[str, Any] = {"settle_wait": 0.5, "poll_interval": 0.05}
        options.update(overrides.pop("backend_options", {}))
        if caps:
            options["max_request_items"] = ITEM_CAP
        backend = AsyncConversationsBackend(
            client,
            model=MODEL,
            background=background,
            retry=RetryPolicy(attempts=4, deadline=30, base_delay=0.05, max_delay=0.5),
            **options,
        )
        pool = AsyncThreadPool(
            backend=backend,
            redis_url=thread_pool_redis_url,
            key_prefix=thread_pool_prefix,
            **overrides,
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()
