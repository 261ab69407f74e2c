"""``thread-pool metrics``: the pools' shared state, read from Redis at each scrape, served in
the Prometheus text format (extra ``prometheus``: ``prometheus-client``).

Every figure is the pools' own record in Redis (what ``stats()`` answers), so one endpoint shows
all the processes and hosts that share the pools; a scrape costs one script call per pool,
pipelined. The endpoint holds no state between scrapes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import click

from thread_pool._model.redaction import key_digest
from thread_pool.admin import PoolAdmin, PoolMetrics
from thread_pool.cli.target import Target, target_options
from thread_pool.errors import ThreadPoolError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# (name, help, how a pool's figure is read): gauges of one pool each, labelled by pool.
GAUGES: list[tuple[str, str, Callable[[PoolMetrics], float]]] = [
    ("thread_pool_waiting_callers", "Callers waiting for a thread.", lambda m: m.stats.waiting),
    (
        "thread_pool_reserved_slots",
        "Slots reserved for threads being created.",
        lambda m: m.stats.reserved,
    ),
    (
        "thread_pool_retired_threads",
        "Threads taken out of the pool, still to be deleted upstream.",
        lambda m: m.stats.retired,
    ),
    ("thread_pool_min_size", "The pool's min_size.", lambda m: m.stats.min_size),
    ("thread_pool_max_size", "The pool's max_size.", lambda m: m.stats.max_size),
    ("thread_pool_log_entries", "Entries in the pool's context log.", lambda m: m.log_length),
    (
        "thread_pool_log_max_lag_entries",
        "Entries logged since the thread furthest behind last caught up.",
        lambda m: m.max_lag,
    ),
]
# Counters: Prometheus adds the _total suffix to the names.
COUNTERS: list[tuple[str, str, Callable[[PoolMetrics], float]]] = [
    ("thread_pool_leases_granted", "Leases granted.", lambda m: m.stats.granted),
    ("thread_pool_lease_timeouts", "Acquires that timed out.", lambda m: m.stats.timeouts),
    (
        "thread_pool_leases_lost",
        "Holders told their lease was lost (expired before release, renew or check).",
        lambda m: m.stats.lost,
    ),
    ("thread_pool_leases_reaped", "Expired leases reclaimed.", lambda m: m.stats.reaped),
    (
        "thread_pool_upstream_lock_errors",
        "Upstream 'thread busy' errors met by turns (each one is a bug signal).",
        lambda m: m.stats.lock_errors,
    ),
]
STATES = ("idle", "leased", "settling")


def label_for(mode: str) -> Callable[[str], str]:
    """How a pool key becomes the ``pool`` label: as it is, hashed (high-cardinality or
    sensitive keys: 12 hex digits of its SHA-256), or one ``all`` for every pool."""
    if mode == "hash":
        return key_digest
    if mode == "none":
        return lambda key: "all"
    return lambda key: key


class PoolsCollector:
    """A prometheus_client collector that reads every pool at each scrape."""

    def __init__(self, read: Callable[[], list[PoolMetrics]], label: Callable[[str], str]) -> None:
        self._read = read
        self._label = label

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        started = time.perf_counter()
        up = GaugeMetricFamily("thread_pool_up", "1 if Redis answered the last scrape, else 0.")
        try:
            pools = self._read()
        except ThreadPoolError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        pools_family = GaugeMetricFamily("thread_pool_pools", "Pools in the registry.")
        pools_family.add_metric([], len(pools))
        yield pools_family
        grouped = self._grouped(pools)
        threads = GaugeMetricFamily(
            "thread_pool_threads", "Threads of the pool by state.", labels=["pool", "state"]
        )
        for label, members in grouped.items():
            for state in STATES:
                threads.add_metric([label, state], sum(getattr(m.stats, state) for m in members))
        yield threads
        for name, text, read in GAUGES:
            gauge = GaugeMetricFamily(name, text, labels=["pool"])
            for label, members in grouped.items():
                figures = [read(m) for m in members]
                # Pools that share a label (pool_label none) add up; a lag is the worst of them.
                gauge.add_metric([label], max(figures) if "lag" in name else sum(figures))
            yield gauge
        for name, text, read in COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["pool"])
            for label, members in grouped.items():
                counter.add_metric([label], sum(read(m) for m in members))
            yield counter
        took = GaugeMetricFamily(
            "thread_pool_scrape_duration_seconds", "Seconds this scrape took to read Redis."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _grouped(self, pools: list[PoolMetrics]) -> dict[str, list[PoolMetrics]]:
        grouped: dict[str, list[PoolMetrics]] = {}
        for m in pools:
            grouped.setdefault(self._label(m.stats.key), []).append(m)
        return grouped


class Connection:
    """The admin object, made at the first scrape that needs it and again after a failure to
    make it: the endpoint starts (and says ``thread_pool_up 0``) while Redis is away, as an
    exporter should, instead of exiting (a cluster client connects as it is made)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._admin: PoolAdmin | None = None
        self._lock = threading.Lock()

    def admin(self) -> PoolAdmin:
        with self._lock:
            if self._admin is None:
                self._admin = self._target.blocking_admin()
            return self._admin

    def metrics(self) -> list[PoolMetrics]:
        return self.admin().metrics()

    def close(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()


def make_app(connection: Connection, label: Callable[[str], str]) -> Callable[..., Any]:
    """The WSGI app: ``/healthz`` (200 when Redis answers, else 503), metrics anywhere else."""
    from prometheus_client import CollectorRegistry, make_wsgi_app

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolsCollector(connection.metrics, label))
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            body: list[bytes] = metrics_app(environ, start_response)
            return body
        try:
            connection.admin().pools()
        except ThreadPoolError as exc:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"redis unavailable: {type(exc).__name__}\n".encode()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    return app


@contextlib.contextmanager
def metrics_server(target: Target, host: str, port: int, pool_label: str) -> Iterator[WSGIServer]:
    """A metrics HTTP server bound to ``host:port`` (not serving yet: call ``serve_forever``, in
    this thread or another); it says where it listens on stderr."""
    try:
        from prometheus_client.exposition import ThreadingWSGIServer
    except ImportError:
        hint = "pip install 'openai-thread-pool[prometheus]'"
        raise click.UsageError(f"metrics need prometheus-client: {hint}") from None

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not news: no line per request."""

    settings = target.settings()  # a bad setting is a usage error now, not at the first scrape
    connection = Connection(target)
    app = make_app(connection, label_for(pool_label))
    with make_server(host, port, app, ThreadingWSGIServer, handler_class=Quiet) as server:
        sys.stderr.write(
            f"serving the metrics of the pools under prefix {settings.key_prefix!r} at "
            f"http://{host}:{server.server_port}/metrics (and /healthz)\n"
        )
        sys.stderr.flush()
        try:
            yield server
        finally:
            connection.close()


pool_label_option = click.option(
    "--pool-label",
    type=click.Choice(["key", "hash", "none"]),
    default="key",
    show_default=True,
    help="the pool label: the key, a hash of it, or none (figures summed over all pools)",
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9464,
    show_default=True,
    help="port to listen on (0: any free port, printed at start)",
)
@pool_label_option
@target_options
def metrics(target: Target, host: str, port: int, pool_label: str) -> None:
    """Serve every pool's state in the Prometheus text format, read from Redis at each scrape
    (and /healthz). Needs the `prometheus` extra."""
    with metrics_server(target, host, port, pool_label) as server:
        server.serve_forever()


COMMANDS = [metrics]
