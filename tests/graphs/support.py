"""Helpers for engine tests: a flow builder and node types that make behaviour observable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graphs.budget import BudgetExceeded, Hold, request_tokens
from graphs.compile import CompiledFlow, compile_flow
from graphs.errors import NodeError
from graphs.flowfiles import FileFlows
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest, ModelResponse, Usage
from graphs.net import AllowList
from graphs.nodes import NODE_TYPES
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services
from graphs.schedule import RunOptions
from graphs.settings import default_services
from graphs.tools import BUILTIN_TOOLS, ToolSettings
from tests.support.http_server import github_stand_in


@contextmanager
def example_world(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """What example ``name`` needs to run with no network: its run inputs and services.

    The http examples call the GitHub API; here they call a stand-in on 127.0.0.1, which
    the services allow-list as a deployment would an internal API.
    """
    # An example that calls other flows finds them beside it, as the command line does.
    flows = FileFlows(Path(__file__).parents[2] / "examples", (name,))
    if name not in ("http", "api_pipeline"):
        yield {}, {"flows": flows}
        return
    with github_stand_in() as server:
        settings = ToolSettings(
            http_node_enabled=True, http_allow=AllowList.parse(f"127.0.0.1:{server.port}")
        )
        yield {"api": server.url("").rstrip("/")}, {"tool_settings": settings, "flows": flows}


def flow(*nodes: dict, edges: list[tuple[str, str, str, str]] = (), name: str = "test") -> dict:
    """A flow document; edges are (source, source_port, target, target_port)."""
    return {
        "graph": {"name": name},
        "nodes": list(nodes),
        "edges": [
            {"source": s, "source_port": sp, "target": t, "target_port": tp}
            for s, sp, t, tp in edges
        ],
    }


def node(node_id: str, type_: str, **config: Any) -> dict:
    return {"id": node_id, "type": type_, "config": config}


class Probe:
    """Counts how many probe nodes run at once, and which were cancelled."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.cancelled: list[str] = []
        self.calls: dict[str, int] = {}


class SleepConfig(CommonConfig):
    seconds: float = 0.0
    fail_times: int = 0
    retryable: bool = True
    retry_after: float | None = None


class SleepNode(NodeType):
    """Waits, then passes `value` on; fails its first `fail_times` attempts."""

    name = "sleep"
    Config = SleepConfig

    def __init__(self, probe: Probe):
        self.probe = probe

    def input_ports(self, config: SleepConfig) -> None:
        return None

    def output_ports(self, config: SleepConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: SleepConfig, inputs: dict) -> dict:
        probe = self.probe
        probe.calls[ctx.node_id] = probe.calls.get(ctx.node_id, 0) + 1
        probe.running += 1
        probe.peak = max(probe.peak, probe.running)
        try:
            await asyncio.sleep(config.seconds)
        except asyncio.CancelledError:
            probe.cancelled.append(ctx.node_id)
            raise
        finally:
            probe.running -= 1
        if ctx.attempt <= config.fail_times:
            raise NodeError(
                f"planned failure {ctx.attempt}",
                retryable=config.retryable,
                retry_after=config.retry_after,
            )
        return {"value": inputs.get("value", ctx.node_id)}


class CountConfig(CommonConfig):
    pass


class CountNode(NodeType):
    """Adds one to its `value` (starting from 0)."""

    name = "count"
    Config = CountConfig

    def input_ports(self, config: CountConfig) -> frozenset[str]:
        return frozenset({"value"})

    def output_ports(self, config: CountConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: CountConfig, inputs: dict) -> dict:
        return {"value": int(inputs["value"]) + 1}


