"""``rediss://``: leases, an admin and the CLI over TLS to a private ``redis-server`` with a
certificate made for the test; a server whose certificate does not verify is refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.security import assert_absent, canary, cli, exception_text, make_ca
from thread_pool import AsyncThreadPool, PoolAdmin, StoreUnavailable, ThreadPool
from thread_pool.testing.redis_server import RedisNotFound, RedisServer, free_port


@dataclass(frozen=True)
class TlsServer:
    port: int
    password: str
    ca: Path

    def url(self, ca: Path | None = None, scheme: str = "rediss") -> str:
        query = f"?ssl_ca_certs={ca or self.ca}" if scheme == "rediss" else ""
        return f"{scheme}://:{self.password}@127.0.0.1:{self.port}/0{query}"


def _unavailable(reason: str) -> None:
    # A required test is never silently skipped: CI fails where a person's machine skips.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    files = make_ca(tmp_path_factory.mktemp("tls"))
    port, password = free_port(), canary("redis")
    args = ["--tls-port", str(port), "--tls-auth-clients", "no"]
    args += ["--tls-cert-file", str(files["cert"]), "--tls-key-file", str(files["key"])]
    args += ["--tls-ca-cert-file", str(files["ca"])]
    # The plain port stays open only for RedisServer's readiness check; the tests use TLS.
    server = RedisServer(extra_args=args, password=password)
    try:
        server.start()
    except RedisNotFound as exc:
        if "tls" not in str(exc).lower():
            raise
        _unavailable(f"{server.binary} is built without TLS ({exc}); install one with TLS")
    try:
        yield TlsServer(port, password, files["ca"])
    finally:
        server.stop()


def test_leases_and_an_admin_work_over_tls(tls: TlsServer) -> None:
    with ThreadPool(redis_url=tls.url(), key_prefix="tls", redis_cluster=False) as pool:
        pool.configure("doc", max_size=2)
        pool.add_threads("doc", ["t1", "t2"])
        with pool.lease("doc") as a, pool.lease("doc") as b:
            assert {a.thread_id, b.thread_id} == {"t1", "t2"}
            pool.renew(a)
        assert pool.stats("doc").idle == 2
    with PoolAdmin(redis_url=tls.url(), key_prefix="tls", redis_cluster=False) as admin:
        assert admin.status("doc").stats.threads == 2


def test_asyncio_pools_work_over_tls(tls: TlsServer) -> None:
    async def main() -> str:
        async with AsyncThreadPool(
            redis_url=tls.url(), key_prefix="tls-async", redis_cluster=False
        ) as pool:
            await pool.add_threads("doc", ["a1"])
            async with pool.lease("doc") as lease:
                return lease.thread_id

    assert asyncio.run(main()) == "a1"


def test_the_cli_works_over_tls(tls: TlsServer, tmp_path: Path) -> None:
    with ThreadPool(redis_url=tls.url(), key_prefix="tls-cli", redis_cluster=False) as pool:
        pool.add_threads("doc", ["c1"])
    env = {"THREAD_POOL_REDIS_URL": tls.url(), "THREAD_POOL_KEY_PREFIX": "tls-cli"}
    env["THREAD_POOL_REDIS_CLUSTER"] = "0"  # a single server, also in the cluster pass
    done = cli(env, "status", "doc", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "c1" in done.stdout
    assert_absent(tls.password, done.stdout, done.stderr)


def test_a_certificate_that_does_not_verify_is_refused(tls: TlsServer, tmp_path: Path) -> None:
    other_ca = make_ca(tmp_path)["ca"]
    with (
        pytest.raises(StoreUnavailable) as caught,
        ThreadPool(
            redis_url=tls.url(ca=other_ca), key_prefix="tls-bad", redis_cluster=False
        ) as pool,
    ):
        pool.stats("doc")
    assert "certificate verify failed" in str(caught.value)
    assert_absent(tls.password, exception_text(caught.value))


def test_plain_text_to_the_tls_port_fails(tls: TlsServer) -> None:
    # The server really speaks TLS on that port: the tests above did not pass in plain text.
    with (
        pytest.raises(StoreUnavailable) as caught,
        ThreadPool(
            redis_url=tls.url(scheme="redis"), key_prefix="tls-plain", redis_cluster=False
        ) as pool,
    ):
        pool.stats("doc")
    assert_absent(tls.password, exception_text(caught.value))
