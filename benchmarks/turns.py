"""What a turn costs through the pool, against the naive way, on the emulator over HTTP.

For each API the same number of turns runs one after another on one key, and the emulator's
own counters say how many requests each turn took:

- pool, Assistants: ``runs.create(stream=True)`` with ``additional_messages``: 1 request, the
  run's events bring its end and its reply;
- pool, Assistants polled: the same against a server that refuses ``stream`` (the emulator's
  ``run_streaming="refused"``): 1 start request + polls at the server's
  ``openai-poll-after-ms`` hint + one read of the reply;
- naive, Assistants: ``messages.create`` + ``runs.create_and_poll`` (2 start requests + polls)
  + one read of the reply;
- pool, Conversations: one synchronous ``responses.create`` per turn (the reply comes with it);
- naive, Conversations: ``conversations.items.create`` + ``responses.create`` (2 requests).

Latency: every emulated run takes exactly ``--latency`` seconds, so a turn's wall time minus
that is what the client side adds (HTTP, polling granularity, and for the pool its Redis lease:
acquire, fence check, release). Medians over the turns; one run, printed.

    .venv/bin/python benchmarks/turns.py [--turns 40] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
import warnings
from collections.abc import Callable

import openai
import redis

from thread_pool import ThreadPool, build_backend
from thread_pool.emulator import EmulatorServer, start_emulator

# The naive Assistants calls below are made from this file; their deprecation warning is noise.
warnings.filterwarnings("ignore", category=DeprecationWarning)

START = (
    "POST /v1/threads/{thread_id}/runs",
    "POST /v1/threads/{thread_id}/messages",
    "POST /v1/responses",
    "POST /v1/conversations/{conversation_id}/items",
)
POLL = ("GET /v1/threads/{thread_id}/runs/{run_id}", "GET /v1/responses/{response_id}")
READ = ("GET /v1/threads/{thread_id}/messages",)


def counts(server: EmulatorServer) -> dict[str, int]:
    """Requests per endpoint so far."""
    return {k: int(v) for k, v in server.admin.stats()["requests"].items()}


def measure(
    server: EmulatorServer, turns: int, one_turn: Callable[[int], object]
) -> tuple[dict[str, float], list[float]]:
    """Run ``turns`` turns; requests per turn by kind, and each turn's wall time."""
    one_turn(-1)  # warm up (creates the thread, opens connections); not counted
    before = counts(server)
    times = []
    for i in range(turns):
        started = time.perf_counter()
        one_turn(i)
        times.append(time.perf_counter() - started)
    after = counts(server)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    kinds = {
        "start": sum(delta.get(k, 0) for k in START),
        "polls": sum(delta.get(k, 0) for k in POLL),
        "read": sum(delta.get(k, 0) for k in READ),
    }
    kinds["total"] = sum(delta.values())
    return {k: v / turns for k, v in kinds.items()}, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    prefix = f"bench-turns-{uuid.uuid4().hex[:8]}"
    server = start_emulator(latency=str(args.latency), seed=1)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    rows: list[tuple[str, dict[str, float], list[float]]] = []
    try:
        assistant = client.beta.assistants.create(model="emulated").id
        with ThreadPool(
            backend=build_backend("assistants", client, assistant_id=assistant), key_prefix=prefix
        ) as pool:
            rows.append(
                (
                    "pool, Assistants",
                    *measure(server, args.turns, lambda i: pool.run("bench-a", f"turn {i}")),
                )
            )
        server.admin.configure(run_streaming="refused")
        with ThreadPool(
            backend=build_backend("assistants", client, assistant_id=assistant), key_prefix=prefix
        ) as pool:
            rows.append(
                (
                    "pool, Assistants polled",
                    *measure(server, args.turns, lambda i: pool.run("bench-p", f"turn {i}")),
                )
            )
        server.admin.configure(run_streaming="on")
        thread = client.beta.threads.create().id

        def naive_assistants(i: int) -> None:
            client.beta.threads.messages.create(thread, role="user", content=f"turn {i}")
            run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
            client.beta.threads.messages.list(thread, run_id=run.id)

        rows.append(("naive, Assistants", *measure(server, args.turns, naive_assistants)))
        with ThreadPool(
            backend=build_backend("conversations", client, model="emulated"), key_prefix=prefix
        ) as pool:
            rows.append(
                (
                    "pool, Conversations",
                    *measure(server, args.turns, lambda i: pool.run("bench-c", f"turn {i}")),
                )
            )
        conv = client.conversations.create().id

        def naive_conversations(i: int) -> None:
            client.conversations.items.create(
                conv, items=[{"type": "message", "role": "user", "content": f"turn {i}"}]
            )
            client.responses.create(model="emulated", conversation=conv, input=[])

        rows.append(("naive, Conversations", *measure(server, args.turns, naive_conversations)))
        lock_errors = server.admin.stats()["lock_errors"]["total"]
    finally:
        client.close()
        server.stop()
        r = redis.Redis()
        stale = list(r.scan_iter(match=f"{prefix}:*"))
        if stale:
            r.delete(*stale)
        r.close()

    print(
        f"{args.turns} turns each, one after another; every emulated run takes "
        f"{args.latency * 1000:.0f} ms; poll hint {max(5, round(args.latency * 250))} ms\n"
    )
    print(
        f"{'':25}{'requests/turn':>14}{'start':>7}{'polls':>7}{'read':>6}"
        f"{'median turn':>13}{'added':>9}"
    )
    added: dict[str, float] = {}
    for name, per_turn, times in rows:
        median = statistics.median(times)
        added[name] = median - args.latency
        print(
            f"{name:25}{per_turn['total']:>14.2f}{per_turn['start']:>7.2f}"
            f"{per_turn['polls']:>7.2f}{per_turn['read']:>6.2f}"
            f"{median * 1000:>10.1f} ms{added[name] * 1000:>6.1f} ms"
        )
    by = {name: per_turn for name, per_turn, _ in rows}
    for api in ("Assistants", "Conversations"):
        ours, naive = by[f"pool, {api}"], by[f"naive, {api}"]
        print(
            f"\n{api}: the pool needs {ours['total'] / naive['total']:.2f}x the naive requests "
            f"per turn ({ours['start']:.0f} start request instead of {naive['start']:.0f}); "
            f"added latency {added[f'pool, {api}'] * 1000:.1f} ms vs "
            f"{added[f'naive, {api}'] * 1000:.1f} ms naive"
        )
    print(f"\nemulator lock errors: {lock_errors}")


if __name__ == "__main__":
    main()
