"""The chaos run: many worker processes x asyncio tasks run turns through pools against the
emulator while faults are injected, then the evidence is collected and checked.

Faults, all during one run: SIGKILL of workers (a new worker takes each one's place), SIGSTOP of
workers past the lease TTL then SIGCONT, cancellation of turns at random moments (inside the
workers), upstream storms of 500/503/429 with stuck, failed and expired runs, and restarts of the
pools' Redis (killed, restarted from its append-only file).

``python -m tests.chaos --help`` runs it from the command line with larger figures.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import redis

from tests.chaos import worker
from tests.support.evidence import (
    LoggedTurn,
    PoolLeftovers,
    Records,
    Write,
    late_writes,
    violations,
)
from tests.support.upstream import create_assistant
from tests.support.workers import Site, check_key, start
from thread_pool import ThreadPool
from thread_pool._model.turns import POOL_KEY
from thread_pool._store.clients import connect
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator.client import IntrospectionClient
from thread_pool.testing.redis_server import LocalCluster, RedisServer

#: The emulator's calm and storm configurations (the storm's HTTP faults are retried by the
#: backends; its failed, expired and stuck runs end turns with TurnFailed).
CALM = {"http_500": 0.0, "http_503": 0.0, "http_429": 0.0, "run_failed": 0.0, "run_stuck": 0.0}
STORM = {
    "http_500": 0.08,
    "http_503": 0.08,
    "http_429": 0.08,
    "run_failed": 0.03,
    "run_expired": 0.0,
    "run_stuck": 0.03,
}


@dataclass(frozen=True)
class ChaosConfig:
    """The size of a run and how often each fault strikes (seconds between strikes)."""

    processes: int = 20
    tasks: int = 20
    turns: int = 10_000
    pools_per_backend: int = 2
    max_size: int = 8
    lease_ttl: float = 3.0
    renew_margin: float = 1.5
    latency: str = "0.01-0.04"
    run_ttl: float = 2.0  # a stuck run expires after this many seconds
    kill_every: float = 6.0
    stop_every: float = 7.0
    stop_for: float = 4.5  # past the lease TTL
    storm_every: float = 8.0
    storm_for: float = 3.0
    restart_every: float = 25.0
    restart_down: float = 1.0
    cancel_rate: float = 0.05
    settle_timeout: float = 10.0  # how long a settler's claim lasts (a killed settler's too)
    # The pools' lock-delay, longer than a pause: a write sent late by a stopped holder lands on
    # a thread nobody holds. (A run-starting request is covered without it: the settler waits
    # for its holder to name the run; the run also passes with 0, as --reclaim-delay 0 shows.)
    reclaim_delay: float = 5.5
    seed: int = 1
    timeout: float = 900.0
    cluster: bool = False  # the pools on a Redis Cluster of 3 masters; a restart hits one of them


@dataclass
class Report:
    """What a run did and what the checker found."""

    config: dict[str, Any]
    seconds: float = 0.0
    turns_completed: int = 0
    turns_started: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    upstream: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    late_writes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for a person."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.turns_completed} turns completed of {self.turns_started} started in "
            f"{self.seconds:.0f} s by {self.config['processes']} processes x "
            f"{self.config['tasks']} tasks\n"
            f"faults injected: {faults}\n"
            f"turn outcomes: {outcomes}\n"
            f"upstream: {json.dumps(self.upstream)}\n"
            f"writes after their lease's deadline, before anyone else held the thread: "
            f"{len(self.late_writes)}\n"
            f"violations: {len(self.violations)}"
            + "".join(f"\n  - {v}" for v in self.violations[:50])
        )


@contextmanager
def emulator_process(config: ChaosConfig) -> Iterator[tuple[str, IntrospectionClient]]:
    """The emulator in a process of its own (it gets a core's worth of time, not a thread's)."""
    args = [sys.executable, "-m", "thread_pool.emulator", "--port", "0"]
    args += ["--latency", config.latency, "--run-ttl", str(config.run_ttl)]
    args += ["--retry-after", "0.05", "--poll-after-ms", "20", "--seed", str(config.seed)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "base_url=" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        base_url = line.strip().split("base_url=", 1)[1]
        yield base_url, IntrospectionClient(base_url.removesuffix("/v1"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


class _Workers:
    """The worker processes, replaced as they are killed."""

    def __init__(self, config: ChaosConfig, common: dict[str, Any]) -> None:
        self.config = config
        self.common = common
        self.live: dict[str, multiprocessing.process.BaseProcess] = {}
        self.killed: set[str] = set()
        self.spawned = 0
        self.lock = threading.Lock()

    def spawn(self, slot: int) -> None:
        backend = "assistants" if slot % 2 == 0 else "conversations"
        self.spawned += 1
        name = f"w{self.spawned}"
        keys = tuple(f"{backend}-{i}" for i in range(self.config.pools_per_backend))
        worker_config = worker.WorkerConfig(
            name=name,
            backend=backend,
            keys=keys,
            tasks=self.config.tasks,
            target=self.config.turns,
            cancel_rate=self.config.cancel_rate,
            **worker.pool_settings(self.config),
            seed=self.config.seed * 1000 + self.spawned,
            **self.common,
        )
        proc = start(worker.main, worker_config, name=f"{name}:{slot}")
        with self.lock:
            self.live[name] = proc

    def pick(
        self, rng: random.Random, among: set[str] | None = None
    ) -> tuple[str, multiprocessing.process.BaseProcess] | None:
        """A running worker (one of ``among``, by name, when given and any of them runs)."""
        with self.lock:
            running = [(n, p) for n, p in self.live.items() if p.is_alive()]
        chosen = [(n, p) for n, p in running if among is None or n in among]
        return rng.choice(chosen or running) if running else None

    def kill(self, rng: random.Random) -> bool:
        picked = self.pick(rng)
        if picked is None:
            return False
        name, proc = picked
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        with self.lock:
            self.killed.add(name)
            del self.live[name]
        self.spawn(int(proc.name.rsplit(":", 1)[1]))
        return True

    def failed(self) -> list[str]:
        """Workers that ended on their own with an error (a crash the run did not cause)."""
        with self.lock:
            return [
                f"worker {n} exited with {p.exitcode}"
                for n, p in self.live.items()
                if p.exitcode not in (None, 0)
            ]

    def join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for proc in list(self.live.values()):
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                assert proc.pid is not None
                os.kill(proc.pid, signal.SIGUSR1)  # its tasks' stacks, for the diagnosis
                time.sleep(1)
                proc.kill()
                raise RuntimeError(f"worker {proc.name} did not finish in {timeout} s")


def run(config: ChaosConfig, evidence_url: str | None = None) -> Report:
    """One chaos run on private Redis servers and an emulator process; returns its report."""
    report = Report(config=asdict(config))
    with ExitStack() as stack:
        evidence_server = None if evidence_url else stack.enter_context(RedisServer())
        ev_url = evidence_url or (evidence_server.url if evidence_server else "")
        # The pools' Redis keeps an append-only file synced on every write: a restart loses
        # nothing, which the checker verifies (no lost turn, fences keep growing).
        # A small rewrite threshold keeps the AOF that a restart replays short: on a loaded
        # machine a long replay (the server answers LOADING meanwhile) outlasted the start-up wait.
        aof = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--auto-aof-rewrite-min-size",
            "1mb",
        ]
        if config.cluster:
            cluster = stack.enter_context(LocalCluster(masters=3, extra_args=aof))
            nodes, store_url = cluster.nodes, cluster.url
        else:
            single = stack.enter_context(RedisServer(extra_args=aof))
            nodes, store_url = [single], single.url
        base_url, admin = stack.enter_context(emulator_process(config))
        prefix = f"chaos-{random.randrange(16**8):08x}"
        evidence = redis.Redis.from_url(ev_url, decode_responses=True)
        stack.callback(evidence.close)
        common = {
            "base_url": base_url,
            "assistant_id": create_assistant(base_url),
            "store_url": store_url,
            "cluster": config.cluster,
            "evidence_url": ev_url,
            "prefix": prefix,
        }
        _prewarm(config, common)
        started = time.monotonic()
        workers = _Workers(config, common)
        for slot in range(config.processes):
            workers.spawn(slot)
        faults = _inject_faults(config, workers, nodes, admin, evidence, prefix)
        report.faults = dict(faults)
        workers.join(timeout=120)
        report.seconds = time.monotonic() - started
        report.faults["worker crashes (not injected)"] = len(workers.failed())
        report.violations += workers.failed()
        _collect(config, report, common, admin, evidence, prefix)
    return report


def _prewarm(config: ChaosConfig, common: dict[str, Any]) -> None:
    """Grow every pool to max_size before the faults begin, as an operator's ``thread-pool
    prewarm`` would. A process killed between creating a thread upstream and registering it
    leaves that thread unknown to the pool (upstream cannot list threads); with full pools
    nothing grows under the faults, so every upstream thread is accounted for."""
    for backend_kind in ("assistants", "conversations"):
        with _pool(config, common, backend_kind) as pool:
            for i in range(config.pools_per_backend):
                key = f"{backend_kind}-{i}"
                held = [pool.acquire(key) for _ in range(config.max_size)]
                for lease in held:
                    pool.release(lease)


def _inject_faults(
    config: ChaosConfig,
    workers: _Workers,
    nodes: list[RedisServer],
    admin: IntrospectionClient,
    evidence: redis.Redis,
    prefix: str,
) -> Counter[str]:
    """Strike until the run has its turns; returns the faults injected by kind."""
    rng = random.Random(config.seed)
    faults: Counter[str] = Counter()
    now = time.monotonic()
    due = {
        "kill": now + config.kill_every,
        "stop": now + config.stop_every,
        "storm": now + config.storm_every,
        # The first restart comes early, so that even a short run (CI's) has one.
        "restart": now + min(config.restart_every, 10.0),
    }
    storm_ends: float | None = None
    # Each pause ends on a timer of its own, on time even while a Redis restart blocks this loop
    # (a pause longer than planned tests something else than the one asked for).
    resumes: list[threading.Timer] = []
    give_up = now + config.timeout
    while int(evidence.get(check_key(prefix, worker.DONE)) or 0) < config.turns:
        now = time.monotonic()
        if now > give_up:
            raise RuntimeError(f"the run did not complete {config.turns} turns in time")
        if crashed := workers.failed():
            raise RuntimeError("; ".join(crashed))
        if storm_ends is not None and now >= storm_ends:
            admin.configure(**CALM)
            storm_ends = None
        if now >= due["kill"] and workers.kill(rng):
            faults["SIGKILL of a worker"] += 1
            due["kill"] = now + config.kill_every
        if now >= due["stop"]:
            # A worker that holds a lease now (most do): the pause is to outlast its lease.
            picked = workers.pick(rng, among=_holding(evidence, prefix))
            if picked is not None and picked[1].pid is not None:
                os.kill(picked[1].pid, signal.SIGSTOP)
                resume = threading.Timer(config.stop_for, _resume, (picked[1].pid,))
                resume.start()
                resumes.append(resume)
                faults["SIGSTOP past the lease TTL"] += 1
            due["stop"] = now + config.stop_every
        if now >= due["storm"]:
            admin.configure(**STORM)
            storm_ends = now + config.storm_for
            faults["upstream storm (5xx/429, stuck and failed runs)"] += 1
            due["storm"] = now + config.storm_every + config.storm_for
        if now >= due["restart"]:
            node = rng.choice(nodes)  # on a cluster: one master, the pools in its slots
            node.kill()
            time.sleep(config.restart_down)
            # Generous: 400 clients reconnecting at once and an AOF replay share 2 cores.
            node.start(timeout=60.0)
            faults["Redis restart (AOF)"] += 1
            due["restart"] = time.monotonic() + config.restart_every
        time.sleep(0.05)
    for resume in resumes:
        resume.cancel()
        _resume(*resume.args)
    if storm_ends is not None:
        admin.configure(**CALM)
    return faults


def _holding(evidence: redis.Redis, prefix: str) -> set[str]:
    """The workers (by name) holding a lease, by the latest evidence: grants not ended yet."""
    records = check_key(prefix, worker.RECORDS)
    recent = Records.parse(str(x) for x in evidence.lrange(records, -400, -1))
    ended = {(e.thread_id, e.fence) for e in recent.ends}
    return {g.holder.split("/", 1)[0] for g in recent.grants if (g.thread_id, g.fence) not in ended}


def _resume(pid: int) -> None:
    """SIGCONT a paused worker, unless it was killed while paused (a fault of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def _collect(
    config: ChaosConfig,
    report: Report,
    common: dict[str, Any],
    admin: IntrospectionClient,
    evidence: redis.Redis,
    prefix: str,
) -> None:
    """Reap every pool, then read the evidence and run the checker."""
    keys = [
        f"{backend}-{i}"
        for backend in ("assistants", "conversations")
        for i in range(config.pools_per_backend)
    ]
    # Leases of killed or paused holders run out within a TTL; reap then settles their threads.
    # A settler killed mid-settle holds its claim until settle_timeout; reap takes it over then.
    time.sleep(config.lease_ttl + config.reclaim_delay + 0.5)
    give_up = time.monotonic() + config.settle_timeout + 10
    for backend_kind in ("assistants", "conversations"):
        with _pool(config, common, backend_kind) as pool:
            for key in keys:
                if not key.startswith(backend_kind):
                    continue
                pool.reap(key)
                while pool.stats(key).settling and time.monotonic() < give_up:
                    time.sleep(0.5)
                    pool.reap(key)
    outcomes = {
        str(k): int(v) for k, v in evidence.hgetall(check_key(prefix, worker.OUTCOMES)).items()
    }
    report.outcomes = outcomes
    report.turns_started = sum(outcomes.values())
    records = Records.parse(
        str(x) for x in evidence.lrange(check_key(prefix, worker.RECORDS), 0, -1)
    )
    report.turns_completed = len(records.done)
    report.faults["turn cancelled at a random moment"] = outcomes.get("cancelled", 0)
    stats = admin.stats()
    report.faults.update({f"upstream {k}": v for k, v in stats["faults"].items()})
    writes = [
        Write.logged(owner, entry)
        for owner, entries in admin.all_writes().items()
        for entry in entries
    ]
    objects = admin.objects()
    upstream: dict[str, list[str]] = {}
    for kind in ("threads", "conversations"):
        for object_id, metadata in objects[kind].items():
            upstream.setdefault(metadata.get(POOL_KEY, "(no pool)"), []).append(object_id)
    with connect(common["store_url"], cluster=config.cluster, decode_responses=True) as client:
        log = [
            LoggedTurn(
                key, int(entry_id.split("-")[0]), fields["content"], fields.get("origin", "")
            )
            for key in keys
            for entry_id, fields in client.xrange(PoolKeys.of(prefix, key).log)
            if fields.get("role") == "user"
        ]
        leftovers = [PoolLeftovers.read(client, prefix, key, config.max_size) for key in keys]
    report.upstream = {
        "requests": stats["requests_total"],
        "writes": len(writes),
        "lock_errors": stats["lock_errors"],
        "peak_active_per_thread": stats["peak_active_per_owner"],
        "threads": {pool: len(ids) for pool, ids in sorted(upstream.items())},
    }
    report.late_writes = late_writes(records, writes)
    report.violations += violations(
        records,
        writes,
        log,
        leftovers,
        lock_errors=int(stats["lock_errors"]["total"]),  # by kind in report.upstream
        peak_active_per_thread=int(stats["peak_active_per_owner"]),
        upstream_threads=upstream,
    )


def _pool(config: ChaosConfig, common: dict[str, Any], kind: str) -> ThreadPool:
    """A blocking pool object of the driver's own, on the workers' pools of backend ``kind``,
    with the workers' settings (a pool takes its sizes and lease TTL from whoever creates it)."""
    site = Site(
        common["base_url"], "unused", common["assistant_id"], common["store_url"], common["prefix"]
    )
    settings = {"redis_cluster": config.cluster, **worker.pool_settings(config)}
    return site.pool("assistants" if kind == "assistants" else "background", settings)


def scaled(config: ChaosConfig, **changes: Any) -> ChaosConfig:
    """``config`` with some figures changed."""
    return replace(config, **changes)
