"""``map``: runs an inline flow once per item of a list, concurrently, results in item order."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from graphs.document import load
from graphs.errors import FlowInvalid, NodeError
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services

# graphs.validation and graphs.compile are imported where used. They import neither this
# module nor the registry, but graphs.nodes.base, which runs graphs/nodes/__init__.py (the
# registry) and so this module first: imported up here, whichever of them loads first would
# still be half done.

MAX_ITEMS = 10_000


class MapConfig(CommonConfig):
    flow: dict[str, Any]
    concurrency: int = Field(default=4, ge=1, le=100)


class MapNode(NodeType):
    name = "map"
    description = "Runs an inline flow once per item of `items`; emits `results` in item order."
    Config = MapConfig
    holds_slot = False

    def input_ports(self, config: MapConfig) -> frozenset[str]:
        return frozenset({"items"})

    def output_ports(self, config: MapConfig) -> frozenset[str]:
        return frozenset({"results"})

    def problems(self, config: MapConfig, services: Services | None) -> list[str]:
        from graphs.validation import validate

        try:
            graph = load(config.flow)
        except FlowInvalid as exc:
            return [f"inline flow: {p}" for p in exc.problems]
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
        return found

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
