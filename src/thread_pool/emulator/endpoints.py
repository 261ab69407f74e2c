"""The wrapper every ``/v1`` route goes through: counting, API key, injected faults, errors.

Faults are decided before the handler runs, so an injected 500/503/429 never changes state
(a client may safely retry it).

A handler is a plain function, usually a store method: it takes the route's path parameters by
name, plus ``body`` (the JSON body) and ``query`` (the query parameters) when it has parameters
of those names, and returns the JSON answer, or an
:class:`~thread_pool.emulator.streams.EventStream` to answer with server-sent events (or an
awaitable of either). Which arguments it takes is
read from its signature once, when the app is built, so a handler that does not fit its path
fails at start-up rather than on its first request.
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from thread_pool.emulator import errors
from thread_pool.emulator.service import Emulator
from thread_pool.emulator.sse import SseResponse
from thread_pool.emulator.streams import EventStream

Json = dict[str, Any]
Handler = Callable[..., Json | EventStream | Awaitable[Json | EventStream]]
Endpoint = Callable[[Request], Awaitable[Response]]
#: What a route table lists: method, path under ``/v1``, handler.
RouteSpec = tuple[str, str, Handler]

#: Handler parameters filled from the request rather than from the path.
_FROM_REQUEST = frozenset({"body", "query"})


def json_response(body: Json, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(content, status, headers, media_type="application/json")


def check_key(emulator: Emulator, request: Request) -> None:
    """Raise the upstream's 401 unless the request carries the configured key (if any)."""
    expected = emulator.config.api_key
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise errors.missing_api_key()
    if given.strip() != expected:
        raise errors.wrong_api_key(given.strip())


def _inject_fault(emulator: Emulator) -> None:
    config = emulator.config
    fault = emulator.core.planner.request_fault(config)
    if fault is None:
        return
    emulator.core.stats.fault(fault)
    if fault == "http_500":
        raise errors.server_error()
    if fault == "http_503":
        raise errors.overloaded()
    raise errors.rate_limited(config.retry_after)


async def _body(request: Request) -> Json:
    if request.method not in ("POST", "PUT", "PATCH"):
        return {}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise errors.bad_json() from None
    if not isinstance(body, dict):
        raise errors.bad_json()
    return body


def _request_parameters(path: str, handler: Handler) -> frozenset[str]:
    """Which of ``body`` and ``query`` ``handler`` takes; a ``TypeError`` if its parameters
    are not exactly the path's parameters plus some of those."""
    in_path = set(re.findall(r"{(\w+)}", path))
    taken = set(inspect.signature(handler).parameters)
    if in_path - taken or taken - in_path - _FROM_REQUEST:
        raise TypeError(f"handler {handler.__qualname__} does not fit the route {path}")
    return frozenset(taken & _FROM_REQUEST)


def endpoint(emulator: Emulator, method: str, path: str, handler: Handler) -> Endpoint:
    """Wrap ``handler`` as the route ``method /v1path``; the stats count it by that name
    (``"POST /v1/threads/{thread_id}/runs"``)."""
    name = f"{method} /v1{path}"
    wanted = _request_parameters(path, handler)

    async def serve(request: Request) -> Response:
        stats = emulator.core.stats
        stats.begin(name)
        headers = {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-poll-after-ms": str(emulator.config.effective_poll_after_ms),
        }
        status = 500
        try:
            check_key(emulator, request)
            _inject_fault(emulator)
            arguments: dict[str, Any] = dict(request.path_params)
            body = await _body(request)
            if "body" in wanted:
                arguments["body"] = body
            if "query" in wanted:
                arguments["query"] = dict(request.query_params)
            answer = handler(**arguments)
            result = await answer if inspect.isawaitable(answer) else answer
            status = 200
            if isinstance(result, EventStream):
                return SseResponse(emulator.core, result, headers)
            return json_response(result, 200, headers)
        except errors.ApiError as error:
            if isinstance(error, errors.LockError):
                stats.lock_error(error.kind)
            status = error.status
            return json_response(error.body(), error.status, {**headers, **error.headers})
        except ClientDisconnect:
            # The client went away before its body arrived (killed, or it gave up): nothing
            # was done and nobody is listening, which is no server error worth a traceback.
            status = 499
            return Response(status_code=499)
        finally:
            stats.end(status)

    return serve
