"""Operating pools from Python: what the ``thread-pool`` command line runs.

``PoolAdmin`` (blocking) and ``AsyncPoolAdmin`` (asyncio) give status snapshots, drain, backup and
restore, delete and pre-warm steps; ``PoolStatus`` is what a status snapshot holds.
"""

from thread_pool._async.admin import AsyncPoolAdmin, AsyncThreadMaker, DeleteReport, Growth
from thread_pool._model.status import LeaseInfo, PoolStatus, ThreadInfo, WaiterInfo
from thread_pool._sync.admin import PoolAdmin, ThreadMaker
from thread_pool.admin_errors import PoolBusy, PoolExists

__all__ = [
    "AsyncPoolAdmin",
    "AsyncThreadMaker",
    "DeleteReport",
    "Growth",
    "LeaseInfo",
    "PoolAdmin",
    "PoolBusy",
    "PoolExists",
    "PoolStatus",
    "ThreadInfo",
    "ThreadMaker",
    "WaiterInfo",
]
