"""Load: many concurrent runs on one server process, each watched over websockets.

    .venv/bin/python bench/load.py [--runs 50] [--clients 2] [--fanout 5] [--delay 0.5]
                                   [--alone 3] [--profile]

Starts the fake Anthropic API and Daphne (own SQLite file). The flow is a fan-out:
``input -> FANOUT x llm (each waits DELAY s at the fake model, then streams a short
reply) -> merge -> output``. First ONE run alone (median of ALONE repetitions), then RUNS
runs at once; every run is watched by CLIENTS websocket clients that connect as soon as
its POST returns. Wall time: from the first POST until the last client has received its
run's ``run_finished``. Every run, the lone ones too, gets inputs of its own, so the node
cache can serve none of them; the bench refuses a measurement in which any run took less
than the model floor (DELAY: the fan-out's calls run side by side). Targets: the RUNS runs
take at most 1.5x one run alone, POST answers p95 < 100 ms, the server's ping round trip
p95 < 50 ms during the burst, live event latency p95 < 50 ms, all succeed, and every client
got seq 1..N exactly once and in order, N being the database's last seq. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _loopwatch as loopwatch
from bench._live import (
    Api,
    LiveStack,
    PingProbe,
    Watcher,
    check_delivery,
    echo_llm_doc,
    edge,
    flow_doc,
    listen_overflows,
    node,
    pct,
    run_benchmark,
    table,
    verdict,
)

TARGET_RATIO = 1.5
TARGET_POST_P95_MS = 100.0
TARGET_PING_P95_MS = 50.0
TARGET_EVENT_P95_MS = 50.0
REPLY = "a short streamed answer of a dozen words from one branch of the fan out"


def fanout_doc(fanout: int, delay: float) -> dict[str, Any]:
    nodes = [node("q", "input", 0, 300, name="q", default="load")]
    edges = []
    for b in range(fanout):
        prompt = f"#fake:delay={delay}\n#fake:reply={REPLY} ({b})\nBranch {b}: {{{{ q }}}}"
        nodes.append(node(f"b{b}", "llm", 250, 120 * b, prompt=prompt))
        edges.append(edge("q", f"b{b}", "value", "q"))
        edges.append(edge(f"b{b}", "merge", "text", f"b{b}"))
    nodes.append(node("merge", "merge", 500, 300))
    nodes.append(node("out", "output", 750, 300, name="answers"))
    edges.append(edge("merge", "out", "value", "value"))
    return flow_doc("fan-out load", nodes, edges)


# Every run's inputs differ (the node cache keys on them): a prefix of this process, then a
# counter.
_TAG = f"{os.getpid()}-{time.time_ns()}"
_serial = itertools.count(1)


def fresh_inputs() -> dict[str, str]:
    return {"q": f"load {_TAG} #{next(_serial)}"}


class CacheServed(AssertionError):
    """A run finished faster than its model calls can: the measurement is not of runs."""


@dataclass
class Outcome:
    run_id: int = 0
    posted_at: float = 0.0  # time.time() just before the POST
    post_ms: float = 0.0
    watchers: list[Watcher] = field(default_factory=list)
    finished_at: float = 0.0
    error: str = ""


async def one_run(stack: LiveStack, api: Api, flow: int, clients: int) -> Outcome:
    outcome = Outcome()
    outcome.posted_at = time.time()
    started = time.perf_counter()
    try:
        outcome.run_id = await api.start_run(flow, fresh_inputs())
        outcome.post_ms = (time.perf_counter() - started) * 1000
        outcome.watchers = [Watcher(stack, outcome.run_id) for _ in range(clients)]
        await asyncio.gather(*(w.connect() for w in outcome.watchers))
        await asyncio.gather(*(w.wait(90) for w in outcome.watchers))
        outcome.finished_at = max(w.done_at for w in outcome.watchers)
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


async def batch(
    stack: LiveStack, api: Api, flow: int, runs: int, clients: int
) -> tuple[float, list[Outcome]]:
    started = time.time()
    outcomes = await asyncio.gather(*(one_run(stack, api, flow, clients) for _ in range(runs)))
    ends = [o.finished_at for o in outcomes if o.finished_at]
    wall = (max(ends) - started) if len(ends) == runs else float("nan")
    return wall, list(outcomes)


async def verify(
    api: Api, outcomes: list[Outcome]
) -> tuple[list[str], list[float], list[float], int]:
    """Problems, live latencies (ms; events emitted after the client connected), delays of
    every event (ms; arrival minus ts, backlog included) and events delivered to clients."""
    problems: list[str] = []
    latencies: list[float] = []
    delays: list[float] = []
    delivered = 0
    for outcome in outcomes:
        if outcome.error:
            problems.append(f"run {outcome.run_id}: {outcome.error}")
            continue
        run = await api.run(outcome.run_id)
        if run["status"] != "succeeded":
            problems.append(f"run {outcome.run_id} {run['status']}: {run.get('error')}")
        last_seq, gapless = await api.db_last_seq(outcome.run_id)
        if not gapless:
            problems.append(f"run {outcome.run_id}: the database log is not 1..{last_seq}")
        for index, watcher in enumerate(outcome.watchers):
            received = watcher.received()
            delivered += len(received)
            wrong = watcher.error or check_delivery([e for _, e in received], last_seq)
            if wrong:
                problems.append(f"run {outcome.run_id} client {index}: {wrong}")
            for arrived, event in received:
                ms = (arrived - event["ts"]) * 1000
                delays.append(ms)
                if event["ts"] >= watcher.connected_at:
                    latencies.append(ms)
    return problems, latencies, delays, delivered


async def bench(args: argparse.Namespace, stack: LiveStack) -> None:
    api = Api(stack)
    try:
        await _bench(args, stack, api)
    finally:
        await api.close()


async def _bench(args: argparse.Namespace, stack: LiveStack, api: Api) -> None:
    warm_flow = await api.create_flow("warm-up", echo_llm_doc())
    flow = await api.create_flow("fan-out", fanout_doc(args.fanout, args.delay))

    # Warm-up: one echo run (also the probe's quiet run) and one unmeasured fan-out run.
    warm_run = await api.start_run(warm_flow, {"q": "hi"})
    await api.wait_finished(warm_run, 30)
    _, warm = await batch(stack, api, flow, 1, args.clients)
    if warm[0].error:
        raise RuntimeError(f"warm-up run: {warm[0].error}")

    # The lone runs, with the probe pinging: the quiet figures the burst is compared with.
    alone_walls, alone_outcomes = [], []
    quiet_probe = PingProbe(stack, warm_run)
    await quiet_probe.start()
    for _ in range(args.alone):
        wall, outcomes = await batch(stack, api, flow, 1, args.clients)
        alone_walls.append(wall)
        alone_outcomes += outcomes
        await asyncio.sleep(0.2)
    quiet_rtts = await quiet_probe.stop()
    alone = statistics.median(alone_walls)

    probe = PingProbe(stack, warm_run)
    await probe.start()
    if args.loopwatch:
        os.kill(stack.server_pid, signal.SIGUSR1)  # the watch starts afresh with the burst
    overflows = listen_overflows()
    cpu_before = server_cpu_seconds(stack.server_pid)
    loaded, outcomes = await batch(stack, api, flow, args.runs, args.clients)
    for outcome in outcomes:  # runs whose clients failed may still be running
        if outcome.run_id:
            with contextlib.suppress(TimeoutError):
                await api.wait_finished(outcome.run_id, 60)
    server_cpu = server_cpu_seconds(stack.server_pid) - cpu_before
    overflows = listen_overflows() - overflows
    probe_rtts = await probe.stop()
    if args.loopwatch:
        watched = loopwatch.report_path(stack.server_pid)
        watched.unlink(missing_ok=True)
        os.kill(stack.server_pid, signal.SIGUSR2)
        for _ in range(100):
            if watched.exists():
                break
            await asyncio.sleep(0.05)

    alone_problems, alone_latency, alone_delays, _ = await verify(api, alone_outcomes)
    problems, latencies, delays, delivered = await verify(api, outcomes)
    problems = alone_problems + problems
    alone_durations = await durations(api, alone_outcomes)
    loaded_durations = await durations(api, outcomes)

    floor_s = args.delay  # the fan-out's model calls run side by side
    ratio = loaded / alone
    lost_ok = not problems
    posts = [o.post_ms for o in outcomes if o.post_ms]
    alone_posts = [o.post_ms for o in alone_outcomes if o.post_ms]
    print(
        f"load: {args.runs} concurrent runs of input -> {args.fanout} x llm "
        f"({args.delay * 1000:.0f} ms at the fake model) -> merge -> output, "
        f"{args.clients} websocket clients per run, one Daphne process, distinct inputs "
        "for every run (no cache hits), provider cap "
        f"{'the default' if args.provider_cap is None else args.provider_cap or 'none'}"
    )
    print()

    def latency_cells(live: list[float], every: list[float]) -> list[Any]:
        peak = max(live) if live else float("nan")
        return [len(live), pct(live, 50), pct(live, 95), peak, pct(every, 95)]

    rows = [
        [f"1 run alone (median of {args.alone})", 1, alone * 1000, "1.00",
         f"{alone / floor_s:.2f}", *latency_cells(alone_latency, alone_delays)],
        [f"{args.runs} runs at once", args.runs, loaded * 1000, f"{ratio:.2f}",
         f"{loaded / floor_s:.2f}", *latency_cells(latencies, delays)],
    ]  # fmt: skip
    headers = ["scenario", "runs", "wall ms", "x alone", "x floor", "live n", "live p50",
               "live p95", "live max", "all p95"]  # fmt: skip
    print(table(headers, rows))
    print(
        "(latency = event arrival minus its ts, ms. live: events emitted after the client "
        "connected; all: every event, backlog included, i.e. also how late the client got "
        f"connected. Floor: {floor_s * 1000:.0f} ms at the fake model; alone walls: "
        f"{', '.join(f'{w * 1000:.0f}' for w in alone_walls)} ms)"
    )
    print()

    def spread(values: list[float], scale: float = 1.0) -> str:
        if not values:
            return "-"
        return " / ".join(f"{pct(values, q) * scale:.0f}" for q in (50, 95)) + (
            f" / {max(values) * scale:.0f}"
        )

    every_duration = alone_durations + loaded_durations
    detail = [
        ["POST /runs answer, 1 run alone, ms (p50 / p95 / max)", spread(alone_posts)],
        ["POST /runs answer under load, ms (p50 / p95 / max)", spread(posts)],
        ["run duration in the DB alone, ms (p50 / p95 / max)", spread(alone_durations, 1000)],
        ["run duration in the DB under load, ms (p50 / p95 / max)",
         spread(loaded_durations, 1000)],
        ["shortest run in the DB, ms (floor " f"{floor_s * 1000:.0f})",
         f"{min(every_duration) * 1000:.0f}" if every_duration else "-"],
        ["ping RTT, 1 run alone, ms (p50 / p95 / max)", spread(quiet_rtts)],
        ["ping RTT during the load, ms (p50 / p95 / max)", spread(probe_rtts)],
        # The server's own CPU time does not depend on how busy the machine is: the one
        # figure here that compares across sittings.
        ["server CPU seconds for the burst (per run)",
         f"{server_cpu:.2f} ({server_cpu / args.runs * 1000:.0f} ms)"],
        ["events delivered to clients under load", delivered],
        ["TCP connections dropped, listen queue full (host-wide)", overflows],
    ]  # fmt: skip
    print(table(["detail", "value"], detail))
    print()
    post_p95, ping_p95, live_p95 = pct(posts, 95), pct(probe_rtts, 95), pct(latencies, 95)
    checks = [
        [f"{args.runs} runs wall / 1 run alone", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x",
         verdict(ratio <= TARGET_RATIO)],
        ["POST answer p95 under load", f"{post_p95:.0f} ms", f"< {TARGET_POST_P95_MS:.0f} ms",
         verdict(post_p95 < TARGET_POST_P95_MS)],
        ["ping RTT p95 during the load", f"{ping_p95:.0f} ms", f"< {TARGET_PING_P95_MS:.0f} ms",
         verdict(ping_p95 < TARGET_PING_P95_MS)],
        ["live event latency p95 under load", f"{live_p95:.0f} ms",
         f"< {TARGET_EVENT_P95_MS:.0f} ms", verdict(live_p95 < TARGET_EVENT_P95_MS)],
        ["all succeeded, nothing lost (1..N once, in order, N = DB)",
         "ok" if lost_ok else f"{len(problems)} problems",
         f"{args.runs * args.clients} clients", verdict(lost_ok)],
    ]  # fmt: skip
    print(table(["check", "result", "target", "verdict"], checks))
    for problem in problems[:20]:
        print("  !", problem)
    # The floor is the benchmark's own guard, not a target: a run shorter than its model
    # calls was served by a cache (or skipped them), and the ratios above mean nothing.
    too_short = [d for d in every_duration if d < floor_s]
    measured = len(alone_outcomes) + len(outcomes)
    if too_short:
        raise CacheServed(
            f"{len(too_short)} of {measured} runs shorter than the {floor_s * 1000:.0f} ms "
            "model floor: not a measurement"
        )
    print(
        f"floor check: {len(every_duration)} of {measured} measured runs finished, none "
        f"under the {floor_s * 1000:.0f} ms model floor"
    )
    if args.loopwatch:
        print()
        print("the server's event loop during the burst (bench/_loopwatch.py):")
        watched = loopwatch.report_path(stack.server_pid)
        print(loopwatch.summary(watched))
        watched.unlink(missing_ok=True)


def server_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def durations(api: Api, outcomes: list[Outcome]) -> list[float]:
    """Each run's duration (s) as the database records it (started_at to finished_at)."""
    found = []
    for outcome in outcomes:
        run = await api.run(outcome.run_id) if outcome.run_id else {}
        if run.get("started_at") and run.get("finished_at"):
            found.append(_seconds(run["finished_at"]) - _seconds(run["started_at"]))
    return found


