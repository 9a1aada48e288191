"""The run API from outside: synchronous runs (``wait``) and the event stream's first event.

    .venv/bin/python bench/run_api.py [--clients 8] [--seconds 10]

Starts Daphne on the embedded default (own SQLite file, in-process driver) and measures,
over loopback with CLIENTS concurrent keep-alive connections:

1. floor: ``GET /api/flows/{id}`` (authenticate, one read, JSON): the server's throughput
   for a trivial authenticated request, measured in the same run;
2. ``POST /api/flows/{id}/runs`` with ``wait`` on a trivial flow (input -> template ->
   output; each request has distinct inputs, so no cache serves it, which is asserted):
   synchronous runs answered 200 with their outputs, per second, and its ratio to (1);
3. start-to-first-event: ``POST .../runs`` (no wait), then ``GET /api/runs/{id}/stream``
   until its first event arrives; p50/p95 against the floor's request latency;
4. webhook-to-first-event: the same from a signed delivery to ``/hooks/<token>``.

Checks: every synchronous answer is a 200 whose output is that request's own greeting, and
every stream's events are 1..N in order ending with run_finished.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._live import Api, LiveStack, edge, flow_doc, node, pct, run_benchmark, table, verdict


def greet_doc() -> dict[str, Any]:
    return flow_doc(
        "greet",
        [
            node("who", "input", 0, 100, name="who"),
            node("say", "template", 250, 100, template="Hello {{ who }}"),
            node("out", "output", 500, 100, name="greeting"),
        ],
        [edge("who", "say", "value", "who"), edge("say", "out", "text", "value")],
    )


async def closed_loop(
    clients: int, seconds: float, request: Any
) -> tuple[list[float], int, list[str]]:
    """`clients` loops calling `request(i)` back to back for `seconds`: latencies (ms),
    completed count, and problems."""
    latencies: list[float] = []
    problems: list[str] = []
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            started = time.perf_counter()
            wrong = await request(i)
            latencies.append((time.perf_counter() - started) * 1000)
            if wrong:
                problems.append(wrong)

    await asyncio.gather(*(loop() for _ in range(clients)))
    return latencies, len(latencies), problems


async def bench(args: argparse.Namespace, stack: LiveStack) -> bool:
    api = Api(stack)
    try:
        return await _bench(args, stack, api)
    finally:
        await api.close()


async def _bench(args: argparse.Namespace, stack: LiveStack, api: Api) -> bool:
    flow = await api.create_flow("greet", greet_doc())
    client = api.client
    # Warm-up: imports, compiled plan, connections.
    for i in range(20):
        await client.post(f"/api/flows/{flow}/runs", json={"inputs": {"who": f"w{i}"}, "wait": 30})

    async def floor_request(i: int) -> str | None:
        answer = await client.get(f"/api/flows/{flow}")
        return None if answer.status_code == 200 else f"GET {answer.status_code}"

    async def sync_run(i: int) -> str | None:
        who = f"caller-{i}"
        answer = await client.post(
            f"/api/flows/{flow}/runs", json={"inputs": {"who": who}, "wait": 30}
        )
        if answer.status_code != 200:
            return f"POST wait: {answer.status_code} {answer.text[:200]}"
        body = answer.json()
        if body["outputs"] != {"greeting": f"Hello {who}"}:
            return f"run {body['id']}: wrong outputs {body['outputs']}"
        return None

    hook = (
        await client.post(
            f"/api/flows/{flow}/webhooks", json={"name": "bench", "per_minute": 10**4}
        )
    ).json()
    hook_path = "/" + hook["url"].split("/", 3)[3]
    first_event: list[float] = []
    hook_first_event: list[float] = []

    async def start_api(i: int) -> int:
        answer = await client.post(f"/api/flows/{flow}/runs", json={"inputs": {"who": f"s{i}"}})
        return answer.json()["id"]

    async def start_hook(i: int) -> int:
        body = json.dumps({"who": f"h{i}"}).encode()
        ts = int(time.time())
        mac = hmac.new(hook["secret"].encode(), f"{ts}.".encode() + body, hashlib.sha256)
        answer = await client.post(
            hook_path,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Switchyard-Timestamp": str(ts),
                "X-Switchyard-Signature": "sha256=" + mac.hexdigest(),
            },
        )
        if answer.status_code != 202:
            raise RuntimeError(f"webhook: {answer.status_code} {answer.text[:200]}")
        return answer.json()["id"]

    async def start_and_stream(
        i: int, start: Any = start_api, firsts: Any = first_event
    ) -> str | None:
        started = time.perf_counter()
        run_id = await start(i)
        seqs: list[int] = []
        last_type = ""
        async with client.stream("GET", f"/api/runs/{run_id}/stream") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("id: "):
                    if not seqs:
                        firsts.append((time.perf_counter() - started) * 1000)
                    seqs.append(int(line[4:]))
                elif line.startswith("event: "):
                    last_type = line[7:]
        if seqs != list(range(1, len(seqs) + 1)) or last_type != "run_finished":
            return f"run {run_id}: stream seqs {seqs[:5]}... ending {last_type!r}"
        return None

    floor_ms, floor_n, floor_problems = await closed_loop(args.clients, args.seconds, floor_request)
    sync_ms, sync_n, sync_problems = await closed_loop(args.clients, args.seconds, sync_run)
    _, stream_n, stream_problems = await closed_loop(
        args.clients, args.seconds / 2, start_and_stream
    )

    async def hook_and_stream(i: int) -> str | None:
        return await start_and_stream(i, start_hook, hook_first_event)

    _, hook_n, hook_problems = await closed_loop(args.clients, args.seconds / 2, hook_and_stream)
    runs = (await client.get("/api/runs", params={"flow": flow, "limit": 1})).json()
    cache_hits = sum(
        r["cache_hits"] or 0
        for r in (await client.get("/api/runs", params={"flow": flow, "limit": 200})).json()[
            "items"
        ]
    )

    floor_rps = floor_n / args.seconds
    sync_rps = sync_n / args.seconds
    print(
        f"run API: {args.clients} concurrent clients, {args.seconds:.0f} s per phase, "
        f"embedded default (SQLite, in-process driver); {runs['count']} runs in all"
    )
    print()
    rows = [
        ["floor: GET /api/flows/{id}", floor_n, floor_rps, pct(floor_ms, 50),
         pct(floor_ms, 95), 1.0],
        ["POST runs with wait (200 + outputs)", sync_n, sync_rps, pct(sync_ms, 50),
         pct(sync_ms, 95), sync_rps / floor_rps],
    ]  # fmt: skip
    print(table(["request", "done", "per s", "p50 ms", "p95 ms", "rate / floor"], rows))
    print()
    rows = [
        ["POST, then stream: first event", len(first_event), pct(first_event, 50),
         pct(first_event, 95), pct(first_event, 50) / pct(floor_ms, 50)],
        ["webhook, then stream: first event", len(hook_first_event), pct(hook_first_event, 50),
         pct(hook_first_event, 95), pct(hook_first_event, 50) / pct(floor_ms, 50)],
    ]  # fmt: skip
    print(table(["latency", "samples", "p50 ms", "p95 ms", "p50 / floor p50"], rows))
    problems = floor_problems + sync_problems + stream_problems + hook_problems
    no_cache = cache_hits == 0
    checks = [
        ["every answer right (outputs, streams 1..N)",
         "ok" if not problems else f"{len(problems)} wrong", verdict(not problems)],
        ["no run served from the cache", f"{cache_hits} hits", verdict(no_cache)],
        ["streams completed (API, webhook)", f"{stream_n}, {hook_n}",
         verdict(stream_n > 0 and hook_n > 0)],
    ]  # fmt: skip
    print()
    print(table(["check", "result", "verdict"], checks))
    for problem in problems[:10]:
        print("  !", problem)
    ok = not problems and no_cache and stream_n > 0 and hook_n > 0
    print(f"result: {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    run_benchmark("run_api", bench, args, args.profile)


if __name__ == "__main__":
    main()
