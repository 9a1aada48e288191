"""``map``: runs an inline flow once per item of a list, concurrently, results in item order.

Shared context: every input node of the inline flow besides ``item`` is an input port
of the map of the same name, and each item's run gets that port's value.

>>> config = MapConfig(flow={"nodes": [
...     {"id": "i", "type": "input", "config": {"name": "item"}},
...     {"id": "t", "type": "input", "config": {"name": "task"}},
... ]})
>>> sorted(MapNode().input_ports(config))
['items', 'task']

Item events: the first ``item_events`` items (by index) stream their inner events into
the run's one log as ``node_item`` events of the map's visit (see ``graphs.events``);
the rest show only in the map's ``node_progress``, so 10,000 items cost 10,000 progress
events, not 10,000 times their nodes' events. A map in the inline flow forwards its own
items' ``node_item`` events the same way, nested in its item's (``nested``); so at each
level only the first ``item_events`` items of that level's map stream anything.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from graphs.document import load
from graphs.errors import FlowInvalid, NodeError, NodeWaits
from graphs.events import Event
from graphs.llm import batch
from graphs.nodes.base import CommonConfig, FieldProblem, NodeContext, NodeType, Services

# graphs.validation and graphs.compile are imported where used. They import neither this
# module nor the registry, but graphs.nodes.base, which runs graphs/nodes/__init__.py (the
# registry) and so this module first: imported up here, whichever of them loads first would
# still be half done.

MAX_ITEMS = 10_000
# The map's own port; an inline input of this name could never be told apart from it.
LIST_PORT = "items"
# Inner events forwarded as node_item: enough to draw each item's progress and tokens.
# Inputs and outputs stay out (the map's node_finished holds the results once). An inner
# map's node_item is forwarded whole, nested, so maps in maps show their items too.
_FORWARDED = frozenset(
    {
        "run_started",
        "node_started",
        "node_delta",
        "node_finished",
        "node_failed",
        "node_item",
        "run_finished",
    }
)
# What a forwarded inner node_item keeps: its own item fields, without the inner run's
# numbering, clock and node (the outer event's ``inner`` names that map).
_NOT_NESTED = frozenset({"seq", "ts", "type", "node", "iteration"})

# A new map node's inline flow: its item straight to its result, the smallest that runs.
EACH_ITEM = {
    "directed": True,
    "multigraph": True,
    "graph": {"name": "each item", "description": ""},
    "nodes": [
        {"id": "item", "type": "input", "config": {"name": "item"}, "position": {"x": 0, "y": 100}},
        {
            "id": "result",
            "type": "output",
            "config": {"name": "result"},
            "position": {"x": 300, "y": 100},
        },
    ],
    "edges": [
        {"source": "item", "target": "result", "source_port": "value", "target_port": "value"}
    ],
}


class MapConfig(CommonConfig):
    flow: dict[str, Any] = Field(
        description=(
            "The inline flow run per item: a flow document with an input named item. Its "
            "other inputs become ports of this map, and every item gets their values."
        ),
        json_schema_extra={"rows": 10},
    )
    concurrency: int = Field(default=4, ge=1, le=100, description="Items processed at once.")
    item_events: int = Field(
        default=20,
        ge=0,
        le=MAX_ITEMS,
        description=(
            "How many items (the first ones) stream their nodes' progress and text to the "
            "run's log; the others show only in the map's count. 0 streams none."
        ),
    )

    latency: Literal["stream", "batch"] = Field(
        default="stream",
        description=(
            "stream: items' model calls are sent at once and stream their replies. batch: "
            "they go to the Message Batches API at half the price, and the run waits for "
            "the batch (usually minutes, at most 24 hours) holding no worker; a call whose "
            "batch item fails or expires is streamed instead."
        ),
    )


class MapNode(NodeType):
    name = "map"
    label = "Map"
    description = "Runs an inline flow once per item of `items`; emits `results` in item order."
    category = "container"
    Config = MapConfig
    default_config = {"flow": EACH_ITEM}
    holds_slot = False

    def input_ports(self, config: MapConfig) -> frozenset[str]:
        return frozenset({LIST_PORT}) | (inline_inputs(config.flow) - {"item", LIST_PORT})

    def output_ports(self, config: MapConfig) -> frozenset[str]:
        return frozenset({"results"})

    def problems(self, config: MapConfig, services: Services | None) -> list[FieldProblem]:
        from graphs.validation import validate

        try:
            graph = load(config.flow)
        except FlowInvalid as exc:
            return [FieldProblem("flow", f"inline flow: {p}") for p in exc.problems]
        found = []
        # Without services there is no registry to check the inline flow's nodes against
        # (as an agent's tools go unchecked); its shape is checked all the same.
        if services is not None:
            found += [f"inline flow: {p}" for p in validate(graph, services)]
        inputs = {d["config"].get("name") for _, d in graph.nodes(data=True) if _is(d, "input")}
        if "item" not in inputs:
            found.append("inline flow needs an input node named 'item'")
        if LIST_PORT in inputs:
            found.append(
                f"inline flow input {LIST_PORT!r} clashes with the map's list port: rename it "
                "(each item arrives as 'item'; other inputs come from the map's ports)"
            )
        if not any(_is(d, "output") for _, d in graph.nodes(data=True)):
            found.append("inline flow needs at least one output node")
        return [FieldProblem("flow", message) for message in found]

    def prepare(self, config: MapConfig, services: Services) -> Any:
        from graphs.compile import compile_flow

        return compile_flow(config.flow, services)

    async def run(self, ctx: NodeContext, config: MapConfig, inputs: dict) -> dict:
        items = inputs["items"]
        if not isinstance(items, list):
            raise NodeError(f"port 'items' needs a list, got {type(items).__name__}")
        if len(items) > MAX_ITEMS:
            raise NodeError(f"{len(items):,} items; the limit is {MAX_ITEMS:,}")
        flow = ctx.prepared
        lane = None
        prior: list[dict[str, Any]] = []
        on_lane = config.latency == "batch" or ctx.services.batch is not None  # the run's
        if on_lane and batch.supports(ctx.services.model_client):
            # Its items' calls are answered from the batches of earlier visits, or collected.
            prior = await ctx.prior()
            lane = batch.BatchLane(batch.answered(prior))
            flow = copy.copy(flow)
            flow.services = replace(flow.services, batch=lane)
        pending: dict[str, dict[str, Any]] = {}
        context = {port: value for port, value in inputs.items() if port != LIST_PORT}
        boundary = boundary_of(flow)
        gate = asyncio.Semaphore(config.concurrency)
        done = 0

        async def one(index: int, item: Any) -> Any:
            nonlocal done
            sink = _item_sink(ctx, index, boundary) if index < config.item_events else None
            async with gate:
                result = await ctx.run_subflow(flow, {**context, "item": item}, sink)
            for model, usage in result.usage_by_model.items():
                ctx.add_usage(model, usage)
            calls = _batch_calls(result.state) if result.status == "waiting" else None
            if calls:
                pending.update(calls)  # every item gets as far as it can first
                return None
            wait = _budget_wait(result.state) if result.status == "waiting" else None
            if wait is not None:
                # An item's call would exceed the run's budget: the map parks as a whole
                # (items that finished are in the node cache when it is on).
                raise NodeWaits(wait)
            if result.status != "succeeded":
                raise NodeError(f"item {index} {result.status}: {result.error}")
            done += 1
            ctx.emit_progress(done, len(items))
            outputs = result.outputs
            return next(iter(outputs.values())) if len(outputs) == 1 else outputs

        ctx.emit_progress(0, len(items))
        try:
            # A TaskGroup cancels the other items as soon as one fails.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, item)) for i, item in enumerate(items)]
        except* NodeError as failed:
            raise failed.exceptions[0] from None
        except* NodeWaits as waits:
            raise waits.exceptions[0] from None
        if pending:
            client = ctx.services.model_client
            requests = {cid: batch.request_from_json(r) for cid, r in sorted(pending.items())}
            batch_id = batch.sent_before(prior, list(requests))
            if batch_id is None:
                batch_id = await client.submit_batch(requests)  # type: ignore[attr-defined]
                # Stored before it parks: run again before then, it finds this batch.
                await ctx.record(batch.SENT, batch.sent(batch_id, list(requests)))
            raise NodeWaits(batch.wait_for(batch_id, list(requests)))
        return {"results": [task.result() for task in tasks]}


def _batch_calls(state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The calls an item's nodes wait to send in a batch (custom_id -> request JSON)."""
    calls: dict[str, dict[str, Any]] = {}
    for wait in ((state or {}).get("waiting") or {}).values():
        if isinstance(wait, dict) and wait.get("kind") == batch.KIND:
            calls.update(wait.get("requests") or {})
    return calls


