"""Everything a test's key prefix holds in Redis, to show that a refused call wrote nothing."""

from __future__ import annotations

from typing import Any

import redis


def everything(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` with its type, content and whether it expires (a cluster
    client scans each master). ``client`` decodes responses."""
    out: dict[str, Any] = {}
    for name in sorted(client.scan_iter(match=f"{prefix}:*", count=1000)):
        kind = client.type(name)
        if kind == "string":
            data: Any = client.get(name)
        elif kind == "hash":
            data = client.hgetall(name)
        elif kind == "list":
            data = client.lrange(name, 0, -1)
        elif kind == "set":
            data = sorted(client.smembers(name))
        elif kind == "zset":
            data = client.zrange(name, 0, -1, withscores=True)
        elif kind == "stream":
            data = client.xrange(name)
        else:
            data = None
        out[name] = (kind, data, client.pttl(name) > 0)
    return out


def writes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The keys a call added, changed or removed between two ``everything`` snapshots. A key
    with a TTL that vanished is not counted: it may have expired meanwhile."""
    changed = [n for n in after if before.get(n) is None or before[n][:2] != after[n][:2]]
    gone = [n for n, (_kind, _data, expires) in before.items() if n not in after and not expires]
    return sorted(changed + gone)
