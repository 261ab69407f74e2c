"""Everything a test's key prefix holds in Redis, to show that a refused call wrote nothing."""

from __future__ import annotations

from typing import Any

import redis


def everything(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` with its type and content (a cluster client scans each
    master). ``client`` decodes responses."""
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
        out[name] = (kind, data)
    return out
