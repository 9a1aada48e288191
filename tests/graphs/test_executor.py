"""The executor: every orchestration pattern, its events, and its per-node settings."""

from __future__ import annotations

import asyncio

import pytest

from graphs.errors import FlowInvalid
from tests.graphs.support import (
    Probe,
    compiled,
    flow,
    node,
    of_type,
    revise_loop,
    run,
    statuses,
)
from tests.support.wait import wait_for_async


def chain(length: int) -> dict:
    nodes = [node("in", "input", name="x")]
    edges = []
    previous = "in"
    for i in range(length):
        nodes.append(node(f"t{i}", "template", template="{{ v }}+"))
        edges.append((previous, "value" if previous == "in" else "text", f"t{i}", "v"))
        previous = f"t{i}"
    nodes.append(node("out", "output", name="y"))
    edges.append((previous, "text", "out", "value"))
    return flow(*nodes, edges=edges)


async def test_chain_passes_values_along_and_numbers_events_without_gaps():
    result, events = await run(chain(3), {"x": "a"})
    assert result.status == "succeeded"
    assert result.outputs == {"y": "a+++"}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[-1]["status"] == "succeeded" and events[-1]["outputs"] == {"y": "a+++"}
    finished = of_type(events, "node_finished")
    assert [e["node"] for e in finished] == ["in", "t0", "t1", "t2", "out"]
    assert all(e["iteration"] == 1 and e["duration_s"] >= 0 for e in finished)
    assert finished[1]["output"] == {"text": "a+"}


async def test_independent_nodes_run_at_the_same_time():
    probe = Probe()
    doc = flow(
        node("in", "input", name="x"),
        *(node(f"s{i}", "sleep", seconds=0.05) for i in range(5)),
        node("join", "merge"),
        node("out", "output", name="y"),
        edges=[
            *(("in", "value", f"s{i}", "value") for i in range(5)),
            *((f"s{i}", "value", "join", f"p{i}") for i in range(5)),
            ("join", "value", "out", "value"),
        ],
    )
    result, _ = await run(doc, {"x": 1}, probe)
    assert probe.peak == 5
    assert result.outputs["y"] == {f"p{i}": 1 for i in range(5)}


async def test_run_wide_concurrency_cap_holds():
    probe = Probe()
    doc = flow(*(node(f"s{i}", "sleep", seconds=0.02) for i in range(6)))
    result, _ = await run(doc, probe=probe, max_concurrency=2)
    assert result.status == "succeeded"
    assert probe.peak == 2


def routed(text_rule: str = "code") -> dict:
    return flow(
        node("q", "input", name="q"),
        node(
            "route",
            "router",
            mode="match",
            routes=["code", "docs"],
            rules=[{"route": "code", "pattern": text_rule}],
            default="docs",
        ),
        node("code", "template", template="CODE {{ q }}"),
        node("code2", "template", template="{{ t }}!"),
        node("docs", "template", template="DOCS {{ q }}"),
        node("join", "merge"),
        node("out", "output", name="answer"),
        node("both", "output", name="joined"),
        edges=[
            ("q", "value", "route", "input"),
            ("route", "code", "code", "q"),
            ("code", "text", "code2", "t"),
            ("route", "docs", "docs", "q"),
            ("code2", "text", "out", "value"),
            ("docs", "text", "out", "value"),
            ("code2", "text", "join", "code"),
            ("docs", "text", "join", "docs"),
            ("join", "value", "both", "value"),
        ],
    )


async def test_router_takes_one_route_and_skips_what_only_the_other_reaches():
    result, events = await run(routed(), {"q": "fix my code"})
    assert result.outputs == {
        "answer": "CODE fix my code!",
        "joined": {"code": "CODE fix my code!"},
    }
    seen = statuses(events)
    assert seen["docs"] == "skipped"
    assert seen["code"] == seen["code2"] == seen["join"] == "finished"
    route_done = next(e for e in of_type(events, "node_finished") if e["node"] == "route")
    assert route_done["output"] == {"code": "fix my code"}


