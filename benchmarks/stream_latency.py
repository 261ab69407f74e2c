"""Time to first token and total time of a streamed turn: through the pool against the bare
SDK stream, on the same emulator in the same run.

For each API, turns alternate between the two ways (so drift of the machine hits both alike):

- bare SDK, Conversations: ``responses.create(conversation=..., input=[...], stream=True,
  background=True)`` on a conversation of its own, iterated to its end;
- bare SDK, Assistants: ``runs.create(thread, additional_messages=[...], stream=True)``;
- pool: ``async with pool.stream(key, message) as events`` iterated to ``TurnDone`` and the
  block left (lease acquired, context checked, the response named in Redis, the turn logged,
  the lease released).

Time to first token: from the call to the first text delta. Total: from the call to the end
(the pool's block left). Every emulated run takes exactly ``--latency`` seconds, its text spread
over that time, so what differs is what the client side adds. The emulator runs in a process of
its own: in this one, its threads would take the GIL from the client at every socket send (the
switch interval is 5 ms), and the pool, making more sends (Redis), would pay for the emulator.
Medians and 95th percentiles, and the pool's added time at each; one run, printed, with what
one Redis round trip costs meanwhile, and how many Redis commands (round trips) a pooled turn
makes before its first token and in all (counted afterwards, on a pool of their own, so that
counting costs the timed turns nothing).

    .venv/bin/python benchmarks/stream_latency.py [--turns 100] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import cast

import openai
import redis
import redis.asyncio as aioredis

from thread_pool import AsyncBackend, AsyncThreadPool, Settings, TextDelta, build_backend

# The bare Assistants calls below are made from this file; their deprecation warning is noise.
warnings.filterwarnings("ignore", category=DeprecationWarning)

Timed = tuple[float, float]  # (time to first token, total), seconds
Turn = Callable[[str], Awaitable[Timed]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bare_conversations(client: openai.AsyncOpenAI) -> Turn:
    conv = await client.conversations.create()

    async def turn(message: str) -> Timed:
        started = time.perf_counter()
        first = 0.0
        stream = await client.responses.create(
            model="emulated",
            conversation=conv.id,
            input=[{"role": "user", "content": message}],
            stream=True,
            background=True,
        )
        async with stream:
            async for event in stream:
                if event.type == "response.output_text.delta" and not first:
                    first = time.perf_counter() - started
        return first, time.perf_counter() - started

    return turn


async def bare_assistants(client: openai.AsyncOpenAI, assistant_id: str) -> Turn:
    thread = await client.beta.threads.create()

    async def turn(message: str) -> Timed:
        started = time.perf_counter()
        first = 0.0
        stream = await client.beta.threads.runs.create(
            thread.id,
            assistant_id=assistant_id,
            additional_messages=[{"role": "user", "content": message}],
            stream=True,
        )
        async with stream:
            async for event in stream:
                if event.event == "thread.message.delta" and not first:
                    first = time.perf_counter() - started
        return first, time.perf_counter() - started

    return turn


def pooled(pool: AsyncThreadPool, key: str) -> Turn:
    async def turn(message: str) -> Timed:
        started = time.perf_counter()
        first = 0.0
        async with pool.stream(key, message) as events:
            async for event in events:
                if isinstance(event, TextDelta) and not first:
                    first = time.perf_counter() - started
        return first, time.perf_counter() - started

    return turn


class CountingRedis(aioredis.Redis):
    """The asyncio client, counting the commands sent through it (each one round trip)."""

    sent = 0

    async def execute_command(self, *args: object, **options: object) -> object:
        self.sent += 1
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


async def round_trips(
    backend: AsyncBackend, key: str, prefix: str, turns: int = 20
) -> tuple[int, int]:
    """Median Redis commands of a pooled streamed turn: before its first token, and in all."""
    client = cast(
        CountingRedis, CountingRedis.from_url(Settings().redis_url, decode_responses=True)
    )
    before, total = [], []
    async with AsyncThreadPool(client=client, backend=backend, key_prefix=prefix) as pool:
        for i in range(turns + 1):  # the first grows the pool's thread and loads the scripts
            client.sent = 0
            first = -1
            async with pool.stream(key, f"counted turn {i}") as events:
                async for event in events:
                    if isinstance(event, TextDelta) and first < 0:
                        first = client.sent
            if i:
                before.append(first)
                total.append(client.sent)
    await client.aclose()
    return int(statistics.median(before)), int(statistics.median(total))


def start_emulator(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The emulator in a process of its own; its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "thread_pool.emulator", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "base_url=" not in line:
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return process, line.strip().split("base_url=")[1]


async def compare(kind: str, base_url: str, turns: int, prefix: str) -> dict[str, float]:
    """``turns`` streamed turns each way, alternating; the figures of both."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    if kind == "assistants":
        assistant_id = (await client.beta.assistants.create(model="emulated")).id
        bare = await bare_assistants(client, assistant_id)
        backend = build_backend("assistants", client, assistant_id=assistant_id)
    else:
        bare = await bare_conversations(client)
        backend = build_backend("conversations", client, model="emulated")
    async with AsyncThreadPool(backend=backend, key_prefix=prefix) as pool:
        through_pool = pooled(pool, f"bench-{kind}")
        for warm_up in (bare, through_pool):  # connections opened, the pool's thread made
            await warm_up("warm up")
        timings: dict[str, list[Timed]] = {"bare": [], "pool": []}
        for i in range(turns):
            ways = [("bare", bare), ("pool", through_pool)]
            for name, turn in ways if i % 2 == 0 else reversed(ways):
                timings[name].append(await turn(f"turn {i}: tell me about streams"))
        # What one Redis round trip costs this process now, for reading the figures on a
        # loaded machine (see round_trips for how many a turn makes).
        rtts = []
        for _ in range(200):
            began = time.perf_counter()
            await pool.stats(f"bench-{kind}")
            rtts.append((time.perf_counter() - began) * 1000)
    trips_first, trips_total = await round_trips(backend, f"count-{kind}", prefix)
    await client.close()
    out: dict[str, float] = {
        "redis_rtt_p50": statistics.median(rtts),
        "round_trips_before_first_token": trips_first,
        "round_trips_total": trips_total,
    }
    for name, timed in timings.items():
        for index, what in ((0, "ttft"), (1, "total")):
            values = [t[index] * 1000 for t in timed]
            out[f"{name}_{what}_p50"] = statistics.median(values)
            out[f"{name}_{what}_p95"] = percentile(values, 0.95)
    for what in ("ttft", "total"):
        for q in ("p50", "p95"):
            out[f"added_{what}_{q}"] = out[f"pool_{what}_{q}"] - out[f"bare_{what}_{q}"]
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="emulated run time, seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    prefix = f"bench-stream-{uuid.uuid4().hex[:8]}"
    process, base_url = start_emulator(args.latency)
    results = {}
    try:
        for kind in ("conversations", "assistants"):
            results[kind] = await compare(kind, base_url, args.turns, prefix)
    finally:
        process.terminate()
        process.wait(10)
        client = redis.Redis.from_url(Settings().redis_url)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.turns} streamed turns each way per API, every run {args.latency * 1000:.0f} ms")
    print(f"{'API':<14}{'':6}{'TTFT p50':>10}{'TTFT p95':>10}{'total p50':>11}{'total p95':>11}")
    for kind, r in results.items():
        print(
            f"{kind}: one Redis round trip (pool.stats) p50 {r['redis_rtt_p50']:.2f} ms; a pooled"
            f" turn makes {r['round_trips_before_first_token']:.0f} before its first token,"
            f" {r['round_trips_total']:.0f} in all"
        )
        for name in ("bare", "pool", "added"):
            print(
                f"{kind:<14}{name:<6}{r[f'{name}_ttft_p50']:>8.1f}ms{r[f'{name}_ttft_p95']:>8.1f}ms"
                f"{r[f'{name}_total_p50']:>9.1f}ms{r[f'{name}_total_p95']:>9.1f}ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