class CountingClient(OfflineClient):
    """The offline model, keeping the last user message of every call it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []

    async def complete(self, request: ModelRequest, on_text: Any) -> ModelResponse:
        content = request.messages[-1]["content"]
        self.prompts.append(content if isinstance(content, str) else str(content))
        return await super().complete(request, on_text)


# A dollar per token: figures stay readable.
PRICE = 1.0


@dataclass
class LedgerBudget:
    """A run's budget held in memory: spent and reserved, priced at PRICE per token."""

    budget_usd: float
    spent_usd: float = 0.0
    reserved: dict[int, float] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def reserve(self, node: str, iteration: int, request: ModelRequest) -> Hold:
        needed = (request_tokens(request) + request.max_tokens) * PRICE
        if self.spent_usd + sum(self.reserved.values()) + needed > self.budget_usd:
            raise BudgetExceeded(
                spent_usd=self.spent_usd,
                remaining_usd=self.budget_usd - self.spent_usd,
                needed_usd=needed,
                budget_usd=self.budget_usd,
            )
        key = len(self.calls)
        self.calls.append(node)
        self.reserved[key] = needed
        ledger = self

        class _Hold:
            async def settle(self, model: str, usage: Usage) -> None:
                del ledger.reserved[key]
                ledger.spent_usd += (usage.input_tokens + usage.output_tokens) * PRICE

        return _Hold()


def services(probe: Probe | None = None, **overrides: Any) -> Services:
    probe = probe or Probe()
    base = default_services()
    registry: Mapping[str, NodeType] = {
        **NODE_TYPES,
        "sleep": SleepNode(probe),
        "count": CountNode(),
    }
    settings = {
        "registry": registry,
        "tools": dict(BUILTIN_TOOLS),
        "model_client": OfflineClient(),
        "backoff_base_s": 0.01,
    }
    return replace(base, **(settings | overrides))


def compiled(doc: dict, probe: Probe | None = None, **overrides: Any) -> CompiledFlow:
    return compile_flow(doc, services(probe, **overrides))


async def run(doc: dict, inputs: dict | None = None, probe: Probe | None = None, **overrides):
    """Run a flow; returns (result, events)."""
    events: list[dict] = []
    result = await compiled(doc, probe, **overrides).run(inputs or {}, events.append)
    return result, events


async def run_with(
    flow_: CompiledFlow, inputs: dict | None = None, options: RunOptions | None = None
) -> tuple[Any, list[dict]]:
    """Run a compiled flow with options; returns (result, events)."""
    events: list[dict] = []
    result = await flow_.run(inputs or {}, events.append, options=options)
    return result, events


def of_type(events: list[dict], type_: str) -> list[dict]:
    return [e for e in events if e["type"] == type_]


def finished(events: list[dict], node: str) -> list[dict]:
    """The node_finished events of one node."""
    return [e for e in events if e["type"] == "node_finished" and e["node"] == node]


def statuses(events: list[dict]) -> dict[str, str]:
    """The last status of each node: started, finished, skipped, failed."""
    seen: dict[str, str] = {}
    for event in events:
        if "node" in event and event["type"] != "node_delta":
            seen[event["node"]] = event["type"].removeprefix("node_")
    return seen


def revise_loop() -> dict:
    """topic -> draft -> check (router) -> fix -> check ... -> out: a loop that revises its
    draft until it carries "v2" twice, with `topic` fed into the loop from outside."""
    return flow(
        node("topic", "input", name="topic"),
        node("draft", "template", template="draft about {{ topic }}"),
        node(
            "check",
            "router",
            mode="match",
            routes=["ok", "fix"],
            rules=[{"route": "ok", "pattern": "(v2.*){2}"}],
            default="fix",
        ),
        node("fix", "template", template="{{ d }} v2 ({{ topic }})", max_iterations=5),
        node("out", "output", name="text"),
        edges=[
            ("topic", "value", "draft", "topic"),
            ("topic", "value", "fix", "topic"),
            ("draft", "text", "check", "input"),
            ("check", "fix", "fix", "d"),
            ("fix", "text", "check", "input"),
            ("check", "ok", "out", "value"),
        ],
    )
