"""Run the emulator in-process: uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from thread_pool.emulator.app import create_app
from thread_pool.emulator.client import IntrospectionClient
from thread_pool.emulator.config import EmulatorConfig
from thread_pool.emulator.service import Emulator


class EmulatorServer:
    """A running emulator. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``base_url`` is what to give ``openai.OpenAI(base_url=...)``; ``admin`` talks to the
    introspection API over HTTP; ``emulator`` is the in-memory state itself.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = Emulator(config)
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def root(self) -> str:
        """``http://host:port`` (introspection lives under ``/_emulator``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, the SDK's ``base_url``."""
        return f"{self.root}/v1"

    @property
    def api_key(self) -> str:
        """The key clients should send (any non-empty string when none is configured)."""
        return self.emulator.config.api_key or "sk-emulator"

    @property
    def admin(self) -> IntrospectionClient:
        """A client of the ``/_emulator`` API (with the key in force, if any)."""
        return IntrospectionClient(self.root, api_key=self.emulator.config.api_key)

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Bind, serve in a daemon thread, and return once the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every keep-alive response waits ~40 ms (Nagle against
        # the client's delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(4096)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.emulator),
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Keep idle client connections open well past a test's pauses.
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="thread-pool-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(config: EmulatorConfig | None = None, **options: Any) -> EmulatorServer:
    """Start an emulator on a free port: ``start_emulator(latency="0.02-0.05", seed=1)``.

    ``options`` are :class:`EmulatorConfig` fields (plus the ``latency`` and ``fault_rate``
    shorthands) applied over ``config``.
    """
    base = config or EmulatorConfig()
    return EmulatorServer(base.replace(**options) if options else base).start()
