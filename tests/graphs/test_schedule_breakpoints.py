"""Breakpoints in the schedule: a node made ready pauses before it starts (a wait of kind
``breakpoint`` holding its inputs), ``go_on`` lets it start on those or edited inputs,
``step`` pauses before the next ready node too, a stop cancels it; every step goes
through JSON, as a parked run's state is stored between them."""

from __future__ import annotations

import asyncio
import json

import pytest

from graphs.compile import CompiledFlow
from graphs.schedule import Ready, RunOptions, RunState, Schedule, StepRefused, StepResult
from tests.graphs.support import compiled, flow, node

BOB = {"user": "bob"}


def reloaded(flow_: CompiledFlow, schedule: Schedule) -> Schedule:
    saved = schedule.state.to_json()
    loaded = RunState.from_json(json.loads(json.dumps(saved, allow_nan=False)))
    assert loaded.to_json() == saved
    return Schedule(flow_.plan, loaded)


def types(step: StepResult) -> list[str]:
    return [type_ for type_, _ in step.events]


def chain() -> CompiledFlow:
    """q -> a -> b -> out, each template passing its text on."""
    return compiled(
        flow(
            node("q", "input", name="q"),
            node("a", "template", template="a({{ x }})"),
            node("b", "template", template="b({{ x }})"),
            node("out", "output", name="answer"),
            edges=[
                ("q", "value", "a", "x"),
                ("a", "text", "b", "x"),
                ("b", "text", "out", "value"),
            ],
        )
    )


def paused_at_a(breakpoints: frozenset[str] = frozenset({"a"})) -> tuple[CompiledFlow, Schedule]:
    flow_ = chain()
    schedule = Schedule(flow_.plan)
    step = schedule.begin({"q": "hi"}, RunOptions(breakpoints=breakpoints))
    assert step.ready == [Ready("q", 1, {})]  # a source is not paused unless it is marked
    schedule = reloaded(flow_, schedule)
    step = schedule.node_finished("q", 1, {"value": "hi"})
    wait = {"kind": "breakpoint", "inputs": {"x": "hi"}}
    assert step.events == [("node_waiting", {"node": "a", "iteration": 1, "wait": wait})]
    assert (step.ready, step.waiting, step.done) == ([], True, False)
    schedule = reloaded(flow_, schedule)
    assert schedule.state.waiting == {"a": wait}
    assert schedule.in_flight() == []  # paused: nothing runs it, nothing to take over
    return flow_, schedule


def test_a_breakpoint_pauses_before_the_node_and_go_on_starts_it_on_edited_inputs():
    flow_, schedule = paused_at_a()
    step = schedule.go_on("a", 1, {"x": "edited"}, BOB)
    assert step.events == [
        (
            "node_resumed",
            {
                "node": "a",
                "iteration": 1,
                "by": BOB,
                "action": "continue",
                "inputs": {"x": "edited"},
                "edited": ["x"],
            },
        )
    ]
    assert step.ready == [Ready("a", 1, {"x": "edited"})]
    assert not step.waiting
    schedule = reloaded(flow_, schedule)
    # What it runs on, should its worker die, is the edited input.
    assert schedule.in_flight() == [Ready("a", 1, {"x": "edited"})]
    # Continue: b is not marked, so it starts at once.
    step = schedule.node_finished("a", 1, {"text": "a(edited)"})
    assert step.ready == [Ready("b", 1, {"x": "a(edited)"})]
    assert "node_waiting" not in types(step)


def test_go_on_without_inputs_keeps_those_it_paused_with():
    _, schedule = paused_at_a()
    step = schedule.go_on("a", 1, None, BOB)
    assert step.ready == [Ready("a", 1, {"x": "hi"})]
    assert step.events[0][1]["edited"] == []


def test_step_pauses_before_the_next_ready_node_and_continue_stops_stepping():
    flow_, schedule = paused_at_a()
    step = schedule.go_on("a", 1, None, BOB, step=True)
    assert step.events[0][1]["action"] == "step"
    assert step.ready == [Ready("a", 1, {"x": "hi"})]
    schedule = reloaded(flow_, schedule)
    step = schedule.node_finished("a", 1, {"text": "a(hi)"})
    wait = {"kind": "breakpoint", "inputs": {"x": "a(hi)"}}
    assert step.events == [("node_waiting", {"node": "b", "iteration": 1, "wait": wait})]
    assert step.waiting
    schedule = reloaded(flow_, schedule)
    step = schedule.go_on("b", 1, None, BOB)
    assert step.ready == [Ready("b", 1, {"x": "a(hi)"})]
    schedule = reloaded(flow_, schedule)
    step = schedule.node_finished("b", 1, {"text": "b(a(hi))"})
    assert step.ready == [Ready("out", 1, {"value": "b(a(hi))"})]  # not stepping any more