def _budget_wait(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """An item's budget wait; None for any other (an item cannot wait for a person)."""
    waits = (state or {}).get("waiting") or {}
    for _, wait in sorted(waits.items()):
        if isinstance(wait, dict) and wait.get("kind") == "budget":
            return dict(wait)
    return None


def inline_inputs(flow: Any) -> frozenset[str]:
    """The names of an inline flow document's input nodes (none when it is malformed).

    >>> sorted(inline_inputs({"nodes": [{"type": "input", "config": {"name": "a"}}]}))
    ['a']
    >>> inline_inputs({"nodes": "?"})
    frozenset()
    """
    nodes = flow.get("nodes") if isinstance(flow, dict) else None
    if not isinstance(nodes, list):
        return frozenset()
    return frozenset(
        name
        for node in nodes
        if isinstance(node, dict)
        and _is(node, "input")
        and isinstance(name := node["config"].get("name"), str)
    )


def boundary_of(flow: Any) -> frozenset[str]:
    """The inline flow's input and output nodes, whose events items do not forward."""
    return frozenset(
        node_id for node_id, spec in flow.nodes.items() if spec.type.name in ("input", "output")
    )


def item_fields(event: Event, index: int, boundary: frozenset[str]) -> dict[str, Any] | None:
    """What one of item ``index``'s own events says as a ``node_item`` of the map; None for
    the events items do not forward.

    Its input and output nodes are left out: they only pass values on, and would double
    what every item writes. The celery driver's workers, which run items apart from their
    map, forward them through this too.

    >>> item_fields({"type": "node_delta", "node": "ask", "text": "hi"}, 2, frozenset())
    {'item': 2, 'event': 'node_delta', 'inner': 'ask', 'text': 'hi'}
    >>> item_fields({"type": "node_started", "node": "item"}, 2, frozenset({"item"})) is None
    True

    An inner map's item event, nested in the item's (its map named as ``inner``):

    >>> fields = item_fields({"seq": 9, "type": "node_item", "node": "deep", "iteration": 1,
    ...     "item": 0, "event": "node_started", "inner": "ask"}, 2, frozenset())
    >>> fields["event"], fields["inner"], fields["nested"]
    ('node_item', 'deep', {'item': 0, 'event': 'node_started', 'inner': 'ask'})
    """
    kind = event["type"]
    if kind not in _FORWARDED or event.get("node") in boundary:
        return None
    fields: dict[str, Any] = {"item": index, "event": kind}
    if kind == "run_finished":
        fields["status"] = event.get("status")
        if event.get("error"):
            fields["error"] = event["error"]
    elif kind != "run_started":
        fields["inner"] = event.get("node")
        if kind == "node_item":
            fields["nested"] = {k: v for k, v in event.items() if k not in _NOT_NESTED}
        elif kind == "node_delta":
            fields["text"] = event.get("text", "")
        elif kind == "node_finished" and event.get("usage"):
            fields["usage"] = event["usage"]
        elif kind == "node_failed":
            fields["error"] = event.get("error", "")
    return fields


def _item_sink(ctx: NodeContext, index: int, boundary: frozenset[str]) -> Callable[[Event], None]:
    """Forwards one item's events as the map's ``node_item`` events.

    The item's own emitter has already coalesced its text; its numbering is dropped, the
    run's emitter numbers what is forwarded, so the log stays one gap-free sequence.
    """

    def sink(event: Event) -> None:
        fields = item_fields(event, index, boundary)
        if fields is not None:
            ctx.emit_item(fields)

    return sink


def _is(data: dict, kind: str) -> bool:
    return data.get("type") == kind and isinstance(data.get("config"), dict)
