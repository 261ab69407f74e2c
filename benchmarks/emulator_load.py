"""Load check of the emulator: 10,000 threads held, >= 500 requests in flight, request rate.

Starts ``python -m thread_pool.emulator`` in its own process (one core for the server, the
other for this client), then:

1. creates 10,000 threads with 500 concurrent connections;
2. *in flight*: 500 workers each send synchronous ``POST /v1/responses`` (1 s emulated latency)
   back to back on their own conversation, so about 500 requests are always open; the server's
   own ``peak_in_flight`` proves it;
3. *throughput*: 500 workers cycle over the 10,000 threads (create a run with an additional
   message, retrieve it, list messages; 20-50 ms runs), as fast as the server answers.

Rates are medians over 1-second windows. The client is a minimal keep-alive HTTP/1.1 client on
asyncio streams, one connection per worker: a full HTTP client library with a 500-connection
pool costs more CPU than the server and would measure itself instead.

    .venv/bin/python benchmarks/emulator_load.py [--threads 10000] [--concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any


def start_server(latency: str, stack: str = "auto/auto") -> tuple[subprocess.Popen[str], str, int]:
    """The emulator in a child process, on ``stack`` (``loop/http``, as ``--loop``/``--http``
    take them); returns it, its host and its port."""
    loop, http = stack.split("/")
    command = [sys.executable, "-m", "thread_pool.emulator", "--port", "0", "--latency", latency]
    process = subprocess.Popen(
        [*command, "--loop", loop, "--http", http],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "base_url=" not in line:
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    host, port = line.strip().split("base_url=http://")[1].removesuffix("/v1").split(":")
    return process, host, int(port)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection:
    """One keep-alive HTTP/1.1 connection: JSON in, ``(status, JSON)`` out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: emulator\r\nauthorization: Bearer k\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, json.loads(await self.reader.readexactly(length))

    def close(self) -> None:
        self.writer.close()