def _seconds(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2, help="websocket clients per run")
    parser.add_argument("--fanout", type=int, default=5, help="llm nodes per run")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per model call")
    parser.add_argument("--alone", type=int, default=3, help="repetitions of the lone run")
    parser.add_argument(
        "--model-backlog",
        type=int,
        default=1024,
        help="accept queue of the fake model server (stdlib default 5)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the server")
    parser.add_argument(
        "--provider-cap",
        type=int,
        default=None,
        help="SWITCHYARD_ANTHROPIC_CONCURRENCY for the server (0: none); by default the "
        "app's (16), which alone makes the burst's 250 calls of 0.5 s take >= 7.8 s",
    )
    parser.add_argument(
        "--loopwatch",
        action="store_true",
        help="time every callback of the server's loop; show what held it over 20 ms",
    )
    parser.add_argument(
        "--no-debug",
        action="store_true",
        help="serve with DEBUG off (plain HTTP still: no SSL redirect), as a deployment would",
    )
    args = parser.parse_args()
    env = {}
    if args.no_debug:
        env = {"DEBUG": "0", "SECURE_SSL_REDIRECT": "0", "SECRET_KEY": "bench-only-" * 4}
    if args.provider_cap is not None:
        env["SWITCHYARD_ANTHROPIC_CONCURRENCY"] = str(args.provider_cap)
    options: dict[str, Any] = {}
    if args.loopwatch:
        options["server_script"] = Path(loopwatch.__file__)
    run_benchmark(
        "load", bench, args, args.profile, model_backlog=args.model_backlog, env=env, **options
    )


if __name__ == "__main__":
    main()
