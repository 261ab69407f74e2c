"""Every limit the library enforces, each in one place. No I/O here.

Upstream's limits are facts of the API (see UPSTREAM.md); the library's own keep numbers exact in
Lua (milliseconds below 2^53) and refuse what can only be a mistake.
"""

MAX_KEY_LENGTH = 200
"""The longest pool key accepted."""

MAX_SECONDS = 86_400.0
"""The longest TTL, timeout or wait accepted (one day): more is a mistake, and it would also
overflow the exact integers Lua keeps for milliseconds."""

MAX_LOG_AGE = 3650 * 86_400.0
"""The longest log retention by age accepted (ten years; in milliseconds still an exact integer
in Lua)."""

MIN_SECONDS = 0.001
"""The shortest TTL or lease time accepted (1 ms): Lua counts milliseconds, and less would round
to 0, which the scripts read as "the pool's default"."""

MAX_SIZE = 100_000
"""The largest pool size accepted."""

MAX_WAITERS = 1_000_000
"""The largest ``max_waiters`` accepted."""

MAX_CONNECTIONS = 100_000
"""The largest ``max_connections`` accepted."""

MAX_MESSAGE_CHARS = 256_000
"""Upstream refuses longer message content with a 400."""

MAX_METADATA_PAIRS = 16
"""Upstream's metadata limits (threads, messages, runs, conversations, responses)."""
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

MAX_ITEMS = 20
"""Upstream takes at most this many items per ``conversations.create`` / ``items.create``."""

MIN_LOG_CHARS = 1_000
"""The smallest per-entry or per-turn log cap accepted: room for a marker and some text."""
MAX_LOG_CHARS = 100_000_000
"""The largest per-entry or per-turn log cap accepted (a Redis string holds 512 MB; every entry
is copied into every sibling thread)."""