class Meter:
    """Counts completed requests per 1-second window."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.windows: dict[int, int] = {}
        self.refused = 0

    def tick(self) -> None:
        second = int(time.monotonic() - self.started)
        self.windows[second] = self.windows.get(second, 0) + 1

    def median_rate(self) -> float:
        """Median of the full windows (the first and the last are partial)."""
        full = [count for _, count in sorted(self.windows.items())][1:-1]
        return statistics.median(full) if full else float("nan")


async def run_workers(
    connections: list[Connection],
    seconds: float,
    body: Callable[[int, Connection, Meter], Awaitable[None]],
) -> Meter:
    """One worker per connection, looping ``body`` until ``seconds`` have passed."""
    meter = Meter()
    deadline = time.monotonic() + seconds

    async def loop(index: int, connection: Connection) -> None:
        while time.monotonic() < deadline:
            await body(index, connection, meter)

    await asyncio.gather(*(loop(i, c) for i, c in enumerate(connections)))
    return meter


async def measure(args: argparse.Namespace, stack: str) -> dict[str, Any]:
    """Run the three phases on the emulator served by ``stack``; the figures."""
    process, host, port = start_server("0.02-0.05", stack)
    connections: list[Connection] = []
    try:
        connections = [await Connection.open(host, port) for _ in range(args.concurrency)]
        admin = connections[0]
        _, assistant = await admin.request("POST", "/v1/assistants", {"model": "gpt-4o"})

        # 1. Hold 10,000 threads.
        threads: list[str] = []

        async def create(index: int, connection: Connection, meter: Meter) -> None:
            if len(threads) >= args.threads:
                await asyncio.sleep(0.05)
                return
            threads.append("")  # claim a slot before awaiting, so we stop at the target
            slot = len(threads) - 1
            _, made = await connection.request("POST", "/v1/threads", {"metadata": {"n": "1"}})
            threads[slot] = made["id"]
            meter.tick()

        started = time.monotonic()
        creating = Meter()
        await asyncio.gather(
            *(
                _repeat_until(lambda: len(threads) >= args.threads, create, i, c, creating)
                for i, c in enumerate(connections)
            )
        )
        creation_seconds = time.monotonic() - started
        conversations = [
            (await admin.request("POST", "/v1/conversations", {}))[1]["id"]
            for _ in range(args.concurrency)
        ]

        # 2. >= 500 requests in flight: synchronous responses of 1 s each.
        await admin.request("POST", "/_emulator/config", {"latency": 1.0})

        async def respond(index: int, connection: Connection, meter: Meter) -> None:
            payload = {"model": "m", "conversation": conversations[index], "input": "hi"}
            status, _ = await connection.request("POST", "/v1/responses", payload)
            assert status == 200, status
            meter.tick()

        in_flight = await run_workers(connections, args.seconds, respond)
        _, in_flight_stats = await admin.request("GET", "/_emulator/stats")

        # 3. Throughput over the 10,000 threads.
        await admin.request("POST", "/_emulator/config", {"latency": "0.02-0.05"})
        per_worker = max(1, len(threads) // args.concurrency)
        turns = [0] * args.concurrency
        cpu_before = cpu_seconds(process.pid)

        async def cycle(index: int, connection: Connection, meter: Meter) -> None:
            # Each worker rotates over its own slice of the threads.
            turns[index] += 1
            thread_id = threads[index * per_worker + turns[index] % per_worker]
            status, run = await connection.request(
                "POST",
                f"/v1/threads/{thread_id}/runs",
                {
                    "assistant_id": assistant["id"],
                    "additional_messages": [{"role": "user", "content": "load"}],
                },
            )
            meter.tick()
            if status != 200:
                meter.refused += 1  # that thread's previous run still runs: the lock rule
                return
            await connection.request("GET", f"/v1/threads/{thread_id}/runs/{run['id']}")
            meter.tick()
            await connection.request("GET", f"/v1/threads/{thread_id}/messages?limit=5")
            meter.tick()

        throughput = await run_workers(connections, args.seconds, cycle)
        server_cpu = (cpu_seconds(process.pid) - cpu_before) / args.seconds
        _, final = await admin.request("GET", "/_emulator/stats")
        memory = rss_mb(process.pid)
    finally:
        for connection in connections:
            connection.close()
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    return {
        "threads_held": final["objects"]["threads"],
        "thread_creation_rps": round(args.threads / creation_seconds),
        "in_flight_peak": in_flight_stats["peak_in_flight"],
        "in_flight_median_rps": in_flight.median_rate(),
        "throughput_median_rps": throughput.median_rate(),
        "throughput_refused": throughput.refused,
        "server_cpu_cores": round(server_cpu, 2),
        "peak_active_per_thread": final["peak_active_per_owner"],
        "server_rss_mb": round(memory, 1),
        "requests_total": final["requests_total"],
    }


async def _repeat_until(
    done: Callable[[], bool],
    body: Callable[[int, Connection, Meter], Awaitable[None]],
    index: int,
    connection: Connection,
    meter: Meter,
) -> None:
    while not done():
        await body(index, connection, meter)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description="Load check of the emulator.")
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=8.0, help="per measured phase")
    parser.add_argument(
        "--stacks",
        default="auto/auto",
        help="event loop/HTTP parser of the server, comma-separated to compare in one run "
        "(e.g. asyncio/h11,uvloop/httptools)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for stack in args.stacks.split(","):
        result = asyncio.run(measure(args, stack))
        if args.json:
            print(json.dumps({"stack": stack, **result}))
            continue
        print(f"-- server on {stack} (event loop/HTTP parser)")
        report(result, args)


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Print one stack's figures."""
    print(f"threads held:       {result['threads_held']} (server RSS {result['server_rss_mb']} MB)")
    print(f"thread creation:    {result['thread_creation_rps']} req/s")
    print(
        f"in flight:          peak {result['in_flight_peak']} open requests; "
        f"{result['in_flight_median_rps']:.0f} req/s (median; 1 s synchronous responses)"
    )
    print(
        f"throughput:         {result['throughput_median_rps']:.0f} req/s (median; run create + "
        f"retrieve + list, {args.concurrency} connections; server at "
        f"{result['server_cpu_cores']} cores)"
    )
    print(f"runs refused:       {result['throughput_refused']} (thread still busy, upstream 400)")
    print(f"peak runs/thread:   {result['peak_active_per_thread']}")
    print(f"requests served:    {result['requests_total']}")


if __name__ == "__main__":
    main()
