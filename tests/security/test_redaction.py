"""The one redaction helper: URLs masked as redis-py masks its reprs, credentials in free text,
exception chains and log records."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

import thread_pool
from thread_pool import Settings
from thread_pool._model.redaction import RedactingFilter, mask_url, scrub, scrub_chain

SECRET = "s3cr:et@pw"  # a password with the characters that end a naive match


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@host:6379/0", "redis://<REDACTED>:<REDACTED>@host:6379/0"),
        (
            "rediss://user:pw@host/0?ssl_ca_certs=/ca.pem",
            "rediss://<REDACTED>:<REDACTED>@host/0?ssl_ca_certs=/ca.pem",
        ),
        ("redis://user@host", "redis://<REDACTED>@host"),
        ("redis://u:p@ss@host:1/0", "redis://<REDACTED>:<REDACTED>@host:1/0"),
        (
            "unix:///run/redis.sock?db=0&password=pw",
            "unix:///run/redis.sock?db=0&password=<REDACTED>",
        ),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("redis://:pw@host:notaport/0", "redis://<REDACTED>:<REDACTED>@host:notaport/0"),
        ("redis://:pw@[::1/0", "redis://<REDACTED>@[::1/0"),  # urllib refuses it
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_url(masked) == masked


def test_scrub_masks_every_kind_of_credential_in_text() -> None:
    text = (
        f"during connect to redis://user:{SECRET}@10.0.0.1:6379/0: refused; "
        "Authorization: Bearer tok-123456; key sk-abcdefghijklmnop; "
        "unix:///s.sock?password=pw2&db=1"
    )
    out = scrub(text)
    for secret in (SECRET, "et@pw", "tok-123456", "sk-abcdefghijklmnop", "pw2"):
        assert secret not in out, out
    assert "10.0.0.1:6379/0: refused" in out
    assert "db=1" in out
    assert scrub(out) == out


def test_scrub_chain_masks_causes_and_contexts_in_place() -> None:
    try:
        try:
            raise ValueError(f"bad url redis://:{SECRET}@h:1/0")
        except ValueError:
            raise ConnectionError("while connecting") from OSError(f"redis://:{SECRET}@h")
    except ConnectionError as exc:
        caught = exc
    scrub_chain(caught)
    assert caught.__cause__ is not None
    assert caught.__context__ is not None
    assert SECRET not in str(caught.__cause__)
    assert SECRET not in str(caught.__context__)


def test_the_library_logger_masks_records_and_their_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("thread_pool")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    with caplog.at_level(logging.INFO, logger="thread_pool"):
        logger.info("connecting to %s", f"redis://:{SECRET}@h:1/0")
        try:
            raise OSError(f"redis://:{SECRET}@h")
        except OSError:
            logger.exception("failed")
    assert SECRET not in caplog.text
    assert "<REDACTED>" in caplog.text


def test_every_logger_of_the_library_masks_credentials() -> None:
    """A filter on ``thread_pool`` does not see ``thread_pool.x``'s records: each logger the
    source names must carry one."""
    source = Path(thread_pool.__file__).parent
    names = set()
    for path in source.rglob("*.py"):
        names |= set(re.findall(r"getLogger\(\"(thread_pool[\w.]*)\"\)", path.read_text()))
    assert "thread_pool" in names
    for name in names:
        filters = logging.getLogger(name).filters
        assert any(isinstance(f, RedactingFilter) for f in filters), name


def test_settings_show_the_url_masked_and_keep_it_whole() -> None:
    url = f"redis://user:{SECRET.replace('@', '%40').replace(':', '%3A')}@h:1/0"
    settings = Settings.load(redis_url=url)
    for text in (repr(settings), str(settings)):
        assert "s3cr" not in text
        assert "redis://<REDACTED>:<REDACTED>@h:1/0" in text
    assert settings.redis_url == url
    assert settings.model_dump()["redis_url"] == url
