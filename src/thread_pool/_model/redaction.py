"""Keeping secrets out of text: the one place that masks Redis passwords and API keys.

Every message, repr, log line and CLI output that could carry a URL or a third-party error goes
through here. URLs are masked as redis-py masks its connection reprs: the user name and the
password become ``<REDACTED>`` (``redis://<REDACTED>:<REDACTED>@host:6379/0``), the rest stays,
so the text still says which server it was about.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<REDACTED>"

# Query parameters of a URL that hold a credential (redis-py reads ``password`` and ``username``
# from the query string of ``unix://`` URLs, and of any URL it parses).
_SECRET_PARAMS = frozenset({"password", "username", "ssl_password", "api_key", "key", "token"})

# In free text: the credentials of a URL (``scheme://user:pass@``), a credential given as a
# query parameter, a bearer token and an OpenAI-style key. The user-info part runs to the last
# ``@`` before the host, so a password holding ``@`` or ``:`` is masked whole.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#'\"<>]*@")
_PARAM = re.compile(r"(?i)([?&;](?:" + "|".join(sorted(_SECRET_PARAMS)) + r")=)[^&\s#'\"]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s'\"]+")
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")


def mask_url(url: str) -> str:
    """``url`` with its user name, password and credential parameters replaced by REDACTED."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            masked = REDACTED if ":" not in userinfo else f"{REDACTED}:{REDACTED}"
            netloc = f"{masked}@{host}"
        # The rest of the query stays as written (ssl_ca_certs=/path, not %2Fpath).
        query = _PARAM.sub(rf"\1{REDACTED}", f"?{parts.query}")[1:]
        if netloc == parts.netloc and query == parts.query:
            return url
        if "://" not in url:
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        # Built by hand: urlunsplit writes "unix:/path" for "unix:///path".
        tail = (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
        return f"{parts.scheme}://{netloc}{parts.path}{tail}"
    except ValueError:
        # Not a URL urllib can take apart (a bad port, brackets): mask whatever looks secret.
        return scrub(url)


def scrub(text: str) -> str:
    """``text`` with every credential it shows masked: URL user-info, credential parameters,
    bearer tokens and API keys."""
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = _PARAM.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    return _API_KEY.sub(REDACTED, text)


def scrub_chain(exc: BaseException) -> BaseException:
    """Mask credentials in the messages of ``exc`` and of every exception it was raised from or
    during (``__cause__``, ``__context__``), in place, so a traceback shows none; returns ``exc``.

    Third-party exceptions (redis-py's, the SDK's) may quote a URL they were given: only their
    string arguments change, and only when they showed a credential."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        args = current.args
        cleaned = tuple(scrub(a) if isinstance(a, str) else a for a in args)
        if cleaned != args:
            # An exception type may fix its args: it keeps them.
            with contextlib.suppress(AttributeError, TypeError):
                current.args = cleaned
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return exc


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in a record's message and exception, so no log
    line of the library shows a password or a key, whatever handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_chain(record.exc_info[1])
            record.exc_text = None  # formatted again, from the masked exception
        return True


def key_digest(key: str) -> str:
    """A pool key as 12 hex digits of its SHA-256: what monitoring shows of keys that name users
    or documents (one series per pool remains, the key does not)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]