async def test_router_default_route_and_join_waits_only_for_live_branch():
    result, events = await run(routed(), {"q": "where is the manual"})
    assert result.outputs == {
        "answer": "DOCS where is the manual",
        "joined": {"docs": "DOCS where is the manual"},
    }
    seen = statuses(events)
    assert seen["code"] == seen["code2"] == "skipped"


async def test_router_without_match_or_default_fails_naming_the_node():
    doc = routed()
    doc["nodes"][1]["config"].pop("default")
    result, _events = await run(doc, {"q": "nothing matches"})
    assert result.status == "failed"
    assert result.failed_node == "route"
    assert "no route matched" in result.error


def loop(max_iterations: int, passes_at: int) -> dict:
    """count -> check: back to count until the value reaches `passes_at`."""
    return flow(
        node("start", "input", name="start"),
        node("count", "count", max_iterations=max_iterations),
        node(
            "check",
            "router",
            mode="match",
            routes=["done", "again"],
            rules=[{"route": "done", "pattern": f"^{passes_at}$"}],
            default="again",
        ),
        node("out", "output", name="total"),
        edges=[
            ("start", "value", "count", "value"),
            ("count", "value", "check", "input"),
            ("check", "again", "count", "value"),
            ("check", "done", "out", "value"),
        ],
    )


async def test_loop_repeats_until_the_router_exits_and_numbers_iterations():
    result, events = await run(loop(max_iterations=10, passes_at=4), {"start": 0})
    assert result.status == "succeeded"
    assert result.outputs == {"total": 4}
    counts = [e["iteration"] for e in of_type(events, "node_finished") if e["node"] == "count"]
    assert counts == [1, 2, 3, 4]
    assert statuses(events)["out"] == "finished"


async def test_loop_past_max_iterations_fails_the_run_naming_the_node():
    result, events = await run(loop(max_iterations=3, passes_at=99), {"start": 0})
    assert result.status == "failed"
    assert result.failed_node == "count"
    assert "max_iterations=3" in result.error
    failed = of_type(events, "node_failed")
    assert failed[-1]["node"] == "count" and failed[-1]["iteration"] == 4


async def test_loop_keeps_values_from_outside_the_loop_for_every_iteration():
    doc = revise_loop()
    result, _ = await run(doc, {"topic": "queues"})
    assert result.outputs == {"text": "draft about queues v2 (queues) v2 (queues)"}


