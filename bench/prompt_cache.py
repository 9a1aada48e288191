"""Prompt caching: a map of 20 items sharing a 5,000-token prefix, three ways.

    .venv/bin/python bench/prompt_cache.py [--items 20] [--prefix-tokens 5000]
                                           [--delay 0.3] [--reps 3]

Runs the engine (graphs, no web app) against the fake Messages API (tests/fakes), whose
every call waits ``--delay`` seconds before answering, as a model's time to first token,
and which reports cache writes and reads as the API does (one token a word). The flow
is an ``input`` -> ``map`` (concurrency = items: the fan-out sends every item at once) ->
``output``; each item is one ``llm`` call whose prompt is the same long text followed by
the item. Three settings, the fake's cache emptied before each run:

- off: ``cache_ttl: off``, no cache_control sent: every call pays the whole prompt as input;
- on: ``cache_ttl: 5m`` without warm-then-fan: every item is sent at once, so every call
  misses and writes the prefix (at 1.25x input);
- warm: ``cache_ttl: 5m`` with warm-then-fan (graphs.warm): one call writes, the others
  wait for its first event and read the prefix (at 0.1x input);
- batch: ``cache_ttl: off`` on the batch lane (the map's ``latency: batch``,
  graphs.llm.batch): the 20 calls go in one Message Batch at half price; the run parks,
  and is resumed with the batch's results as the web app's poller does. Cost only: its
  wall time is the batch's (minutes to hours at the API), not the fake's.

Cost: the run's usage by model at Sonnet 4's prices (input $3, output $15, cache writes
$3.75, reads $0.30 per million). Wall time: the median of ``--reps`` runs. Ratios are
against caching off, measured in the same run. The floor it asserts: warm costs less than
on and less than off, and batch less than off. (On costs more than off here: sent all at
once, all 20 calls miss and write, at 1.25x; that is what warm-then-fan is for.) Warm's
wall time is about two delays (the first call's, then everyone else's), the others' one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Sonnet 4's prices per million tokens (webapp/settings.py MODEL_PRICES).
PRICES = {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.30}
MODEL = "claude-sonnet-4-6"
SENTENCE = "Follow the house rules closely. "  # five words, 32 characters


def cost_of(usage: Any, *, batched: bool = False) -> Decimal:
    """Dollars for a graphs.llm.types.Usage at PRICES (as webapp.runs.pricing prices it:
    half of that for calls answered from a Message Batch)."""
    total = (
        Decimal(str(PRICES["input"])) * usage.input_tokens
        + Decimal(str(PRICES["output"])) * usage.output_tokens
        + Decimal(str(PRICES["cache_write"])) * usage.cache_creation_input_tokens
        + Decimal(str(PRICES["cache_read"])) * usage.cache_read_input_tokens
    )
    return total / 1_000_000 * (Decimal("0.5") if batched else 1)


def flow_doc(
    items: int, prefix_words: int, delay: float, ttl: str, latency: str = "stream"
) -> dict[str, Any]:
    prefix = SENTENCE * (prefix_words // 5)
    each = {
        "graph": {"name": "each item"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}},
            {
                "id": "ask",
                "type": "llm",
                "config": {
                    "prompt": prefix + "Item {{ item }}\n#fake:delay=" + f"{delay:g}",
                    "model": MODEL,
                    "cache_ttl": ttl,
                },
            },
            {"id": "result", "type": "output", "config": {"name": "result"}},
        ],
        "edges": [
            {"source": "item", "source_port": "value", "target": "ask", "target_port": "item"},
            {"source": "ask", "source_port": "text", "target": "result", "target_port": "value"},
        ],
    }
    return {
        "graph": {"name": "prompt cache bench"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}},
            {
                "id": "each",
                "type": "map",
                "config": {"flow": each, "concurrency": items, "latency": latency},
            },
            {"id": "out", "type": "output", "config": {"name": "answers"}},
        ],
        "edges": [
            {"source": "q", "source_port": "value", "target": "each", "target_port": "items"},
            {"source": "each", "source_port": "results", "target": "out", "target_port": "value"},
        ],
    }


async def one_run(fake: Any, services: Any, doc: dict, items: int) -> tuple[float, Any]:
    from graphs.compile import compile_flow

    fake.reset()  # an empty cache: each setting starts cold
    flow = compile_flow(doc, services)
    started = time.perf_counter()
    result = await flow.run({"q": [f"item {i}" for i in range(items)]}, None)
    elapsed = time.perf_counter() - started
    if result.status != "succeeded":
        raise SystemExit(f"the run {result.status}: {result.error}")
    return elapsed, result.usage_by_model[MODEL]


async def batch_run(fake: Any, services: Any, doc: dict, items: int) -> Any:
    """A run on the batch lane, resumed with its batch's results until it ends (as the
    web app's poller resumes it); its usage (under ``<model>@batch``)."""
    from graphs.compile import compile_flow
    from graphs.history import EventHistory
    from graphs.llm import batch
    from graphs.schedule import RunOptions

    fake.reset()
    flow = compile_flow(doc, services)
    events: list[dict] = []
    options = RunOptions(history=EventHistory(events))
    inputs = {"q": [f"item {i}" for i in range(items)]}
    result = await flow.run(inputs, events.append, options=options)
    client = services.model_client
    while result.status == "waiting":
        [(node, wait)] = result.state["waiting"].items()
        results = await client.batch_results(wait["batch_id"])
        result = await flow.resume(
            result.state, node, 1, batch.answer(results), {"batch": True}, events.append,
            seq=events[-1]["seq"], options=options,
        )  # fmt: skip
    if result.status != "succeeded":
        raise SystemExit(f"the batch run {result.status}: {result.error}")
    return result.usage_by_model[f"{MODEL}@batch"]


