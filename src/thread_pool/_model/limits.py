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

DEFAULT_REQUEST_CHARS = 1_000_000
"""Characters of context one turn's request carries at most by default (a backend's
``max_request_chars``): about 250,000 tokens, above any model's context window, so a request
over it would be refused anyway; older entries are folded into a digest instead."""

MIN_REQUEST_ITEMS = 3
"""The smallest ``max_request_items`` accepted: a digest, the turn's message and its reply."""

FENCE_LIMIT = 2**52
"""A fence set by a restore or a recovery stays below this (and a backup holding a larger one is
refused), so grants have 2^52 more to go before 2^53, where Lua's numbers stop being exact."""

FENCES_PER_MS = 1000
"""What a recovery adds to a fence per millisecond of time it cannot account for. A grant takes
at least two script calls on its thread (grant, then release or reap) and Redis runs well under
one script per microsecond, so no thread can have been granted this often: a fence raised by
this much is above every fence used in that time."""

MAX_BACKUP_AGE = 5 * 366 * 86_400.0
"""The oldest backup (by its ``exported_at``, seconds) an import accepts: older is a mistake (a
clock, a wrong file), and the recovery's fence raise must stay far below ``FENCE_LIMIT``."""

BACKUP_CLOCK_SKEW = 300.0
"""How far (seconds) a backup's ``exported_at`` may lie in the future of the clock checking it
(the host's for the file check, Redis's inside the import script)."""

MAX_BACKUP_ITEMS = 1_000_000
"""The most items (fields, members, entries) one key of a backup may hold."""

MAX_LOG_FIELDS = 32
"""The most values (fields and their values) one log entry of a backup may hold; the log writes
six pairs."""

MIN_LOG_CHARS = 1_000
"""The smallest per-entry or per-turn log cap accepted: room for a marker and some text."""
MAX_LOG_CHARS = 100_000_000
"""The largest per-entry or per-turn log cap accepted (a Redis string holds 512 MB; every entry
is copied into every sibling thread)."""
