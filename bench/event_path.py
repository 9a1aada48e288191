"""Event path: from the executor's event to websocket clients on loopback, on a real server.

    .venv/bin/python bench/event_path.py [--clients 10] [--streams 4] [--words 3000]
                                         [--chain 200] [--profile]

Starts the fake Anthropic API and Daphne (own SQLite file), then runs ONE flow:
``input -> STREAMS x llm (each streams WORDS words, one per SSE delta, 2 ms apart)
-> merge -> CHAIN x template -> output``, watched by CLIENTS websocket clients. For
every event each client records arrival time minus the event's ``ts`` (time.time() when
the executor emitted it; same machine, same clock). Target: p95 < 50 ms, and every
client got seq 1..N exactly once and in order, N being the database's last seq.

Baseline, measured in the same run on the same server: the round trip of the consumer's
ping/pong (a trivial message) on CLIENTS connections at once. ``--profile`` runs Daphne
under cProfile and prints the functions with the most own time. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._live import (
    Api,
    LiveStack,
    PingProbe,
    Watcher,
    check_delivery,
    echo_llm_doc,
    edge,
    flow_doc,
    node,
    pct,
    ping_rtts,
    run_benchmark,
    table,
    verdict,
)

TARGET_P95_MS = 50.0
CHUNK_DELAY_S = 0.002
# Each model call waits this long before streaming, so that every client is connected
# before the first delta (the run's id only exists once it has started).
MODEL_DELAY_S = 1.0
VOCABULARY = [
    "stream",
    "token",
    "event",
    "batch",
    "socket",
    "commit",
    "queue",
    "latency",
    "delta",
    "graph",
    "node",
    "edge",
    "merge",
    "client",
    "server",
    "loop",
    "frame",
    "order",
    "sequence",
    "window",
]


def reply_text(words: int, salt: int) -> str:
    return " ".join(f"{VOCABULARY[(i * 7 + salt) % len(VOCABULARY)]}{i}" for i in range(words))


def stream_doc(streams: int, words: int, chain: int) -> dict[str, Any]:
    nodes = [node("topic", "input", 0, 300, name="topic", default="events")]
    edges = []
    for s in range(streams):
        prompt = (
            f"#fake:delay={MODEL_DELAY_S} #fake:chunk_delay={CHUNK_DELAY_S}\n"
            f"#fake:reply={reply_text(words, s)}\n"
            "Write about {{ topic }}."
        )
        nodes.append(node(f"s{s}", "llm", 250, 150 * s, prompt=prompt, max_tokens=8192))
        edges.append(edge("topic", f"s{s}", "value", "topic"))
        edges.append(edge(f"s{s}", "merge", "text", f"s{s}"))
    nodes.append(node("merge", "merge", 500, 300))
    previous, port = "merge", "value"
    for i in range(chain):
        template = "{{ value | length }}" if i == 0 else "{{ p }}+"
        nodes.append(node(f"t{i:03d}", "template", 750 + 120 * i, 300, template=template))
        edges.append(edge(previous, f"t{i:03d}", port, "value" if i == 0 else "p"))
        previous, port = f"t{i:03d}", "text"
    nodes.append(node("out", "output", 750 + 120 * chain, 300, name="result"))
    edges.append(edge(previous, "out", port, "value"))
    return flow_doc("event path", nodes, edges)


def phase(event: dict[str, Any]) -> str:
    node_id = event.get("node", "")
    if event["type"] == "node_delta":
        return "delta"
    if node_id.startswith("t") and node_id[1:].isdigit():
        return "chain"
    return "other"


async def bench(args: argparse.Namespace, stack: LiveStack) -> bool:
    api = Api(stack)
    try:
        return await _bench(args, stack, api)
    finally:
        await api.close()


async def _bench(args: argparse.Namespace, stack: LiveStack, api: Api) -> bool:
    warm_flow = await api.create_flow("warm-up", echo_llm_doc())
    flow = await api.create_flow("event path", stream_doc(args.streams, args.words, args.chain))

    # Warm-up: imports, the model client, the websocket path, the database.
    warm_run = await api.start_run(warm_flow, {"q": "hi"})
    warm = Watcher(stack, warm_run)
    await warm.connect()
    await warm.wait(30)
    if warm.error:
        raise RuntimeError(f"warm-up run: {warm.error}")

    # Baseline: ping/pong round trips on as many connections as there will be watchers.
    baseline = await ping_rtts(stack, warm_run, clients=args.clients, pings=15, interval=0.1)

    # The measured run. A probe keeps pinging (on the finished warm-up run) meanwhile:
    # its round trips show how responsive the server's loop stays during the run.
    probe = PingProbe(stack, warm_run)
    await probe.start()
    started = time.time()
    run_id = await api.start_run(flow, {"topic": "events"})
    watchers = [Watcher(stack, run_id) for _ in range(args.clients)]
    await asyncio.gather(*(w.connect() for w in watchers))
    await asyncio.gather(*(w.wait(90) for w in watchers))
    wall = time.time() - started
    probe_rtts = await probe.stop()

    run = await api.wait_finished(run_id, 30)
    last_seq, db_gapless = await api.db_last_seq(run_id)

    # Replay: fresh clients on the finished run read the whole log from the database.
    replayers = [Watcher(stack, run_id) for _ in range(args.clients)]
    replay_started = time.time()
    await asyncio.gather(*(w.connect() for w in replayers))
    await asyncio.gather(*(w.wait(60) for w in replayers))
    replay_wall = time.time() - replay_started

    # --- analysis --------------------------------------------------------------------
    problems: list[str] = []
    if run["status"] != "succeeded":
        problems.append(f"run {run_id} {run['status']}: {run.get('error')}")
    if not db_gapless:
        problems.append("the database log is not 1..last_seq")
    latencies: dict[str, list[float]] = {"all": [], "delta": [], "chain": [], "other": []}
    untimed = 0
    rates = []
    arrivals: list[float] = []
    first_delta_ts = None
    for index, watcher in enumerate(watchers):
        received = watcher.received()
        events = [e for _, e in received]
        if watcher.error:
            problems.append(f"client {index}: {watcher.error}")
        wrong = check_delivery(events, last_seq)
        if wrong:
            problems.append(f"client {index}: {wrong}")
        for arrived, event in received:
            if event["type"] == "node_delta" and first_delta_ts is None:
                first_delta_ts = event["ts"]
            if event["ts"] < watcher.connected_at:
                untimed += 1  # emitted before this client existed: came from the backlog
                continue
            ms = (arrived - event["ts"]) * 1000
            latencies["all"].append(ms)
            latencies[phase(event)].append(ms)
        arrivals += [received[0][0], received[-1][0]] if received else []
        if len(received) > 1:
            span = received[-1][0] - received[0][0]
            rates.append(len(received) / span if span > 0 else float("nan"))
    early = sum(1 for w in watchers if first_delta_ts and w.connected_at > first_delta_ts)
    if early:
        problems.append(f"{early} client(s) connected after the first delta")
    replay_rates = []
    replay_events = 0
    for index, watcher in enumerate(replayers):
        events = [e for _, e in watcher.received()]
        wrong = watcher.error or check_delivery(events, last_seq)
        if wrong:
            problems.append(f"replay client {index}: {wrong}")
        replay_events += len(events)
        if watcher.done_at:
            replay_rates.append(len(events) / (watcher.done_at - replay_started))

    p95 = pct(latencies["all"], 95)
    base50, base95 = pct(baseline, 50), pct(baseline, 95)
    lost_ok = not problems

    # --- report ----------------------------------------------------------------------
    print(
        f"event path: 1 run of {len(stream_doc(args.streams, 1, args.chain)['nodes'])} nodes "
        f"({args.streams} llm streams x {args.words} words, {args.chain}-template chain), "
        f"N = {last_seq} events, {args.clients} websocket clients; run wall {wall:.1f} s"
    )
    print(
        f"timed samples = events emitted after the client connected; {untimed} event "
        f"arrivals before that came from the backlog and are only checked for loss"
    )
    print()
    rows: list[list[Any]] = []
    labels = {
        "all": "all events",
        "delta": "  streamed node_delta",
        "chain": f"  {args.chain}-template chain",
        "other": "  other (starts, merge, ends)",
    }
    for key, label in labels.items():
        values = latencies[key]
        rows.append(
            [
                label,
                len(values),
                pct(values, 50),
                pct(values, 95),
                max(values) if values else float("nan"),
                pct(values, 50) / base50,
                pct(values, 95) / base95,
            ]
        )
    rows.append(
        ["baseline: ping RTT, idle", len(baseline), base50, base95, max(baseline), 1.0, 1.0]
    )
    rows.append(
        [
            "ping RTT during the run",
            len(probe_rtts),
            pct(probe_rtts, 50),
            pct(probe_rtts, 95),
            max(probe_rtts) if probe_rtts else float("nan"),
            pct(probe_rtts, 50) / base50,
            pct(probe_rtts, 95) / base95,
        ]
    )
    print(
        table(
            ["latency (ms)", "samples", "p50", "p95", "max", "p50/ping", "p95/ping"],
            rows,
        )
    )
    print()
    live_events = sum(len(w.received()) for w in watchers)
    live_span = (max(arrivals) - min(arrivals)) if arrivals else float("nan")
    total_live_rate = live_events / live_span if live_span else float("nan")
    rate_rows = [
        ["live, per client (median)", statistics.median(rates) if rates else float("nan")],
        ["live, all clients together", total_live_rate],
        [
            "replay from DB, per client (median)",
            statistics.median(replay_rates) if replay_rates else float("nan"),
        ],
        ["replay from DB, all clients together", replay_events / replay_wall],
    ]
    print(table(["delivered events/s", "events/s"], rate_rows))
    print(
        f"(live rate is set by the run's own pace; replay: {args.clients} fresh clients "
        f"read all {last_seq} events in {replay_wall * 1000:.0f} ms)"
    )
    print()
    checks = [
        ["p95 latency, all events", f"{p95:.1f} ms", f"< {TARGET_P95_MS:.0f} ms",
         verdict(p95 < TARGET_P95_MS)],
        ["nothing lost (1..N once, in order, N = DB)", "ok" if lost_ok else "see below",
         f"{args.clients}/{args.clients} clients", verdict(lost_ok)],
    ]  # fmt: skip
    print(table(["check", "result", "target", "verdict"], checks))
    for problem in problems[:20]:
        print("  !", problem)
    return p95 < TARGET_P95_MS and lost_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--streams", type=int, default=4, help="parallel llm nodes")
    parser.add_argument("--words", type=int, default=3000, help="words each llm streams")
    parser.add_argument("--chain", type=int, default=200, help="template nodes after them")
    parser.add_argument("--profile", action="store_true", help="cProfile the server")
    args = parser.parse_args()
    run_benchmark("event path", bench, args, args.profile)


if __name__ == "__main__":
    main()
