"""The stress test: many workers serving one document, three ways, measured side by side.

- ``naive``: the original code path. Each worker adds its message to the document's one shared
  thread, then creates a run (each step in a small retry-on-error loop), then waits for the run.
  The upstream allows one active run per thread, so the workers trip over each other.
- ``lock``: the usual fix. The same two writes, under a redis-py ``Lock`` named after the thread:
  nothing is lost, but the document's turns run one at a time.
- ``pool``: thread_pool. ``pool.run(key, message)`` leases each turn its own thread of the key's
  pool, so up to ``pool_size`` turns run at once and no two meet on a thread.

Workers are threads, or processes (``processes=True``); each builds its own clients, as separate
processes of an application would. Every strategy reports one :class:`StressResult`.
"""

from thread_pool.testing.stress.results import Sample, StressResult, summarise
from thread_pool.testing.stress.runner import StressOptions, mean_latency, run_stress
from thread_pool.testing.stress.workers import BACKENDS, STRATEGIES

__all__ = [
    "BACKENDS",
    "STRATEGIES",
    "Sample",
    "StressOptions",
    "StressResult",
    "mean_latency",
    "run_stress",
    "summarise",
]
