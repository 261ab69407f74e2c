"""The asyncio sources; ``thread_pool._sync`` is generated from them (tools/async_to_sync.py)."""