def test_a_second_go_on_of_the_same_pause_is_refused_and_changes_nothing():
    flow_, schedule = paused_at_a()
    schedule.go_on("a", 1, {"x": "first"}, BOB)
    schedule = reloaded(flow_, schedule)
    before = schedule.state.to_json()
    with pytest.raises(StepRefused, match="'a' iteration 1 is not waiting"):
        schedule.go_on("a", 1, {"x": "second"}, BOB)
    assert schedule.state.to_json() == before


def test_an_unknown_port_is_refused_naming_it_and_the_pause_stays():
    _, schedule = paused_at_a()
    with pytest.raises(ValueError, match="node 'a' has no input port 'nope'"):
        schedule.go_on("a", 1, {"x": "hi", "nope": 1}, BOB)
    assert "a" in schedule.state.waiting


def test_a_breakpoint_wait_and_an_approval_wait_each_take_only_their_own_answer():
    _, schedule = paused_at_a()
    with pytest.raises(StepRefused, match="waits at a breakpoint"):
        schedule.resume("a", 1, {"text": "skipped the node"}, by=BOB)
    flow_ = chain()
    other = Schedule(flow_.plan)
    other.begin({"q": "hi"})
    other.node_finished("q", 1, {"value": "hi"})
    other.node_waiting("a", 1, {"kind": "approval", "message": "ok?"})
    with pytest.raises(StepRefused, match="waits for an answer"):
        other.go_on("a", 1, None, BOB)


def test_stop_while_paused_cancels_the_node_and_ends_the_run():
    flow_, schedule = paused_at_a()
    step = schedule.stop("cancelled")
    assert types(step) == ["node_failed", "run_finished"]
    assert step.events[0][1] == {
        "node": "a",
        "iteration": 1,
        "error": "cancelled",
        "cancelled": True,
    }
    assert step.events[1][1]["status"] == "cancelled"
    assert step.done
    schedule = reloaded(flow_, schedule)
    with pytest.raises(StepRefused, match="the run is finished"):
        schedule.go_on("a", 1, None, BOB)


def test_a_run_without_breakpoints_keeps_its_state_json_as_before():
    flow_ = chain()
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "hi"})
    saved = schedule.state.to_json()
    assert "breakpoints" not in saved and "stepping" not in saved
    step = schedule.node_finished("q", 1, {"value": "hi"})
    assert step.ready == [Ready("a", 1, {"x": "hi"})]


def test_a_paused_branch_lets_the_others_run_and_parks_the_run_only_when_they_end():
    flow_ = compiled(
        flow(
            node("q", "input", name="q"),
            node("a", "template", template="a({{ x }})"),
            node("c", "template", template="c({{ x }})"),
            node("out", "output", name="answer"),
            node("other", "output", name="other"),
            edges=[
                ("q", "value", "a", "x"),
                ("q", "value", "c", "x"),
                ("a", "text", "out", "value"),
                ("c", "text", "other", "value"),
            ],
        )
    )
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "hi"}, RunOptions(breakpoints=frozenset({"a"})))
    step = schedule.node_finished("q", 1, {"value": "hi"})
    assert step.ready == [Ready("c", 1, {"x": "hi"})]
    assert types(step) == ["node_waiting"] and not step.waiting  # c still runs
    step = schedule.node_finished("c", 1, {"text": "c(hi)"})
    assert step.ready == [Ready("other", 1, {"value": "c(hi)"})] and not step.waiting
    step = schedule.node_finished("other", 1, {"value": "c(hi)"})
    assert step.waiting and not step.done
    schedule = reloaded(flow_, schedule)
    step = schedule.go_on("a", 1, None, BOB)
    step = schedule.node_finished("a", 1, {"text": "a(hi)"})
    step = schedule.node_finished("out", 1, {"value": "a(hi)"})
    assert step.done and step.events[-1][1]["outputs"] == {"answer": "a(hi)", "other": "c(hi)"}


def test_the_executor_parks_at_a_breakpoint_and_a_resume_runs_the_node_on_edited_inputs():
    flow_ = chain()
    events: list[dict] = []
    options = RunOptions(breakpoints=frozenset({"b"}))
    parked = asyncio.run(flow_.run({"q": "hi"}, events.append, options=options))
    assert parked.status == "waiting"
    assert parked.state is not None and parked.state["waiting"]["b"]["inputs"] == {"x": "a(hi)"}
    assert [e["node"] for e in events if e["type"] == "node_started"] == ["q", "a"]
    state = json.loads(json.dumps(parked.state))
    seq = events[-1]["seq"]
    result = asyncio.run(
        flow_.resume(
            state, "b", 1, {"x": "mine"}, BOB, events.append, seq=seq, breakpoint="continue"
        )
    )
    assert result.status == "succeeded"
    assert result.outputs == {"answer": "b(mine)"}
    started_b = next(e for e in events if e["type"] == "node_started" and e["node"] == "b")
    assert started_b["inputs"] == {"x": "mine"}  # the log says what the node really got
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
