"""Switchyard's executor against LangGraph on five workloads, in one process and one run.

    .venv/bin/python bench/engine_vs_langgraph.py [--reps N] [--profile WORKLOAD]

Each figure is the median of ``--reps`` timed repetitions (default 5) taken after
one untimed warm-up; Switchyard and LangGraph repetitions alternate so that
noise on a shared machine hits both alike. Every flow or graph is compiled once
per workload and only runs are timed. See bench/README.md for what each row means.

``--profile WORKLOAD`` skips the comparison and runs only Switchyard's side of
one workload under cProfile, printing the functions with the most own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import itertools
import operator
import platform
import pstats
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from pydantic import Field

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphs import CompiledFlow, compile_flow
from graphs.llm.offline import OfflineClient
from graphs.nodes import NODE_TYPES
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services
from graphs.settings import DEFAULT_MODEL
from graphs.tools import BUILTIN_TOOLS

# Cap on nodes running at once, the same in both engines: above every workload's width.
MAX_CONCURRENCY = 1000
RECURSION_LIMIT = 10_000

CHAIN_NODES = 1000
FANOUT_NODES = 100
FANOUT_SLEEP_S = 0.05
ROUTER_CALLS = 1000
LOOP_ITERATIONS = 200
DAG_LAYERS = 20
DAG_WIDTH = 50
DAG_SLEEP_S = 0.001
DAG_FAN_IN = 3

ROUTE_PATTERN = r"(?i)\b(code|bug|error|traceback|python)\b"
ROUTER_TEXTS = ("Why does this python code raise an error?", "Where are the install docs?")


# Switchyard: bench-only node types ----------------------------------------------------


class NoopNode(NodeType):
    name = "noop"
    description = "Bench only: emits its `value` unchanged."

    def input_ports(self, config: CommonConfig) -> frozenset[str]:
        return frozenset({"value"})

    def output_ports(self, config: CommonConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: CommonConfig, inputs: dict) -> dict:
        return {"value": inputs["value"]}


class SleepConfig(CommonConfig):
    ms: float = Field(ge=0, le=60_000)


class SleepNode(NodeType):
    name = "sleep"
    description = "Bench only: waits for all its connected ports, sleeps `ms`, emits `value` 1."
    Config = SleepConfig

    def input_ports(self, config: SleepConfig) -> None:
        return None  # any port name, like merge: a fan-in waits for every live port

    def output_ports(self, config: SleepConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: SleepConfig, inputs: dict) -> dict:
        await asyncio.sleep(config.ms / 1000)
        return {"value": 1}


class IncrNode(NodeType):
    name = "incr"
    description = "Bench only: emits its `value` plus one."

    def input_ports(self, config: CommonConfig) -> frozenset[str]:
        return frozenset({"value"})

    def output_ports(self, config: CommonConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: CommonConfig, inputs: dict) -> dict:
        return {"value": inputs["value"] + 1}


def bench_services() -> Services:
    """``graphs.settings.default_services()`` plus the bench node types and a higher cap."""
    return Services(
        model_client=OfflineClient(),
        default_model=DEFAULT_MODEL,
        tools=dict(BUILTIN_TOOLS),
        registry={**NODE_TYPES, "noop": NoopNode(), "sleep": SleepNode(), "incr": IncrNode()},
        max_concurrency=MAX_CONCURRENCY,
    )


def node(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "config": config}


def edge(source: str, target: str, source_port: str, target_port: str) -> dict[str, str]:
    return {
        "source": source,
        "target": target,
        "source_port": source_port,
        "target_port": target_port,
    }


def doc(name: str, nodes: list[dict], edges: list[dict]) -> dict[str, Any]:
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": name},
        "nodes": nodes,
        "edges": edges,
    }


def chain_doc() -> dict[str, Any]:
    ids = [f"n{i}" for i in range(CHAIN_NODES)]
    nodes = [node("in", "input", name="value"), *(node(i, "noop") for i in ids)]
    nodes.append(node("out", "output", name="value"))
    path = ["in", *ids, "out"]
    edges = [edge(a, b, "value", "value") for a, b in itertools.pairwise(path)]
    return doc("chain", nodes, edges)


def fanout_doc() -> dict[str, Any]:
    ids = [f"s{i}" for i in range(FANOUT_NODES)]
    nodes = [node("in", "input", name="value")]
    nodes += [node(i, "sleep", ms=FANOUT_SLEEP_S * 1000) for i in ids]
    nodes += [node("join", "merge"), node("out", "output", name="value")]
    edges = [edge("in", i, "value", "value") for i in ids]
    edges += [edge(i, "join", "value", i) for i in ids]
    edges.append(edge("join", "out", "value", "value"))
    return doc("fanout", nodes, edges)


def router_doc() -> dict[str, Any]:
    nodes = [
        node("in", "input", name="text"),
        node(
            "route",
            "router",
            mode="match",
            routes=["code", "docs"],
            rules=[{"route": "code", "pattern": ROUTE_PATTERN}],
            default="docs",
        ),
        node("code", "noop"),
        node("docs", "noop"),
        node("out", "output", name="answer"),
    ]
    edges = [
        edge("in", "route", "value", "input"),
        edge("route", "code", "code", "value"),
        edge("route", "docs", "docs", "value"),
        edge("code", "out", "value", "value"),
        edge("docs", "out", "value", "value"),
    ]
    return doc("router", nodes, edges)


def loop_doc() -> dict[str, Any]:
    nodes = [
        node("in", "input", name="count"),
        node("incr", "incr", max_iterations=LOOP_ITERATIONS + 50),
        node(
            "check",
            "router",
            mode="match",
            routes=["done", "again"],
            rules=[{"route": "done", "pattern": rf"^{LOOP_ITERATIONS}$"}],
            default="again",
        ),
        node("out", "output", name="count"),
    ]
    edges = [
        edge("in", "incr", "value", "value"),
        edge("incr", "check", "value", "input"),
        edge("check", "incr", "again", "value"),
        edge("check", "out", "done", "value"),
    ]
    return doc("loop", nodes, edges)


def dag_id(layer: int, index: int) -> str:
    return f"d{layer}_{index}"


def dag_parents(layer: int, index: int) -> list[str]:
    return [dag_id(layer - 1, (index + j) % DAG_WIDTH) for j in range(DAG_FAN_IN)]


def dag_doc() -> dict[str, Any]:
    nodes = [node("in", "input", name="value")]
    edges = []
    for layer in range(DAG_LAYERS):
        for i in range(DAG_WIDTH):
            nodes.append(node(dag_id(layer, i), "sleep", ms=DAG_SLEEP_S * 1000))
            if layer == 0:
                edges.append(edge("in", dag_id(0, i), "value", "value"))
            else:
                edges += [
                    edge(p, dag_id(layer, i), "value", f"p{j}")
                    for j, p in enumerate(dag_parents(layer, i))
                ]
    nodes += [node("join", "merge"), node("out", "output", name="value")]
    last = [dag_id(DAG_LAYERS - 1, i) for i in range(DAG_WIDTH)]
    edges += [edge(n, "join", "value", n) for n in last]
    edges.append(edge("join", "out", "value", "value"))
    return doc("dag", nodes, edges)


async def sy_run(flow: CompiledFlow, inputs: dict[str, Any]) -> dict[str, Any]:
    events: list[dict] = []  # a real sink: every event is built and handed over
    result = await flow.run(inputs, events.append)
    if result.status != "succeeded":
        raise RuntimeError(f"Switchyard run {result.status}: {result.error}")
    return result.outputs


# LangGraph: the same topologies ---------------------------------------------------------


def lg_config() -> dict[str, Any]:
    return {"recursion_limit": RECURSION_LIMIT, "max_concurrency": MAX_CONCURRENCY}


class ValueState(TypedDict):
    value: Any


class CountState(TypedDict):
    value: Any
    done: Annotated[int, operator.add]


class TextState(TypedDict):
    text: str
    answer: str


async def lg_noop(state: ValueState) -> dict[str, Any]:
    return {"value": state["value"]}


def lg_sleeper(seconds: float) -> Callable[[CountState], Awaitable[dict[str, Any]]]:
    async def sleeper(state: CountState) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"done": 1}

    return sleeper


def lg_chain():
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(ValueState)
    ids = [f"n{i}" for i in range(CHAIN_NODES)]
    for i in ids:
        builder.add_node(i, lg_noop)
    for a, b in zip([START, *ids], [*ids, END], strict=True):
        builder.add_edge(a, b)
    return builder.compile()


async def lg_join(state: CountState) -> dict[str, Any]:
    return {"value": state["done"]}


def lg_fanout():
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(CountState)
    ids = [f"s{i}" for i in range(FANOUT_NODES)]
    for i in ids:
        builder.add_node(i, lg_sleeper(FANOUT_SLEEP_S))
        builder.add_edge(START, i)
    builder.add_node("join", lg_join)
    builder.add_edge(ids, "join")
    builder.add_edge("join", END)
    return builder.compile()


_ROUTE = re.compile(ROUTE_PATTERN)


def lg_route(state: TextState) -> str:
    return "code" if _ROUTE.search(state["text"]) else "docs"


async def lg_answer(state: TextState) -> dict[str, Any]:
    return {"answer": state["text"]}


def lg_router():
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(TextState)
    builder.add_node("code", lg_answer)
    builder.add_node("docs", lg_answer)
    builder.add_conditional_edges(START, lg_route, {"code": "code", "docs": "docs"})
    builder.add_edge("code", END)
    builder.add_edge("docs", END)
    return builder.compile()


async def lg_incr(state: ValueState) -> dict[str, Any]:
    return {"value": state["value"] + 1}


def lg_loop():
    from langgraph.graph import END, START, StateGraph

    def again(state: ValueState) -> str:
        return END if state["value"] >= LOOP_ITERATIONS else "incr"

    builder = StateGraph(ValueState)
    builder.add_node("incr", lg_incr)
    builder.add_edge(START, "incr")
    builder.add_conditional_edges("incr", again, {END: END, "incr": "incr"})
    return builder.compile()


def lg_dag():
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(CountState)
    for layer in range(DAG_LAYERS):
        for i in range(DAG_WIDTH):
            builder.add_node(dag_id(layer, i), lg_sleeper(DAG_SLEEP_S))
            if layer == 0:
                builder.add_edge(START, dag_id(0, i))
            else:
                builder.add_edge(dag_parents(layer, i), dag_id(layer, i))
    builder.add_node("join", lg_join)
    builder.add_edge([dag_id(DAG_LAYERS - 1, i) for i in range(DAG_WIDTH)], "join")
    builder.add_edge("join", END)
    return builder.compile()


# Measuring -------------------------------------------------------------------------------


@dataclass
class Workload:
    key: str
    label: str
    unit: str  # "us" (per node / per call) or "ms" (wall time)
    divisor: int  # a repetition's wall time is divided by this
    sy: Callable[[], Awaitable[Any]]
    lg: Callable[[], Awaitable[Any]]
    floor_s: float | None = None
    target: str = ""
    passes: Callable[[float, float], bool] | None = None  # (sy, lg) per-unit seconds


@dataclass
class Outcome:
    sy: float | None = None
    lg: float | None = None
    error: str | None = None
    sy_spread: tuple[float, float] = (0.0, 0.0)
    lg_spread: tuple[float, float] = (0.0, 0.0)


def expect(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise RuntimeError(f"{what}: expected {want!r}, got {got!r}")


def build_workloads() -> list[Workload]:
    services = bench_services()
    config = lg_config()

    chain_sy, chain_lg = compile_flow(chain_doc(), services), lg_chain()

    async def chain_sy_run() -> None:
        expect(await sy_run(chain_sy, {"value": 7}), {"value": 7}, "chain (Switchyard)")

    async def chain_lg_run() -> None:
        expect(await chain_lg.ainvoke({"value": 7}, config), {"value": 7}, "chain (LangGraph)")

    fan_sy, fan_lg = compile_flow(fanout_doc(), services), lg_fanout()

    async def fan_sy_run() -> None:
        out = await sy_run(fan_sy, {"value": 0})
        expect(len(out["value"]), FANOUT_NODES, "fan-out (Switchyard) joined")

    async def fan_lg_run() -> None:
        out = await fan_lg.ainvoke({"value": 0, "done": 0}, config)
        expect(out["value"], FANOUT_NODES, "fan-out (LangGraph) joined")

    router_sy, router_lg = compile_flow(router_doc(), services), lg_router()

    async def router_sy_run() -> None:
        for i in range(ROUTER_CALLS):
            text = ROUTER_TEXTS[i % 2]
            out = await sy_run(router_sy, {"text": text})
            if out["answer"] is not text:
                expect(out, {"answer": text}, "router (Switchyard)")

    async def router_lg_run() -> None:
        for i in range(ROUTER_CALLS):
            text = ROUTER_TEXTS[i % 2]
            out = await router_lg.ainvoke({"text": text}, config)
            if out["answer"] is not text:
                expect(out, {"text": text, "answer": text}, "router (LangGraph)")

    loop_sy, loop_lg = compile_flow(loop_doc(), services), lg_loop()

    async def loop_sy_run() -> None:
        out = await sy_run(loop_sy, {"count": 0})
        expect(out, {"count": LOOP_ITERATIONS}, "loop (Switchyard)")

    async def loop_lg_run() -> None:
        out = await loop_lg.ainvoke({"value": 0}, config)
        expect(out, {"value": LOOP_ITERATIONS}, "loop (LangGraph)")

    dag_sy, dag_lg = compile_flow(dag_doc(), services), lg_dag()

    async def dag_sy_run() -> None:
        out = await sy_run(dag_sy, {"value": 0})
        expect(len(out["value"]), DAG_WIDTH, "DAG (Switchyard) joined")

    async def dag_lg_run() -> None:
        out = await dag_lg.ainvoke({"value": 0, "done": 0}, config)
        expect(out["value"], DAG_LAYERS * DAG_WIDTH, "DAG (LangGraph) node count")

    return [
        Workload(
            "chain",
            f"1 chain {CHAIN_NODES}, per node",
            "us",
            CHAIN_NODES,
            chain_sy_run,
            chain_lg_run,
            target="SY <= LG/10",
            passes=lambda sy, lg: sy * 10 <= lg,
        ),
        Workload(
            "fanout",
            f"2 fan-out {FANOUT_NODES}x{FANOUT_SLEEP_S * 1000:g}ms+join",
            "ms",
            1,
            fan_sy_run,
            fan_lg_run,
            floor_s=FANOUT_SLEEP_S,
            target="SY <= 1.2x floor",
            passes=lambda sy, lg: sy <= 1.2 * FANOUT_SLEEP_S,
        ),
        Workload(
            "router",
            f"3 router, per call (x{ROUTER_CALLS})",
            "us",
            ROUTER_CALLS,
            router_sy_run,
            router_lg_run,
        ),
        Workload(
            "loop",
            f"4 loop {LOOP_ITERATIONS} iterations",
            "ms",
            1,
            loop_sy_run,
            loop_lg_run,
        ),
        Workload(
            "dag",
            f"5 DAG {DAG_LAYERS}x{DAG_WIDTH}x{DAG_SLEEP_S * 1000:g}ms",
            "ms",
            1,
            dag_sy_run,
            dag_lg_run,
            floor_s=DAG_LAYERS * DAG_SLEEP_S,
        ),
    ]


async def timed(run: Callable[[], Awaitable[Any]]) -> float:
    gc.collect()
    began = time.perf_counter()
    await run()
    return time.perf_counter() - began


async def measure(workload: Workload, reps: int) -> Outcome:
    try:
        await workload.sy()  # warm-up, and a check that both give the right answer
        await workload.lg()
        sy_times, lg_times = [], []
        for _ in range(reps):  # alternate, so noise on a shared machine hits both alike
            sy_times.append(await timed(workload.sy) / workload.divisor)
            lg_times.append(await timed(workload.lg) / workload.divisor)
    except Exception as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    return Outcome(
        sy=statistics.median(sy_times),
        lg=statistics.median(lg_times),
        sy_spread=(min(sy_times), max(sy_times)),
        lg_spread=(min(lg_times), max(lg_times)),
    )


def fmt(seconds: float | None, unit: str) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if unit == "us" else f"{seconds * 1e3:.2f} ms"


def verdict(w: Workload, o: Outcome) -> str:
    if o.error:
        return "ERROR"
    if w.passes is None or o.sy is None or o.lg is None:
        return "info"
    return "PASS" if w.passes(o.sy, o.lg) else "FAIL"


def report(rows: list[tuple[Workload, Outcome]], reps: int, total_s: float) -> None:
    header = (
        "workload",
        "Switchyard",
        "LangGraph",
        "LG/SY",
        "floor",
        "SY/floor",
        "LG/floor",
        "target",
        "result",
    )
    table = [header]
    for w, o in rows:
        if o.error:
            table.append(
                (w.label, "-", "-", "-", fmt(w.floor_s, w.unit), "-", "-", w.target or "-", "ERROR")
            )
            continue
        assert o.sy is not None and o.lg is not None
        result = verdict(w, o)
        floor = w.floor_s
        table.append(
            (
                w.label,
                fmt(o.sy, w.unit),
                fmt(o.lg, w.unit),
                f"{o.lg / o.sy:.1f}x",
                fmt(floor, w.unit),
                f"{o.sy / floor:.2f}x" if floor else "-",
                f"{o.lg / floor:.2f}x" if floor else "-",
                w.target or "-",
                result,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {1, 2, 3, 4, 5, 6}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    print(line(table[0]))
    print("  ".join("-" * w for w in widths))
    for row in table[1:]:
        print(line(row))
    print()
    print("spread (min..max over the timed repetitions):")
    for w, o in rows:
        if o.error:
            print(f"  {w.label}: ERROR {o.error}")
        else:
            sy = f"{fmt(o.sy_spread[0], w.unit)}..{fmt(o.sy_spread[1], w.unit)}"
            lg = f"{fmt(o.lg_spread[0], w.unit)}..{fmt(o.lg_spread[1], w.unit)}"
            print(f"  {w.label}: Switchyard {sy}; LangGraph {lg}")
    verdicts = [verdict(w, o) for w, o in rows if w.passes is not None]
    print()
    print(
        f"targets: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL"
        + (f", {verdicts.count('ERROR')} ERROR" if "ERROR" in verdicts else "")
        + f" (of {len(verdicts)}); total {total_s:.1f} s"
    )


async def compare(reps: int) -> None:
    import langgraph.version

    print(
        f"Switchyard executor vs LangGraph {langgraph.version.__version__}"
        f" | Python {platform.python_version()} | median of {reps} reps after 1 warm-up"
        f" | max_concurrency={MAX_CONCURRENCY} in both"
        f" (Services.max_concurrency; LangGraph config max_concurrency)"
        f", LangGraph recursion_limit={RECURSION_LIMIT}"
        f" | Switchyard sink: list.append"
    )
    print()
    began = time.perf_counter()
    workloads = build_workloads()
    rows = []
    for workload in workloads:
        rows.append((workload, await measure(workload, reps)))
    report(rows, reps, time.perf_counter() - began)


async def profile(key: str, reps: int) -> None:
    workload = next(w for w in build_workloads() if w.key == key)
    await workload.sy()
    # The LangGraph graphs built alongside make a large heap: freeze it, so that a rare
    # full collection does not land on some unlucky executor function in the profile.
    gc.collect()
    gc.freeze()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        await workload.sy()
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per figure")
    parser.add_argument(
        "--profile",
        choices=["chain", "fanout", "router", "loop", "dag"],
        help="profile Switchyard's side of one workload instead of comparing",
    )
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args.profile, args.reps))
    else:
        asyncio.run(compare(args.reps))


if __name__ == "__main__":
    main()
