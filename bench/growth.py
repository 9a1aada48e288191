"""How the engine's cost grows with the work: small tables, each against its own floor.

    .venv/bin/python bench/growth.py             # chains, maps, runs at once (~1 min idle)
    .venv/bin/python bench/growth.py --reps 5    # steadier medians

1. **Chains** of 100, 1,000 and 10,000 nodes in all (``input`` -> ``noop`` ... -> ``output``):
   compile time and run time per node. Flat means the 10,000-node chain's per-node run
   time is within 2x of the 100-node chain's (the ``x 100`` column); anything quadratic
   in the schedule shows there first.
2. **Maps** of 10, 100 and 1,000 items, each item through an inline flow that sleeps
   20 ms, 100 items at once (``concurrency: 100``): wall time against the floor the sleeps
   set (``ceil(items / 100) x 20 ms``).
3. **Runs at once**: 10, 100 and 1,000 runs started together, each waiting inside one
   node (a sleep of a minute, cancelled once all are waiting): Python memory per waiting
   run (tracemalloc, so only this process's allocations count) and the time to start
   them all, per run. Flat means the 1,000-run figure is within 2x of the 10-run one.

Every run must finish as it should (``succeeded`` with the right output, or ``cancelled``
in table 3), or the script stops: a figure from a broken run means nothing. Medians of
``--reps`` repetitions after one warm-up; ``gc.collect()`` before each, outside the timing.
The history page, run page and replay with 10,000 runs and 1,000,000 events on PostgreSQL
(issue 18, target 5) are bench/growth_pg.py's.

Exits 0 whatever the results: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._live import table  # noqa: E402
from bench.engine_vs_langgraph import bench_services, doc, edge, node  # noqa: E402
from graphs.compile import compile_flow  # noqa: E402

CHAINS = (100, 1_000, 10_000)
MAPS = (10, 100, 1_000)
MAP_SLEEP_MS = 20
MAP_CONCURRENCY = 100
CROWDS = (10, 100, 1_000)


def chain_doc(length: int) -> dict[str, Any]:
    # ``length`` nodes in all (a document holds at most 10,000): input, noops, output.
    ids = ["in", *(f"n{i}" for i in range(length - 2)), "out"]
    nodes = [node("in", "input", name="value"), *(node(i, "noop") for i in ids[1:-1])]
    nodes.append(node("out", "output", name="value"))
    return doc(
        f"chain {length}", nodes, [edge(a, b, "value", "value") for a, b in itertools.pairwise(ids)]
    )


def map_doc() -> dict[str, Any]:
    inner = doc(
        "each",
        [
            node("item", "input", name="item"),
            node("s", "sleep", ms=MAP_SLEEP_MS),
            node("r", "output", name="result"),
        ],
        [edge("item", "s", "value", "value"), edge("s", "r", "value", "value")],
    )
    nodes = [
        node("in", "input", name="items"),
        node("each", "map", flow=inner, concurrency=MAP_CONCURRENCY, item_events=0),
        node("out", "output", name="results"),
    ]
    edges = [edge("in", "each", "value", "items"), edge("each", "out", "results", "value")]
    return doc("map", nodes, edges)


def waiting_doc() -> dict[str, Any]:
    nodes = [node("in", "input", name="value"), node("s", "sleep", ms=60_000)]
    nodes.append(node("out", "output", name="value"))
    return doc(
        "wait", nodes, [edge("in", "s", "value", "value"), edge("s", "out", "value", "value")]
    )


def median_of(reps: int, measure: Any) -> list[float]:
    """Per-column medians of ``reps`` calls of ``measure()`` (a list of numbers), after one."""
    measure()
    rows = []
    for _ in range(reps):
        gc.collect()
        rows.append(measure())
    return [statistics.median(column) for column in zip(*rows, strict=True)]


def chains(reps: int) -> list[list[Any]]:
    services = bench_services()
    rows: list[list[Any]] = []
    base: list[float] = []
    for length in CHAINS:
        document = chain_doc(length)

        def once(document: dict[str, Any] = document, length: int = length) -> list[float]:
            start = time.perf_counter()
            flow = compile_flow(document, services)
            compiled = time.perf_counter()
            result = asyncio.run(flow.run({"value": 7}, lambda event: None))
            ran = time.perf_counter()
            if result.status != "succeeded" or result.outputs != {"value": 7}:
                raise SystemExit(f"chain {length}: {result.status} {result.error}")
            return [(compiled - start) / length * 1e6, (ran - compiled) / length * 1e6]

        compile_us, run_us = median_of(reps, once)
        base = base or [compile_us, run_us]
        rows.append(
            [
                length,
                f"{compile_us:.0f}",
                f"{compile_us / base[0]:.2f}",
                f"{run_us:.0f}",
                f"{run_us / base[1]:.2f}",
            ]
        )
    flat = float(rows[-1][4]) <= 2.0
    rows.append(["flat run?", "", "", "", "PASS" if flat else "FAIL"])
    return rows


def maps(reps: int) -> list[list[Any]]:
    services = bench_services()
    flow = compile_flow(map_doc(), services)
    rows: list[list[Any]] = []
    for items in MAPS:
        values = list(range(items))

        def once(values: list[int] = values) -> list[float]:
            start = time.perf_counter()
            result = asyncio.run(flow.run({"items": values}, lambda event: None))
            wall = time.perf_counter() - start
            if result.status != "succeeded" or len(result.outputs["results"]) != len(values):
                raise SystemExit(f"map of {len(values)}: {result.status} {result.error}")
            return [wall * 1000]

        (wall_ms,) = median_of(reps, once)
        floor_ms = math.ceil(items / MAP_CONCURRENCY) * MAP_SLEEP_MS
        per_item = (wall_ms - floor_ms) / items * 1000
        rows.append(
            [items, f"{floor_ms}", f"{wall_ms:.0f}", f"{wall_ms / floor_ms:.2f}", f"{per_item:.0f}"]
        )
    return rows


async def crowd(flow: Any, count: int) -> tuple[float, float]:
    """Start ``count`` runs, wait until each sleeps in its node; (KiB, ms) per run."""
    waiting = asyncio.Event()
    started = 0

    def sink(event: dict[str, Any]) -> None:
        nonlocal started
        if event.get("type") == "node_started" and event.get("node") == "s":
            started += 1
            if started == count:
                waiting.set()

    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    runs = [flow.start({"value": i}, sink) for i in range(count)]
    await asyncio.wait_for(waiting.wait(), timeout=120)
    elapsed = time.perf_counter() - start
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    for run in runs:
        run.cancel()
    results = [await run.wait() for run in runs]
    if {r.status for r in results} != {"cancelled"}:
        raise SystemExit(f"{count} runs at once: {sorted({r.status for r in results})}")
    return held / count / 1024, elapsed / count * 1000


def crowds(reps: int) -> list[list[Any]]:
    services = bench_services()
    flow = compile_flow(waiting_doc(), services)
    rows: list[list[Any]] = []
    tracemalloc.start()
    try:
        base = None
        for count in CROWDS:
            kib, ms = median_of(reps, lambda count=count: list(asyncio.run(crowd(flow, count))))
            base = base or kib
            rows.append([count, f"{kib:.1f}", f"{kib / base:.2f}", f"{ms:.2f}"])
    finally:
        tracemalloc.stop()
    flat = float(rows[-1][2]) <= 2.0
    rows.append(["flat?", "PASS" if flat else "FAIL", "", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"# growth: median of {args.reps} after a warm-up; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores"
    )
    print("\n1. chains of N nodes: input -> noop ... -> output (us per node)")
    print(table(["nodes", "compile us", "x 100", "run us", "x 100"], chains(args.reps)))
    print(
        f"\n2. maps: each item -> sleep {MAP_SLEEP_MS} ms, {MAP_CONCURRENCY} at once "
        "(floor = the sleeps)"
    )
    print(table(["items", "floor ms", "wall ms", "x floor", "us/item over"], maps(args.reps)))
    print("\n3. runs at once, each waiting in a node (tracemalloc, this process)")
    print(table(["runs", "KiB per run", "x 10", "start ms per run"], crowds(args.reps)))


if __name__ == "__main__":
    main()
