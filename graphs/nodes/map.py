"""``map``: runs an inline flow once per item of a list, concurrently, results in item order."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from graphs.document import load
from graphs.errors import FlowInvalid, NodeError
from graphs.nodes.base import CommonConfig, FieldProblem, NodeContext, NodeType, Services

# graphs.validation and graphs.compile are imported where used. They import neither this
# module nor the registry, but graphs.nodes.base, which runs graphs/nodes/__init__.py (the
# registry) and so this module first: imported up here, whichever of them loads first would
# still be half done.

MAX_ITEMS = 10_000

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
        description="The inline flow run per item: a flow document with an input named item.",
        json_schema_extra={"rows": 10},
    )
    concurrency: int = Field(default=4, ge=1, le=100, description="Items processed at once.")


class MapNode(NodeType):
    name = "map"
    label = "Map"
    description = "Runs an inline flow once per item of `items`; emits `results` in item order."
    category = "container"
    Config = MapConfig
    default_config = {"flow": EACH_ITEM}
    holds_slot = False

    def input_ports(self, config: MapConfig) -> frozenset[str]:
        return frozenset({"items"})

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
        gate = asyncio.Semaphore(config.concurrency)
        done = 0

        async def one(index: int, item: Any) -> Any:
            nonlocal done
            async with gate:
                result = await ctx.run_subflow(flow, {"item": item})
            for model, usage in result.usage_by_model.items():
                ctx.add_usage(model, usage)
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
        return {"results": [task.result() for task in tasks]}


def _is(data: dict, kind: str) -> bool:
    return data.get("type") == kind and isinstance(data.get("config"), dict)
