"""A local server that speaks the upstream API subset thread_pool uses, lock rule included.

Start it with ``python -m thread_pool.emulator`` or in-process with :func:`start_emulator`;
point the official ``openai`` SDK at its ``base_url``. Replies are deterministic (see
:mod:`thread_pool.emulator.replies` for the format and the tool-call trigger).

Needs the ``emulator`` extra (starlette, uvicorn). Never imported by the library core.
"""

from thread_pool.emulator.app import create_app
from thread_pool.emulator.client import IntrospectionClient
from thread_pool.emulator.config import EmulatorConfig
from thread_pool.emulator.replies import (
    Entry,
    Reply,
    digest,
    expected_reply,
    find_tool_calls,
    parse_reply,
)
from thread_pool.emulator.server import EmulatorServer, start_emulator
from thread_pool.emulator.service import Emulator

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "Entry",
    "IntrospectionClient",
    "Reply",
    "create_app",
    "digest",
    "expected_reply",
    "find_tool_calls",
    "parse_reply",
    "start_emulator",
]
