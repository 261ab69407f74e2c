"""The ASGI application: ``/v1`` routes of both API families plus ``/_emulator`` introspection."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thread_pool.emulator import api_admin, api_assistants, api_responses, errors
from thread_pool.emulator.config import EmulatorConfig
from thread_pool.emulator.endpoints import endpoint, json_response
from thread_pool.emulator.service import Emulator
from thread_pool.emulator.sse import quiet_dropped_streams

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(emulator: Emulator | None = None, config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app (give an :class:`Emulator` to keep a handle on its state)."""
    emulator = emulator or Emulator(config)
    quiet_dropped_streams()
    routes: list[Route] = []
    for method, path, handler in (
        *api_assistants.routes(emulator),
        *api_responses.routes(emulator),
    ):
        routes.append(
            Route(f"/v1{path}", endpoint(emulator, method, path, handler), methods=[method])
        )

    async def unknown(request: Request) -> Response:
        error = errors.invalid_url(request.method, request.url.path)
        return json_response(error.body(), error.status)

    routes.extend(api_admin.routes(emulator))
    routes.append(Route("/{path:path}", unknown, methods=_METHODS))
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app
