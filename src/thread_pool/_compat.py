"""The blocking side of the vocabulary shared with ``_acompat``, used by the generated sync code."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

_HOST = socket.gethostname()


@contextlib.contextmanager
def keep_cancellation() -> Iterator[None]:
    """Blocking calls lose no cancellation (see ``_acompat.keep_cancellation``)."""
    yield


def holder_name() -> str:
    """Who is asking: host, process and thread, as shown in a pool's status."""
    return f"{_HOST}:{os.getpid()}:{threading.current_thread().name}".replace("|", "/")
