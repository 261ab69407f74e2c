"""What the security tests share: canary secrets, a workload that uses every Redis command the
library sends (to run under a restricted ACL user), and a certificate authority for TLS."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import threading
import traceback
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import openai

from tests.support.environment import COMMAND, clean_environment
from thread_pool import PoolAdmin, ThreadPool, build_backend


def canary(kind: str) -> str:
    """A secret no text may show: unique, so a match can only be a leak."""
    return f"{kind}-CANARY-{uuid.uuid4().hex}"


def exception_text(exc: BaseException) -> str:
    """Every way an exception is shown: str, repr, and the full traceback with its chain."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def assert_absent(secret: str, *texts: str) -> None:
    """No text shows ``secret``, nor a long part of it (a half-masked secret still leaks)."""
    core = secret.split("-CANARY-")[-1]
    for text in texts:
        assert secret not in text, text
        assert core[:16] not in text, text


def cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``thread-pool ARGS`` as a user runs it, with ``env`` over a clean environment."""
    return subprocess.run(
        [*COMMAND, *args],
        env={**clean_environment(), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def workload(
    url: str, prefix: str, base_url: str, api_key: str, tmp: Path, cluster: bool = False
) -> None:
    """A pool's life through the library and the CLI: growth, turns, a waiter handed a thread,
    renew/check, the log, reap, resize; admin status, export, import, drain, delete; the stress
    test. Under a restricted ACL user, any command it lacks fails this."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    backend = build_backend("conversations", client, model="emulated")
    settings: dict[str, Any] = {"redis_url": url, "key_prefix": prefix, "redis_cluster": cluster}
    with ThreadPool(backend=backend, max_size=1, acquire_timeout=20, **settings) as pool:
        pool.run("doc", "hello")
        pool.append("doc", "user", "context")
        assert [e.content for e in pool.history("doc")][-1] == "context"
        lease = pool.acquire("doc")
        pool.renew(lease)
        pool.check(lease)
        got: list[str] = []
        waiter = threading.Thread(target=lambda: got.append(pool.acquire("doc").thread_id))
        waiter.start()  # queues (max_size 1), then blocks on its mailbox until the release
        while not pool.stats("doc").waiting:
            pass
        pool.release(lease)
        waiter.join(20)
        assert got == [lease.thread_id]
        pool.reap()
        pool.configure("doc", max_size=2)
        pool.run("doc", "again")
    with PoolAdmin(**settings) as admin:
        assert admin.pools() == ["doc"]
        admin.status("doc")
        assert [m.stats.key for m in admin.metrics()] == ["doc"]  # scripts in a pipeline
        doc = admin.export()
        admin.drain("doc", timeout=0.1)  # the waiter's lease is never released: it stays
        admin.delete("doc", backend, force=True)
        assert admin.restore(doc) == ["doc"]
    env = {
        "THREAD_POOL_REDIS_URL": url,
        "THREAD_POOL_KEY_PREFIX": prefix,
        "OPENAI_API_KEY": api_key,
        "OPENAI_BASE_URL": base_url,
        "THREAD_POOL_REDIS_CLUSTER": "1" if cluster else "0",
    }
    for args in (
        ["status"],
        ["status", "doc", "--json"],
        ["export", "-o", str(tmp / "backup.json")],
        ["reap"],
        ["drain", "doc", "--off"],
        ["delete", "doc", "--yes", "--force", "--backend", "conversations"],
        ["import", str(tmp / "backup.json")],
        ["resize", "doc", "--max", "3"],
        ["delete", "doc", "--yes", "--force"],
        ["stress", "--workers", "2", "--iterations", "2", "--run-latency", "0.02", "--json"],
    ):
        done = cli(env, *args, cwd=tmp)
        assert done.returncode == 0, (args, done.stdout, done.stderr)


def make_ca(where: Path, hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> dict[str, Path]:
    """A certificate authority and a server certificate it signed for ``hosts``, as PEM files:
    ``ca``, ``cert``, ``key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("thread_pool test CA"))
        .issuer_name(name("thread_pool test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("redis test server"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": where / "ca.pem", "cert": where / "server.pem", "key": where / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files
