"""Re-run from a node, resume, and input overrides: recorded outputs stand in for nodes."""

from __future__ import annotations

import asyncio

import pytest

from graphs import Recorded, RunOptions
from graphs.errors import FlowInvalid
from graphs.llm.anthropic import AnthropicClient
from graphs.replan import final_states, reuse_for_resume, reuse_from_node
from tests.graphs.support import (
    Probe,
    compiled,
    finished,
    flow,
    node,
    of_type,
    revise_loop,
    run_with,
    statuses,
)
from tests.graphs.test_executor import loop, routed
from tests.support.wait import wait_for_async


def story() -> dict:
    """q -> outline -> draft -> polish -> out, and outline -> title -> headline."""
    return flow(
        node("q", "input", name="q"),
        node("outline", "llm", prompt="outline {{ q }}\n#fake:reply=the outline"),
        node("draft", "llm", prompt="draft from {{ o }}\n#fake:reply=the draft"),
        node("polish", "llm", prompt="polish {{ d }}\n#fake:reply=the polished text"),
        node("title", "llm", prompt="title for {{ o }}\n#fake:reply=the title"),
        node("out", "output", name="text"),
        node("headline", "output", name="title"),
        edges=[
            ("q", "value", "outline", "q"),
            ("outline", "text", "draft", "o"),
            ("draft", "text", "polish", "d"),
            ("polish", "text", "out", "value"),
            ("outline", "text", "title", "o"),
            ("title", "text", "headline", "value"),
        ],
    )


def asked(fake) -> list[str]:
    """The first line of each prompt the model server received, in order."""
    return [body["messages"][-1]["content"].splitlines()[0] for body in fake.message_requests]


async def test_rerun_from_a_node_calls_the_model_only_for_it_and_its_descendants(anthropic_env):
    flow_ = compiled(story(), model_client=AnthropicClient())
    first, first_events = await run_with(flow_, {"q": "tides"})
    assert first.status == "succeeded" and len(anthropic_env.message_requests) == 4
    anthropic_env.reset()

    reuse = reuse_from_node(flow_.graph, first_events, "draft", source="run 1")
    assert sorted(reuse) == ["headline", "outline", "q", "title"]
    second, events = await run_with(flow_, {"q": "tides"}, RunOptions(reuse=reuse))

    assert asked(anthropic_env) == ["draft from the outline", "polish the draft"]
    assert second.status == "succeeded" and second.outputs == first.outputs
    for name in ("q", "outline", "title", "headline"):
        [done] = finished(events, name)
        assert done["reused"] == {"source": "run 1"} and "usage" not in done
    assert "reused" not in finished(events, "draft")[0]
    assert second.usage_by_model.keys() == {"claude-sonnet-4-6"}
    assert second.usage.output_tokens == sum(
        e["usage"]["output_tokens"] for e in of_type(events, "node_finished") if "usage" in e
    )


async def test_a_reused_node_reports_its_recorded_output_with_the_spec_shape():
    doc = flow(
        node("q", "input", name="q"),
        node("t", "template", template="{{ x }}!"),
        node("o", "output", name="o"),
        edges=[("q", "value", "t", "x"), ("t", "text", "o", "value")],
    )
    reuse = {"t": Recorded({"text": "recorded!"}, source="run 42")}
    result, events = await run_with(compiled(doc), {"q": "new"}, RunOptions(reuse=reuse))
    assert result.outputs == {"o": "recorded!"}
    started = next(e for e in of_type(events, "node_started") if e["node"] == "t")
    assert started["inputs"] == {"x": "new"} and started["iteration"] == 1
    [done] = finished(events, "t")
    assert done == {
        "seq": done["seq"],
        "ts": done["ts"],
        "type": "node_finished",
        "node": "t",
        "iteration": 1,
        "output": {"text": "recorded!"},
        "duration_s": 0,
        "reused": {"source": "run 42"},
    }
    assert done["seq"] == started["seq"] + 1


async def test_a_reused_output_node_still_gives_the_run_its_output():
    doc = flow(
        node("q", "input", name="q"),
        node("o", "output", name="o"),
        edges=[("q", "value", "o", "value")],
    )
    reuse = {"q": Recorded({"value": 1}), "o": Recorded({"value": "kept"})}
    result, _ = await run_with(compiled(doc), {"q": 1}, RunOptions(reuse=reuse))
    assert result.outputs == {"o": "kept"}


async def test_reused_nodes_take_no_concurrency_slot():
    probe = Probe()
    doc = flow(
        node("slow", "sleep", seconds=0.3),
        node("a", "sleep"),
        node("b", "sleep"),
        edges=[("a", "value", "b", "value")],
    )
    flow_ = compiled(doc, probe, max_concurrency=1)
    reuse = {"a": Recorded({"value": 1}), "b": Recorded({"value": 2})}
    result, events = await run_with(flow_, options=RunOptions(reuse=reuse))
    assert result.status == "succeeded"
    assert probe.calls == {"slow": 1}
    order = [e["node"] for e in of_type(events, "node_finished")]
    assert order == ["a", "b", "slow"]


