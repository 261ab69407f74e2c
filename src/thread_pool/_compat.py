"""The blocking side of the vocabulary shared with ``_acompat``, used by the generated sync code."""

from __future__ import annotations

import os
import socket
import threading

_HOST = socket.gethostname()


def holder_name() -> str:
    """Who is asking: host, process and thread, as shown in a pool's status."""
    return f"{_HOST}:{os.getpid()}:{threading.current_thread().name}".replace("|", "/")
