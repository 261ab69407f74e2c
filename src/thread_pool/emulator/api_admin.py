"""Introspection and control routes, outside ``/v1`` (no injected faults, not counted).

Reading needs no API key. The routes that change the emulator (``POST``) need the configured
key, if any, exactly as ``/v1`` does (same check, same 401), and a body declared as
``application/json`` even when empty (415 otherwise): a web page can send a cross-site
``text/plain`` or form request without asking, but not a JSON one, so no page a developer has
open can reconfigure or reset an emulator on their machine. A change is validated by
:class:`~thread_pool.emulator.config.EmulatorConfig` as the command line's is; a refused one
is a 400 naming the field and changes nothing.

``GET  /_emulator/health``            → ``{"ok": true}``
``GET  /_emulator/stats``             → counters (see :meth:`Emulator.stats`)
``GET  /_emulator/peaks``             → ``{"peaks": {owner_id: peak_active}}``
``GET  /_emulator/writes/{owner_id}`` → ``{"id": owner_id, "writes": [{seq, at, op, object_id,
metadata}]}``; a write the lock rule refused is logged as ``<kind>.refused`` with the id and
metadata of the run (response) that blocked it
``GET  /_emulator/writes``            → ``{"writes": {owner_id: [...]}}``, every write log at once
``GET  /_emulator/objects``           → ``{"threads": {id: metadata}, "conversations": {id:
metadata}}``, every thread and conversation not deleted
``GET  /_emulator/config``            → the configuration
``POST /_emulator/config``            → change it (JSON fields of ``EmulatorConfig``, plus
``latency`` and ``fault_rate`` shorthands); returns it
``POST /_emulator/reset``             → clear state and counters, restart fault sequences, back
to the start configuration plus the JSON body's changes; returns the configuration
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thread_pool.emulator import errors
from thread_pool.emulator.config import ConfigError, EmulatorConfig
from thread_pool.emulator.endpoints import check_key, json_response
from thread_pool.emulator.service import Emulator

Json = dict[str, Any]


async def _changes(request: Request) -> Json:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _declares_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == "application/json"


async def _reconfigure(
    emulator: Emulator, request: Request, change: Callable[..., EmulatorConfig]
) -> Response:
    """Apply the JSON body's changes with ``change``: the new configuration, or the 401, 415 or
    400 that says why nothing changed."""
    try:
        check_key(emulator, request)
    except errors.ApiError as error:
        return json_response(error.body(), error.status)
    if not _declares_json(request):
        content_type = request.headers.get("content-type")
        return json_response(
            {"error": f"expected content-type application/json, got {content_type!r}"}, 415
        )
    try:
        config = change(**await _changes(request))
    except ConfigError as error:
        return json_response({"error": str(error), "field": error.field}, 400)
    except (TypeError, ValueError) as error:
        return json_response({"error": str(error)}, 400)
    return json_response(config.to_dict())


def routes(emulator: Emulator) -> list[Route]:
    """The introspection routes bound to ``emulator``."""

    async def health(request: Request) -> Response:
        return json_response({"ok": True})

    async def stats(request: Request) -> Response:
        return json_response(emulator.stats())

    async def peaks(request: Request) -> Response:
        return json_response({"peaks": emulator.peaks()})

    async def writes(request: Request) -> Response:
        owner = request.path_params["owner_id"]
        return json_response({"id": owner, "writes": emulator.writes(owner)})

    async def all_writes(request: Request) -> Response:
        return json_response({"writes": emulator.all_writes()})

    async def objects(request: Request) -> Response:
        return json_response(emulator.objects())

    async def get_config(request: Request) -> Response:
        return json_response(emulator.config.to_dict())

    async def set_config(request: Request) -> Response:
        return await _reconfigure(emulator, request, emulator.configure)

    async def reset(request: Request) -> Response:
        return await _reconfigure(emulator, request, emulator.reset)

    return [
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/peaks", peaks, methods=["GET"]),
        Route("/_emulator/writes", all_writes, methods=["GET"]),
        Route("/_emulator/writes/{owner_id}", writes, methods=["GET"]),
        Route("/_emulator/objects", objects, methods=["GET"]),
        Route("/_emulator/config", get_config, methods=["GET"]),
        Route("/_emulator/config", set_config, methods=["POST"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]