async def test_a_fully_reused_loop_delivers_its_final_values_once_then_goes_quiet():
    flow_ = compiled(loop(max_iterations=10, passes_at=4))
    _first, first_events = await run_with(flow_, {"start": 0})
    assert len(finished(first_events, "count")) == 4
    reuse = reuse_for_resume(flow_.graph, first_events)
    assert sorted(reuse) == ["check", "count", "out", "start"]

    second, events = await run_with(flow_, {"start": 0}, RunOptions(reuse=reuse))
    assert second.status == "succeeded" and second.outputs == {"total": 4}
    for name in ("start", "count", "check", "out"):
        [done] = finished(events, name)
        assert done["iteration"] == 1 and "reused" in done
    assert finished(events, "count")[0]["output"] == {"value": 4}


async def test_a_reused_loop_whose_output_goes_round_again_fires_each_node_once():
    doc = revise_loop()
    flow_ = compiled(doc)
    first, first_events = await run_with(flow_, {"topic": "queues"})
    reuse = reuse_for_resume(flow_.graph, first_events)
    second, events = await run_with(flow_, {"topic": "queues"}, RunOptions(reuse=reuse))
    assert second.status == "succeeded" and second.outputs == first.outputs
    assert all(len(finished(events, n)) == 1 for n in ("draft", "check", "fix", "out"))
    assert not of_type(events, "node_skipped")


async def test_a_reused_router_sends_its_recorded_route_so_the_other_is_skipped_again():
    flow_ = compiled(routed())
    first, first_events = await run_with(flow_, {"q": "fix my code"})
    reuse = reuse_from_node(flow_.graph, first_events, "join", source="run 3")
    assert "docs" not in reuse and "route" in reuse

    # Different inputs would route to docs; the recorded route wins.
    second, events = await run_with(flow_, {"q": "the manual"}, RunOptions(reuse=reuse))
    assert second.outputs == first.outputs
    seen = statuses(events)
    assert seen["docs"] == "skipped" and seen["join"] == "finished"
    assert "reused" not in finished(events, "join")[0]


async def test_rerun_from_one_branch_of_a_fan_out_runs_that_branch_and_the_join():
    probe = Probe()
    doc = flow(
        node("in", "input", name="x"),
        *(node(f"s{i}", "sleep", seconds=0.01) for i in range(4)),
        node("join", "merge"),
        node("out", "output", name="y"),
        edges=[
            *(("in", "value", f"s{i}", "value") for i in range(4)),
            *((f"s{i}", "value", "join", f"p{i}") for i in range(4)),
            ("join", "value", "out", "value"),
        ],
    )
    flow_ = compiled(doc, probe)
    first, first_events = await run_with(flow_, {"x": 1})
    probe.calls.clear()
    reuse = reuse_from_node(flow_.graph, first_events, "s2")
    second, events = await run_with(flow_, {"x": 1}, RunOptions(reuse=reuse))
    assert probe.calls == {"s2": 1}
    assert second.outputs == first.outputs == {"y": {f"p{i}": 1 for i in range(4)}}
    assert [e["node"] for e in of_type(events, "node_finished") if "reused" not in e] == [
        "s2",
        "join",
        "out",
    ]


async def test_rerun_from_a_node_inside_a_loop_runs_the_whole_loop_again():
    flow_ = compiled(loop(max_iterations=10, passes_at=4))
    _, first_events = await run_with(flow_, {"start": 0})
    reuse = reuse_from_node(flow_.graph, first_events, "check")
    assert list(reuse) == ["start"]
    second, events = await run_with(flow_, {"start": 0}, RunOptions(reuse=reuse))
    assert second.outputs == {"total": 4}
    assert [e["iteration"] for e in finished(events, "count")] == [1, 2, 3, 4]
    assert "reused" in finished(events, "start")[0]


