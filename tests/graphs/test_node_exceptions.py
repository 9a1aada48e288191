"""Whatever a node raises, it fails that node: a run never succeeds with missing outputs.

A regression first: a ``TimeoutError`` from inside a node (a model client's, say) was
taken for the node's own timeout; with no ``timeout_s`` its message could not be
formatted, the node counted as never started, everything downstream was skipped and
the run (or a map item) reported ``succeeded`` with its outputs missing.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest, ModelResponse
from graphs.nodes.base import CommonConfig, NodeContext, NodeType
from tests.graphs.support import Probe, flow, node, of_type, run, services
from tests.support.wait import wait_for_async


class RaiseConfig(CommonConfig):
    kind: str = "TimeoutError"
    fail_times: int = 99  # attempts that raise; later ones pass `value` on


def _exception(kind: str) -> BaseException:
    if kind == "CancelledError":  # a cancel of something inside the node, not of the node
        return asyncio.CancelledError("inner task cancelled")
    if kind == "ExceptionGroup":
        return ExceptionGroup("two went wrong", [ValueError("one"), KeyError("two")])
    return {"TimeoutError": TimeoutError, "TypeError": TypeError, "KeyError": KeyError}[kind](
        f"{kind} from inside"
    )


class RaiseNode(NodeType):
    """Raises an exception of type `kind` on its first `fail_times` attempts."""

    name = "raise"
    Config = RaiseConfig

    def input_ports(self, config: RaiseConfig) -> None:
        return None

    def output_ports(self, config: RaiseConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: RaiseConfig, inputs: dict) -> dict:
        await asyncio.sleep(0)
        if ctx.attempt <= config.fail_times:
            raise _exception(config.kind)
        return {"value": inputs.get("value", "made it")}


class TimingOutClient(OfflineClient):
    """A model client whose every call times out, as an HTTP client's read timeout would."""

    async def complete(self, request: ModelRequest, on_text: Any) -> ModelResponse:
        raise TimeoutError("read timed out")


def with_raise(**overrides: Any):
    base = services(Probe(), **overrides)
    return replace(base, registry={**base.registry, "raise": RaiseNode()})


async def run_raising(doc: dict, inputs: dict | None = None, **overrides: Any):
    events: list[dict] = []
    from graphs.compile import compile_flow

    result = await compile_flow(doc, with_raise(**overrides)).run(inputs or {}, events.append)
    return result, events


def raising_then_output(**config: Any) -> dict:
    return flow(
        node("boom", "raise", **config),
        node("out", "output", name="result"),
        edges=[("boom", "value", "out", "value")],
    )


async def test_a_timeout_error_from_a_model_client_fails_the_node_not_the_run_silently():
    doc = flow(
        node("q", "input", name="q"),
        node("ask", "llm", prompt="{{ q }}"),
        node("out", "output", name="answer"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )
    result, events = await run(doc, {"q": "hi"}, model_client=TimingOutClient())
    assert result.status == "failed"
    assert result.failed_node == "ask"
    # Retried as transient (llm's default retries), then failed under its own name.
    assert result.error == "node 'ask' failed: TimeoutError: read timed out (after 3 attempts)"
    assert [e["node"] for e in of_type(events, "node_failed")] == ["ask"]
    assert of_type(events, "node_skipped") == []


async def test_only_the_nodes_own_deadline_is_reported_as_its_timeout():
    # The node raises TimeoutError long before its own 30 s deadline.
    result, _ = await run_raising(raising_then_output(kind="TimeoutError", timeout_s=30))
    assert result.status == "failed"
    assert result.error == "node 'boom' failed: TimeoutError: TimeoutError from inside"


async def test_a_timeout_error_inside_a_node_is_retried_like_other_transient_errors():
    result, events = await run_raising(raising_then_output(fail_times=1, retries=1))
    assert result.status == "succeeded" and result.outputs == {"result": "made it"}
    assert [e["error"] for e in of_type(events, "node_retrying")] == [
        "TimeoutError: TimeoutError from inside"
    ]


async def test_a_timeout_error_in_a_map_item_fails_the_item_and_the_map():
    inner = flow(
        node("item", "input", name="item"),
        node("boom", "raise"),
        node("r", "output", name="r"),
        edges=[("item", "value", "boom", "value"), ("boom", "value", "r", "value")],
    )
    doc = flow(
        node("items", "input", name="items"),
        node("each", "map", flow=inner),
        node("out", "output", name="results"),
        edges=[("items", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    result, _ = await run_raising(doc, {"items": ["a", "b"]})
    assert result.status == "failed"
    assert result.failed_node == "each"
    assert "item 0 failed" in result.error and "TimeoutError from inside" in result.error


@pytest.mark.parametrize(
    "kind", ["TimeoutError", "CancelledError", "TypeError", "KeyError", "ExceptionGroup"]
)
async def test_any_exception_escaping_a_node_fails_the_node_and_the_run(kind: str):
    result, events = await run_raising(raising_then_output(kind=kind))
    assert result.status == "failed", kind
    assert result.failed_node == "boom"
    assert result.outputs == {}
    (failed,) = of_type(events, "node_failed")
    assert failed["node"] == "boom" and kind in failed["error"]
    assert "cancelled" not in failed
    assert of_type(events, "run_finished")[0]["status"] == "failed"


async def test_a_run_whose_node_is_cancelled_from_outside_is_still_cancelled():
    # The other side of the guard: a real cancel of the run stays a cancel.
    events: list[dict] = []
    from graphs.compile import compile_flow

    doc = flow(node("slow", "sleep", seconds=30))
    handle = compile_flow(doc, with_raise()).start({}, events.append)
    await wait_for_async(
        lambda: any(e["type"] == "node_started" for e in events), message="the node starting"
    )
    handle.cancel()
    result = await handle.wait()
    assert result.status == "cancelled"


async def test_a_runner_that_breaks_fails_its_node_and_the_run(monkeypatch):
    from graphs.runner import NodeRunner

    async def broken(self: NodeRunner, ready: Any) -> Any:
        raise RuntimeError("the runner itself broke")

    monkeypatch.setattr(NodeRunner, "run", broken)
    result, events = await run_raising(raising_then_output())
    assert result.status == "failed" and result.failed_node == "boom"
    assert result.error == "node 'boom' failed: stopped without a result"
    assert of_type(events, "node_skipped") == []


async def test_a_sink_that_breaks_on_a_nodes_start_fails_that_node_and_the_run():
    from graphs.compile import compile_flow

    events: list[dict] = []

    def sink(event: dict) -> None:
        if event["type"] == "node_started" and event["node"] == "boom":
            raise RuntimeError("the log is full")
        events.append(event)

    doc = raising_then_output(fail_times=0)
    result = await compile_flow(doc, with_raise()).run({}, sink)
    assert result.status == "failed" and result.failed_node == "boom"
    assert result.error == (
        "node 'boom' failed: internal error running the node: RuntimeError: the log is full"
    )
    assert result.outputs == {}
