"""The schedule's waiting state: a node parks, the run says it waits only when nothing else
can move, a resume continues it (once), a stop ends it; every step goes through JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from graphs.compile import CompiledFlow
from graphs.schedule import Ready, RunState, Schedule, StepRefused, StepResult
from tests.graphs.support import compiled, flow, node
from tests.graphs.test_executor import loop

WAIT = {"kind": "approval", "message": "Ship it?", "actions": ["approve", "reject"]}
BOB = {"user": "bob"}


def reloaded(flow_: CompiledFlow, schedule: Schedule) -> Schedule:
    """The schedule as a coordinator would store and load it between two steps."""
    saved = schedule.state.to_json()
    loaded = RunState.from_json(json.loads(json.dumps(saved, allow_nan=False)))
    assert loaded.to_json() == saved
    return Schedule(flow_.plan, loaded)


def types(step: StepResult) -> list[str]:
    return [type_ for type_, _ in step.events]


def chain() -> CompiledFlow:
    return compiled(
        flow(
            node("q", "input", name="q"),
            node("ask", "template", template="{{ q }}"),
            node("out", "output", name="answer"),
            edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
        )
    )


def parked_chain() -> tuple[CompiledFlow, Schedule]:
    """The chain with ``ask`` waiting, reloaded from JSON."""
    flow_ = chain()
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "hi"})
    schedule = reloaded(flow_, schedule)
    assert schedule.node_finished("q", 1, {"value": "hi"}).ready == [Ready("ask", 1, {"q": "hi"})]
    schedule = reloaded(flow_, schedule)
    step = schedule.node_waiting("ask", 1, WAIT)
    assert step.events == [("node_waiting", {"node": "ask", "iteration": 1, "wait": WAIT})]
    assert (step.waiting, step.done, step.stopped, step.ready) == (True, False, False, [])
    return flow_, reloaded(flow_, schedule)


def test_a_waiting_node_parks_the_run_and_a_resume_finishes_it_through_json():
    flow_, schedule = parked_chain()
    assert schedule.state.is_waiting
    assert schedule.state.waiting == {"ask": WAIT}
    assert schedule.state.phase == "running"
    assert schedule.in_flight() == []  # nothing to run again should a worker die

    step = schedule.resume("ask", 1, {"text": "approved"}, by=BOB)
    assert step.events == [
        ("node_resumed", {"node": "ask", "iteration": 1, "by": BOB}),
        (
            "node_finished",
            {
                "node": "ask",
                "iteration": 1,
                "output": {"text": "approved"},
                "detail": {"wait": WAIT, "by": BOB},
            },
        ),
    ]
    assert step.ready == [Ready("out", 1, {"value": "approved"})]
    assert not step.waiting and not step.done
    schedule = reloaded(flow_, schedule)
    assert not schedule.state.waiting

    step = schedule.node_finished("out", 1, {"value": "approved"})
    assert step.done and not step.waiting
    assert step.events[-1][1]["status"] == "succeeded"
    assert step.events[-1][1]["outputs"] == {"answer": "approved"}


def test_a_second_resume_of_the_same_wait_is_refused():
    flow_, schedule = parked_chain()
    schedule.resume("ask", 1, {"text": "approved"}, by=BOB)
    schedule = reloaded(flow_, schedule)
    with pytest.raises(StepRefused, match="'ask' iteration 1 is not waiting: it was resumed"):
        schedule.resume("ask", 1, {"text": "rejected"}, by={"user": "carol"})
    # Nothing changed: out still runs on the first answer.
    assert schedule.in_flight() == [Ready("out", 1, {"value": "approved"})]


def test_resuming_a_node_that_does_not_wait_is_refused():
    flow_ = chain()
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "hi"})
    with pytest.raises(StepRefused, match="'q' iteration 1 is not waiting"):
        schedule.resume("q", 1, {"value": "x"}, by=BOB)
    with pytest.raises(StepRefused, match="'ask' iteration 1 is not waiting"):
        schedule.resume("ask", 1, {"text": "x"}, by=BOB)


def test_a_waiting_node_takes_no_runner_result():
    _, schedule = parked_chain()
    for step in (
        lambda: schedule.node_finished("ask", 1, {"text": "late"}),
        lambda: schedule.node_failed("ask", 1, "late"),
        lambda: schedule.node_cancelled("ask", 1),
        lambda: schedule.node_waiting("ask", 1, WAIT),
    ):
        with pytest.raises(StepRefused, match="'ask' iteration 1 is"):
            step()
    assert schedule.state.waiting == {"ask": WAIT}


def test_stop_while_waiting_cancels_the_waiting_node_and_ends_the_run():
    flow_, schedule = parked_chain()
    step = schedule.stop("cancelled")
    assert step.events == [
        ("node_failed", {"node": "ask", "iteration": 1, "error": "cancelled", "cancelled": True}),
        (
            "run_finished",
            {
                "status": "cancelled",
                "outputs": {},
                "usage": {"input_tokens": 0, "output_tokens": 0},
                "usage_by_model": {},
            },
        ),
    ]
    assert step.done and not step.waiting
    schedule = reloaded(flow_, schedule)
    assert schedule.state.phase == "finished" and not schedule.state.waiting
    with pytest.raises(StepRefused, match="the run is finished"):
        schedule.resume("ask", 1, {"text": "too late"}, by=BOB)


def branches() -> CompiledFlow:
    """q feeds ask (which will wait) and work (which keeps running); both reach outputs."""
    return compiled(
        flow(
            node("q", "input", name="q"),
            node("ask", "template", template="{{ q }}"),
            node("work", "template", template="{{ q }}"),
            node("asked", "output", name="asked"),
            node("worked", "output", name="worked"),
            edges=[
                ("q", "value", "ask", "q"),
                ("q", "value", "work", "q"),
                ("ask", "text", "asked", "value"),
                ("work", "text", "worked", "value"),
            ],
        )
    )


def test_a_run_is_waiting_only_once_its_other_branches_are_idle():
    flow_ = branches()
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "x"})
    step = schedule.node_finished("q", 1, {"value": "x"})
    assert [r.node for r in step.ready] == ["ask", "work"]
    step = reloaded(flow_, schedule).node_waiting("ask", 1, WAIT)
    assert not step.waiting  # work still runs
    schedule = reloaded(flow_, schedule)
    schedule.node_waiting("ask", 1, WAIT)
    assert not schedule.state.is_waiting
    assert schedule.in_flight() == [Ready("work", 1, {"q": "x"})]

    schedule = reloaded(flow_, schedule)
    step = schedule.node_finished("work", 1, {"text": "w"})
    assert step.ready == [Ready("worked", 1, {"value": "w"})] and not step.waiting
    schedule = reloaded(flow_, schedule)
    step = schedule.node_finished("worked", 1, {"value": "w"})
    assert step.waiting and not step.done
    assert "node_skipped" not in types(step)  # nothing downstream of the wait is given up

    schedule = reloaded(flow_, schedule)
    step = schedule.resume("ask", 1, {"text": "a"}, by=BOB)
    schedule = reloaded(flow_, schedule)
    step = schedule.node_finished("asked", 1, {"value": "a"})
    assert step.done
    assert schedule.state.outputs == {"asked": "a", "worked": "w"}


def test_a_failure_elsewhere_cancels_the_waiting_node():
    flow_ = branches()
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "x"})
    schedule.node_finished("q", 1, {"value": "x"})
    schedule.node_waiting("ask", 1, WAIT)
    schedule = reloaded(flow_, schedule)
    step = schedule.node_failed("work", 1, "boom")
    assert types(step) == ["node_failed", "run_finished"]
    assert step.events[0][1] == {
        "node": "ask",
        "iteration": 1,
        "error": "stopped because node 'work' failed",
        "cancelled": True,
    }
    assert step.done and step.events[-1][1]["status"] == "failed"


def drive(
    flow_: CompiledFlow,
    schedule: Schedule,
    step: StepResult,
    compute: Callable[[Ready], dict[str, Any] | None],
) -> tuple[Schedule, list[StepResult]]:
    """Run every ready node with ``compute`` (None: it waits), reloading between steps."""
    steps = [step]
    pending = list(step.ready)
    while pending:
        ready = pending.pop(0)
        schedule = reloaded(flow_, schedule)
        outputs = compute(ready)
        if outputs is None:
            step = schedule.node_waiting(ready.node, ready.iteration, WAIT)
        else:
            step = schedule.node_finished(ready.node, ready.iteration, outputs)
        steps.append(step)
        pending += step.ready
    return reloaded(flow_, schedule), steps


def counting(wait_at: tuple[str, int] | None) -> Callable[[Ready], dict[str, Any] | None]:
    """What the nodes of ``loop()`` compute; the node visit ``wait_at`` waits instead."""

    def compute(ready: Ready) -> dict[str, Any] | None:
        if (ready.node, ready.iteration) == wait_at:
            return None
        value = ready.inputs.get("value", ready.inputs.get("input"))
        if ready.node == "start":
            return {"value": 0}
        if ready.node == "count":
            return {"value": value + 1}
        if ready.node == "check":
            return {"done" if value == 3 else "again": value}
        return {"value": value}

    return compute


def test_a_wait_inside_a_loop_iteration_resumes_the_loop():
    flow_ = compiled(loop(max_iterations=10, passes_at=3))
    schedule = Schedule(flow_.plan)
    schedule, steps = drive(flow_, schedule, schedule.begin({"start": 0}), counting(("count", 2)))
    assert steps[-1].waiting and not steps[-1].done
    assert schedule.state.waiting == {"count": WAIT}
    assert schedule.state.iterations["count"] == 2

    # The person answers for count's second iteration; the loop carries on from there.
    step = schedule.resume("count", 2, {"value": 2}, by=BOB)
    assert step.ready == [Ready("check", 2, {"input": 2})]
    schedule, steps = drive(flow_, schedule, step, counting(None))
    assert steps[-1].done
    assert schedule.state.outputs == {"total": 3}
    assert schedule.state.iterations["count"] == 3