async def test_resume_after_a_failure_runs_only_what_did_not_finish(anthropic_env):
    def doc(flaky: str) -> dict:
        return flow(
            node("q", "input", name="q"),
            node("a", "llm", prompt="a {{ q }}\n#fake:reply=alpha"),
            node("b", "llm", prompt="b {{ x }}\n" + flaky + "\n#fake:reply=beta", retries=0),
            node("c", "llm", prompt="c {{ x }}\n#fake:reply=gamma"),
            node("side", "llm", prompt="side {{ q }}\n#fake:reply=delta"),
            node("out", "output", name="out"),
            node("side_out", "output", name="side"),
            edges=[
                ("q", "value", "a", "q"),
                ("a", "text", "b", "x"),
                ("b", "text", "c", "x"),
                ("c", "text", "out", "value"),
                ("q", "value", "side", "q"),
                ("side", "text", "side_out", "value"),
            ],
        )

    flow_ = compiled(doc("#fake:status=400 #fake:times=1"), model_client=AnthropicClient())
    first, first_events = await run_with(flow_, {"q": "go"})
    assert first.status == "failed" and first.failed_node == "b"
    states = final_states(first_events)
    assert states["b"] == "failed" and states["a"] == "done"
    # No reset: it would also forget that b's failure was to happen only once.
    seen_before = len(anthropic_env.message_requests)

    reuse = reuse_for_resume(flow_.graph, first_events, source="run 9")
    assert "b" not in reuse and "c" not in reuse and {"q", "a"} <= set(reuse)
    second, _events = await run_with(flow_, {"q": "go"}, RunOptions(reuse=reuse))
    assert second.status == "succeeded"
    assert second.outputs == {"out": "gamma", "side": "delta"}
    expected = ["b alpha", "c beta"] + [p for p in ["side go"] if "side" not in reuse]
    assert sorted(asked(anthropic_env)[seen_before:]) == sorted(expected)


async def test_resume_after_a_cancel_runs_the_cancelled_node_and_what_follows():
    def doc(seconds: float) -> dict:
        return flow(
            node("q", "input", name="q"),
            node("fast", "sleep"),
            node("slow", "sleep", seconds=seconds),
            node("after", "sleep"),
            node("out", "output", name="out"),
            edges=[
                ("q", "value", "fast", "value"),
                ("fast", "value", "slow", "value"),
                ("slow", "value", "after", "value"),
                ("after", "value", "out", "value"),
            ],
        )

    probe = Probe()
    first_events: list[dict] = []
    handle = compiled(doc(30), probe).start({"q": "v"}, first_events.append)
    await wait_for_async(lambda: "slow" in probe.calls, interval=0.001, message="'slow' to run")
    handle.cancel()
    assert (await asyncio.wait_for(handle.wait(), 2)).status == "cancelled"
    assert final_states(first_events) == {"q": "done", "fast": "done", "slow": "cancelled"}

    probe.calls.clear()
    flow_ = compiled(doc(0), probe)
    reuse = reuse_for_resume(flow_.graph, first_events)
    assert sorted(reuse) == ["fast", "q"]
    second, _ = await run_with(flow_, {"q": "v"}, RunOptions(reuse=reuse))
    assert second.outputs == {"out": "v"}
    assert probe.calls == {"slow": 1, "after": 1}


async def test_overrides_replace_what_arrives_on_a_port_every_time_the_node_fires():
    doc = flow(
        node("q", "input", name="q"),
        node("t", "template", template="{{ a }}/{{ b }}"),
        node("o", "output", name="o"),
        edges=[("q", "value", "t", "a"), ("q", "value", "t", "b"), ("t", "text", "o", "value")],
    )
    options = RunOptions(overrides={"t": {"b": "edited"}})
    result, events = await run_with(compiled(doc), {"q": "orig"}, options)
    assert result.outputs == {"o": "orig/edited"}
    started = next(e for e in of_type(events, "node_started") if e["node"] == "t")
    assert started["inputs"] == {"a": "orig", "b": "edited"}


async def test_an_override_on_the_rerun_node_reaches_the_model(anthropic_env):
    flow_ = compiled(story(), model_client=AnthropicClient())
    _, first_events = await run_with(flow_, {"q": "tides"})
    anthropic_env.reset()
    reuse = reuse_from_node(flow_.graph, first_events, "draft")
    options = RunOptions(reuse=reuse, overrides={"draft": {"o": "a better outline"}})
    result, _ = await run_with(flow_, {"q": "tides"}, options)
    assert result.status == "succeeded"
    assert asked(anthropic_env) == ["draft from a better outline", "polish the draft"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            RunOptions(reuse={"ghost": Recorded({})}),
            "node 'ghost': is to be reused, but the flow has no such node",
        ),
        (
            RunOptions(overrides={"ghost": {"x": 1}}),
            "node 'ghost': has input overrides, but the flow has no such node",
        ),
        (
            RunOptions(overrides={"t": {"nope": 1}}),
            "node 't': override for input port 'nope', which it does not have (ports: x)",
        ),
        (
            RunOptions(reuse={"t": Recorded({})}, overrides={"t": {"x": 1}}),
            "node 't': is reused, so overriding its inputs would do nothing",
        ),
    ],
)
async def test_options_naming_a_missing_node_or_port_are_refused_before_any_event(options, message):
    doc = flow(
        node("q", "input", name="q"),
        node("t", "template", template="{{ x }}"),
        edges=[("q", "value", "t", "x")],
    )
    flow_ = compiled(doc)
    events: list[dict] = []
    with pytest.raises(FlowInvalid) as caught:
        flow_.start({"q": 1}, events.append, options=options)
    assert str(caught.value) == message
    with pytest.raises(FlowInvalid):
        await flow_.run({"q": 1}, events.append, options=options)
    assert events == []
