"""``thread-pool``: the admin command line over the public API (needs the ``cli`` extra).

Commands: status, resize, reap, drain, delete, export, import, prewarm, emulator; ``--help`` on
each. Exit codes: 0 ok, 1 the operation failed, 2 usage error.
"""

from thread_pool.cli.app import main

__all__ = ["main"]