async def measure(args: argparse.Namespace) -> dict[str, tuple[float, Any]]:
    import anthropic

    from graphs.llm.anthropic import AnthropicClient
    from graphs.settings import default_services
    from graphs.warm import WarmGate
    from tests.fakes.anthropic_server import FakeAnthropic

    figures: dict[str, tuple[float, Any]] = {}
    with FakeAnthropic() as fake:
        sdk = anthropic.AsyncAnthropic(api_key="bench", base_url=fake.url)
        base = replace(default_services(), model_client=AnthropicClient(sdk))
        settings = {
            "off": ("off", None),
            "on": ("5m", None),
            "warm": ("5m", "gate"),
        }
        times: dict[str, list[float]] = {name: [] for name in settings}
        usages: dict[str, Any] = {}
        for _ in range(args.reps):
            # Settings alternate, so noise on a shared machine hits all three alike.
            for name, (ttl, gate) in settings.items():
                services = replace(base, warm=WarmGate() if gate else None)
                doc = flow_doc(args.items, args.prefix_tokens, args.delay, ttl)
                elapsed, usage = await one_run(fake, services, doc, args.items)
                times[name].append(elapsed)
                usages[name] = usage
        for name in settings:
            figures[name] = (statistics.median(times[name]), usages[name])
        doc = flow_doc(args.items, args.prefix_tokens, args.delay, "off", "batch")
        figures["batch"] = (float("nan"), await batch_run(fake, base, doc, args.items))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--prefix-tokens", type=int, default=5000)
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("ANTHROPIC_API_KEY", None)

    figures = asyncio.run(measure(args))
    off_time, off_usage = figures["off"]
    off_cost = cost_of(off_usage)
    print(
        f"map of {args.items} items, {args.prefix_tokens:,}-token shared prefix, "
        f"{args.delay:g} s per call, median of {args.reps} runs"
    )
    print(
        f"{'setting':8} {'cost':>10} {'cost/off':>9} {'wall s':>8} {'wall/off':>9} "
        f"{'written':>8} {'read':>8} {'uncached':>9}"
    )
    for name, (elapsed, usage) in figures.items():
        cost = cost_of(usage, batched=name == "batch")
        wall = "—" if name == "batch" else f"{elapsed:.3f}"
        wall_ratio = "—" if name == "batch" else f"{elapsed / off_time:.2f}"
        print(
            f"{name:8} ${float(cost):>9.4f} {float(cost / off_cost):>9.3f} {wall:>8} "
            f"{wall_ratio:>9} {usage.cache_creation_input_tokens:>8,} "
            f"{usage.cache_read_input_tokens:>8,} {usage.input_tokens:>9,}"
        )
    warm, on = cost_of(figures["warm"][1]), cost_of(figures["on"][1])
    batched = cost_of(figures["batch"][1], batched=True)
    floor = warm < on and warm < off_cost and figures["warm"][1].cache_read_input_tokens > 0
    floor = floor and batched < off_cost
    print(
        "floor (warm cost < on cost, warm cost < off cost, batch cost < off cost): "
        f"{'PASS' if floor else 'FAIL'}"
    )
    # Sent all at once, every call misses: caching alone then costs more than none.
    print(f"info: caching on without warm-then-fan costs {float(on / off_cost):.2f}x off")
    assert floor, "warm-then-fan must cost less than caching on and off; batch less than off"


if __name__ == "__main__":
    main()
