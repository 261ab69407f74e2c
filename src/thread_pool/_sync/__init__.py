# WARNING: this file is generated from src/thread_pool/_async/__init__.py by tools/async_to_sync.py.
# DO NOT CHANGE IT: change the source and run the tool.
"""The blocking modules; ``thread_pool._sync`` is generated from them (tools/async_to_sync.py)."""