async def test_map_runs_the_inline_flow_per_item_in_order_under_its_cap():
    probe = Probe()
    inner = flow(
        node("item", "input", name="item"),
        node("wait", "sleep", seconds=0.01),
        node("shout", "template", template="{{ x | upper }}"),
        node("out", "output", name="r"),
        edges=[
            ("item", "value", "wait", "value"),
            ("wait", "value", "shout", "x"),
            ("shout", "text", "out", "value"),
        ],
    )
    doc = flow(
        node("items", "input", name="items"),
        node("each", "map", flow=inner, concurrency=3),
        node("out", "output", name="results"),
        edges=[("items", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    words = [f"w{i}" for i in range(10)]
    result, events = await run(doc, {"items": words}, probe)
    assert result.outputs == {"results": [w.upper() for w in words]}
    assert probe.peak == 3
    progress = of_type(events, "node_progress")
    assert progress[-1]["done"] == progress[-1]["total"] == 10


async def test_map_item_failure_fails_the_node_and_names_the_item():
    inner = flow(
        node("item", "input", name="item"),
        node("t", "template", template="{{ x.missing }}"),
        node("out", "output", name="r"),
        edges=[("item", "value", "t", "x"), ("t", "text", "out", "value")],
    )
    doc = flow(
        node("items", "input", name="items"),
        node("each", "map", flow=inner),
        node("out", "output", name="results"),
        edges=[("items", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    result, _ = await run(doc, {"items": [{"missing": 1}, {}]})
    assert result.status == "failed"
    assert result.failed_node == "each"
    assert "item 1 failed" in result.error and "'t'" in result.error


async def test_map_refuses_a_value_that_is_not_a_list():
    inner = flow(
        node("item", "input", name="item"),
        node("o", "output", name="r"),
        edges=[("item", "value", "o", "value")],
    )
    doc = flow(
        node("items", "input", name="items"),
        node("each", "map", flow=inner),
        edges=[("items", "value", "each", "items")],
    )
    result, _ = await run(doc, {"items": "abc"})
    assert "needs a list, got str" in result.error


async def test_retryable_failures_are_retried_with_backoff_then_succeed():
    probe = Probe()
    doc = flow(node("s", "sleep", fail_times=2, retries=3))
    result, events = await run(doc, probe=probe)
    assert result.status == "succeeded"
    assert probe.calls["s"] == 3
    retrying = of_type(events, "node_retrying")
    assert [e["attempt"] for e in retrying] == [1, 2]
    assert of_type(events, "node_finished")[0]["attempts"] == 3
    assert len(of_type(events, "node_started")) == 1


async def test_retry_after_from_the_error_sets_the_backoff():
    doc = flow(node("s", "sleep", fail_times=1, retries=1, retry_after=0.12))
    _, events = await run(doc)
    assert of_type(events, "node_retrying")[0]["delay_s"] == 0.12


async def test_failures_that_are_not_retryable_are_not_retried():
    probe = Probe()
    doc = flow(node("s", "sleep", fail_times=1, retries=3, retryable=False))
    result, _ = await run(doc, probe=probe)
    assert result.status == "failed" and probe.calls["s"] == 1


async def test_exhausted_retries_fail_with_the_last_error_and_the_count():
    doc = flow(node("s", "sleep", fail_times=5, retries=2))
    result, _ = await run(doc)
    assert result.error == "node 's' failed: planned failure 3 (after 3 attempts)"


async def test_timeout_fails_the_node_with_a_clear_message():
    probe = Probe()
    doc = flow(node("slow", "sleep", seconds=30, timeout_s=0.05))
    result, _ = await run(doc, probe=probe)
    assert result.status == "failed"
    assert result.error == "node 'slow' failed: timed out after 0.05s"
    assert probe.cancelled == ["slow"]


async def test_on_error_continue_sends_the_error_down_the_error_port():
    doc = flow(
        node("bad", "sleep", fail_times=1, on_error="continue"),
        node("ok_path", "output", name="ok"),
        node("handler", "template", template="handled: {{ error }}"),
        node("err", "output", name="error"),
        edges=[
            ("bad", "value", "ok_path", "value"),
            ("bad", "error", "handler", "error"),
            ("handler", "text", "err", "value"),
        ],
    )
    result, events = await run(doc)
    assert result.status == "succeeded"
    assert result.outputs == {"error": "handled: planned failure 1"}
    assert of_type(events, "node_failed")[0]["continued"] is True
    assert statuses(events)["ok_path"] == "skipped"


async def test_a_failed_node_stops_its_running_siblings():
    probe = Probe()
    doc = flow(node("bad", "sleep", seconds=0.01, fail_times=1), node("slow", "sleep", seconds=30))
    result, events = await run(doc, probe=probe)
    assert result.status == "failed" and result.failed_node == "bad"
    assert probe.cancelled == ["slow"]
    stopped = [e for e in of_type(events, "node_failed") if e["node"] == "slow"]
    assert stopped[0]["cancelled"] is True and "'bad' failed" in stopped[0]["error"]


async def test_cancel_stops_in_flight_nodes_promptly():
    probe = Probe()
    events: list[dict] = []
    handle = compiled(flow(node("slow", "sleep", seconds=30)), probe).start({}, events.append)
    await wait_for_async(lambda: probe.running, interval=0.001, message="the node to run")
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), timeout=2)
    assert result.status == "cancelled"
    assert probe.cancelled == ["slow"]
    assert events[-1] == {**events[-1], "type": "run_finished", "status": "cancelled"}


async def test_cancel_interrupts_a_backoff_sleep():
    events: list[dict] = []
    doc = flow(node("s", "sleep", fail_times=1, retries=1, retry_after=30))
    handle = compiled(doc).start({}, events.append)
    await wait_for_async(lambda: of_type(events, "node_retrying"), message="node_retrying")
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), timeout=2)
    assert result.status == "cancelled"


async def test_cancelling_the_awaiting_task_cancels_the_run_and_records_it():
    probe = Probe()
    events: list[dict] = []
    task = asyncio.ensure_future(
        compiled(flow(node("slow", "sleep", seconds=30)), probe).run({}, events.append)
    )
    await wait_for_async(lambda: probe.running, interval=0.001, message="the node to run")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.cancelled == ["slow"]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"


async def test_missing_input_is_refused_before_the_run_starts():
    events: list[dict] = []
    flow_ = compiled(
        flow(
            node("q", "input", name="q"),
            node("o", "output", name="o"),
            edges=[("q", "value", "o", "value")],
        )
    )
    with pytest.raises(FlowInvalid) as caught:
        flow_.start({}, events.append)
    assert str(caught.value) == "node 'q': input 'q' is required and has no default"
    assert events == []


async def test_input_defaults_fill_in_and_unknown_inputs_are_refused():
    doc = flow(
        node("q", "input", name="q", default=[1, 2]),
        node("o", "output", name="o"),
        edges=[("q", "value", "o", "value")],
    )
    result, _ = await run(doc)
    assert result.outputs == {"o": [1, 2]}
    with pytest.raises(FlowInvalid, match="unknown input 'nope'"):
        compiled(doc).start({"nope": 1})


async def test_streamed_text_is_coalesced_not_one_event_per_token():
    doc = flow(
        node("p", "input", name="p"),
        node("m", "llm", prompt="{{ p }}"),
        edges=[("p", "value", "m", "p")],
    )
    _result, events = await run(doc, {"p": " ".join(["word"] * 500)})
    deltas = of_type(events, "node_delta")
    assert 1 <= len(deltas) < 10
    finished = of_type(events, "node_finished")[-1]
    assert "".join(d["text"] for d in deltas) == finished["output"]["text"]
    assert deltas[-1]["seq"] < finished["seq"]


async def test_model_nodes_record_usage_and_the_offline_model_says_so():
    doc = flow(
        node("p", "input", name="p"),
        node("m", "llm", prompt="Say {{ p }}"),
        node("o", "output", name="o"),
        edges=[("p", "value", "m", "p"), ("m", "text", "o", "value")],
    )
    result, events = await run(doc, {"p": "hi"})
    finished = next(e for e in of_type(events, "node_finished") if e["node"] == "m")
    assert finished["model"] == "offline"
    assert finished["usage"]["input_tokens"] > 0 and finished["usage"]["output_tokens"] > 0
    assert finished["detail"]["prompt"] == "Say hi"
    assert result.outputs["o"].startswith("[offline model]")
    assert result.usage.output_tokens == finished["usage"]["output_tokens"]
    assert events[-1]["usage"] == finished["usage"]


async def test_a_compiled_flow_can_run_many_times_independently():
    flow_ = compiled(routed())
    first, second = await asyncio.gather(flow_.run({"q": "code"}), flow_.run({"q": "docs please"}))
    assert first.outputs["answer"] == "CODE code!"
    assert second.outputs["answer"] == "DOCS docs please"


async def test_a_cancel_that_lands_before_a_new_node_first_runs_still_ends_the_run():
    probe = Probe()
    doc = flow(
        node("a", "sleep"), node("b", "sleep", seconds=30), edges=[("a", "value", "b", "value")]
    )
    events: list[dict] = []
    handle = None

    def sink(event: dict) -> None:
        events.append(event)
        if event["type"] == "node_finished" and event["node"] == "a":
            # Queued now, so it runs after a's task creates b's but before b's first step.
            asyncio.get_running_loop().call_soon(handle.cancel)

    handle = compiled(doc, probe).start({}, sink)
    result = await asyncio.wait_for(handle.wait(), timeout=2)
    assert result.status == "cancelled"
    assert "b" not in probe.calls


async def test_a_run_cancelled_before_its_task_starts_runs_no_node():
    probe = Probe()
    events: list[dict] = []
    handle = compiled(flow(node("s", "sleep")), probe).start({}, events.append)
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), timeout=2)
    assert result.status == "cancelled" and probe.calls == {}
    assert [e["type"] for e in events] == ["run_started", "run_finished"]
