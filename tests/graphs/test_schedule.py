"""The schedule as a state machine: driven step by step, through JSON, it runs flows exactly
as the in-process executor does; duplicate results are refused; completion order does not
change what a run computes."""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import asdict
from typing import Any

import pytest

from graphs.compile import CompiledFlow
from graphs.events import Emitter
from graphs.runner import NodeRunner
from graphs.schedule import (
    NodeCancelled,
    NodeFinished,
    Outcome,
    Ready,
    Recorded,
    RunOptions,
    RunState,
    Schedule,
    StepRefused,
    StepResult,
)
from tests.graphs.support import compiled, example_world, flow, node, run, run_with
from tests.graphs.test_examples import EXAMPLES, example
from tests.graphs.test_executor import loop, routed

VOLATILE = ("seq", "ts", "duration_s")


def through_json(state: RunState) -> RunState:
    """The state as a coordinator would store and load it; checks the round trip is exact."""
    saved = state.to_json()
    text = json.dumps(saved, allow_nan=False)
    loaded = RunState.from_json(json.loads(text))
    assert loaded.to_json() == saved
    return loaded


def stable(events: list[dict]) -> list[dict]:
    """Events without what differs between two runs of the same flow (numbering, timing,
    and the time an agent's tool calls took, in its detail)."""
    return [
        {k: _timeless(v) if k == "detail" else v for k, v in e.items() if k not in VOLATILE}
        for e in events
    ]


def _timeless(detail):
    if not isinstance(detail, dict) or "tool_calls" not in detail:
        return detail
    calls = [{k: v for k, v in call.items() if k != "duration_ms"} for call in detail["tool_calls"]]
    return {**detail, "tool_calls": calls}


class StepDriver:
    """Runs a flow the way a distributed driver would: one step at a time, state via JSON,
    each ready node handed over as JSON and run alone by a NodeRunner."""

    def __init__(self, flow_: CompiledFlow, options: RunOptions | None = None):
        self.flow = flow_
        self.options = options or RunOptions()
        self.events: list[dict] = []
        self.emitter = Emitter(self.events.append)
        self.saved = RunState.initial(flow_.plan).to_json()
        self.pending: deque[Ready] = deque()

    def step(self, move) -> StepResult:
        schedule = Schedule(self.flow.plan, through_json(RunState.from_json(self.saved)))
        result = move(schedule)
        self.saved = schedule.state.to_json()
        for type_, fields in result.events:
            self.emitter.emit(type_, **fields)
        self.pending.extend(Ready(**json.loads(json.dumps(asdict(r)))) for r in result.ready)
        return result

    async def run(self, inputs: dict[str, Any]) -> list[dict]:
        resolved = self.flow.resolve_inputs(inputs)
        runner = NodeRunner(
            self.flow, emitter=self.emitter, run_inputs=resolved, options=self.options
        )
        result = self.step(lambda s: s.begin(resolved, self.options))
        while self.pending:
            ready = self.pending.popleft()
            outcome = await runner.run(ready)
            result = self.step(lambda s, r=ready, o=outcome: s.apply(r, o))
        assert result.done
        return self.events


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
async def test_each_example_driven_step_by_step_through_json_matches_the_in_process_run(name):
    with example_world(name) as (inputs, services):
        _, in_process = await run(example(name), inputs, **services)
        stepped = await StepDriver(compiled(example(name), **services)).run(inputs)
    assert stable(stepped) == stable(in_process)
    assert stepped[-1]["type"] == "run_finished" and stepped[-1]["status"] == "succeeded"


async def test_a_loop_and_a_router_step_by_step_match_the_in_process_run():
    for doc, inputs in [
        (loop(max_iterations=10, passes_at=4), {"start": 0}),
        (loop(max_iterations=3, passes_at=99), {"start": 0}),  # fails on max_iterations
        (routed(), {"q": "fix my code"}),
        (routed(), {"q": "where is the manual"}),
    ]:
        _, in_process = await run(doc, inputs)
        stepped = await StepDriver(compiled(doc)).run(inputs)
        assert stable(stepped) == stable(in_process)


async def test_reuse_and_overrides_step_by_step_match_the_in_process_run():
    doc = routed()
    options = RunOptions(
        reuse={"q": Recorded({"value": "code it"}, "run 7")},
        overrides={"code": {"q": "edited"}},
    )
    _, in_process = await run_with(compiled(doc), {"q": "x"}, options)
    stepped = await StepDriver(compiled(doc), options).run({"q": "x"})
    assert stable(stepped) == stable(in_process)
    assert stepped[-1]["outputs"]["answer"] == "CODE edited!"


def test_a_reused_node_is_resolved_inside_the_step_and_never_ready():
    doc = flow(
        node("q", "input", name="q"),
        node("t", "template", template="{{ x }}!"),
        node("o", "output", name="o"),
        edges=[("q", "value", "t", "x"), ("t", "text", "o", "value")],
    )
    schedule = Schedule(compiled(doc).plan)
    options = RunOptions(reuse={"q": Recorded({"value": "hi"}, "run 3")})
    step = schedule.begin({"q": "hi"}, options)
    assert step.ready == [Ready("t", 1, {"x": "hi"})]
    assert [(t, f.get("node")) for t, f in step.events] == [
        ("run_started", None),
        ("node_started", "q"),
        ("node_finished", "q"),
    ]
    assert step.events[2][1]["reused"] == {"source": "run 3"}


def test_the_same_result_delivered_twice_is_refused():
    schedule = Schedule(compiled(routed()).plan)
    schedule.begin({"q": "code"})
    schedule.node_finished("q", 1, {"value": "code"})
    with pytest.raises(StepRefused, match=r"'q' iteration 1 is not running.*duplicate"):
        schedule.node_finished("q", 1, {"value": "code"})
    # Also once the state has been stored and loaded, as a second worker would find it.
    reloaded = Schedule(schedule.plan, through_json(schedule.state))
    with pytest.raises(StepRefused, match="duplicate"):
        reloaded.node_failed("q", 1, "late failure")
    with pytest.raises(StepRefused, match="duplicate"):
        reloaded.node_finished("route", 2, {"code": "code"})  # route runs its iteration 1
    before = reloaded.state.to_json()
    with pytest.raises(StepRefused):
        reloaded.node_cancelled("q", 1)
    assert reloaded.state.to_json() == before  # a refused step changes nothing


def test_steps_after_the_run_finished_are_refused_and_begin_only_once():
    doc = flow(node("q", "input", name="q", default=1))
    schedule = Schedule(compiled(doc).plan)
    schedule.begin({"q": 1})
    assert schedule.node_finished("q", 1, {"value": 1}).done
    with pytest.raises(StepRefused, match="the run is finished"):
        schedule.node_finished("q", 1, {"value": 1})
    with pytest.raises(StepRefused, match="begun already"):
        schedule.begin({"q": 1})
    assert schedule.stop("cancelled") == StepResult([], [])  # too late to stop: nothing


def test_a_failure_stops_the_run_and_the_nodes_still_running_report_why():
    doc = flow(node("a", "sleep"), node("b", "sleep"), node("c", "sleep"))
    schedule = Schedule(compiled(doc).plan)
    assert [r.node for r in schedule.begin({}).ready] == ["a", "b", "c"]
    step = schedule.node_failed("a", 1, "boom")
    assert step.stopped and not step.done and step.events == []
    step = Schedule(schedule.plan, through_json(schedule.state)).node_cancelled("b", 1)
    assert step.events == [
        (
            "node_failed",
            {
                "node": "b",
                "iteration": 1,
                "error": "stopped because node 'a' failed",
                "cancelled": True,
            },
        )
    ]
    schedule = Schedule(schedule.plan, through_json(schedule.state))
    schedule.node_cancelled("b", 1)
    step = schedule.node_cancelled("c", 1, started=False)  # it never began: nothing to say
    assert step.done and [t for t, _ in step.events] == ["run_finished"]
    assert step.events[0][1]["status"] == "failed"
    assert step.events[0][1]["error"] == "node 'a' failed: boom"


def test_a_failure_names_the_node_by_its_label_with_its_key():
    # People built the flow on the canvas, where nodes go by their labels.
    summarise = {**node("llm3", "sleep"), "label": "Summarise"}
    doc = flow(summarise, node("b", "sleep"), {**node("c", "sleep"), "label": "c"})
    schedule = Schedule(compiled(doc).plan)
    schedule.begin({})
    schedule.node_failed("llm3", 1, "boom")
    step = schedule.node_cancelled("b", 1)
    assert step.events[0][1]["error"] == 'stopped because node "Summarise" (llm3) failed'
    step = schedule.node_cancelled("c", 1, started=False)
    assert step.events[-1][1]["error"] == 'node "Summarise" (llm3) failed: boom'
    # A label that is the key says nothing more: the key alone, as before.
    schedule = Schedule(compiled(doc).plan)
    schedule.begin({})
    schedule.node_failed("c", 1, "boom")
    schedule.node_cancelled("b", 1)
    step = schedule.node_cancelled("llm3", 1)
    assert step.events[0][1]["error"] == "stopped because node 'c' failed"
    assert step.events[-1][1]["error"] == "node 'c' failed: boom"


def test_a_stop_before_the_run_begins_ends_it_as_soon_as_it_begins():
    schedule = Schedule(compiled(flow(node("s", "sleep"))).plan)
    assert schedule.stop("cancelled") == StepResult([], [])
    step = Schedule(schedule.plan, through_json(schedule.state)).begin({})
    assert step.ready == [] and step.done
    assert [(t, f.get("status")) for t, f in step.events] == [
        ("run_started", None),
        ("run_finished", "cancelled"),
    ]


def test_state_from_another_version_or_plan_is_refused():
    plan = compiled(routed()).plan
    saved = RunState.initial(plan).to_json()
    with pytest.raises(ValueError, match="version 99"):
        RunState.from_json({**saved, "version": 99})
    other = compiled(flow(node("s", "sleep"))).plan
    with pytest.raises(ValueError, match="another plan"):
        Schedule(other, RunState.from_json(saved))


# Completion order ---------------------------------------------------------------------


def wide(width: int) -> dict:
    """in -> w0..wN -> join (merge) -> out, plus a router whose one branch is skipped."""
    nodes = [node("in", "input", name="x")]
    edges = []
    for i in range(width):
        nodes.append(node(f"w{i}", "template", template=f"{{{{ v }}}}-{i}"))
        edges += [("in", "value", f"w{i}", "v"), (f"w{i}", "text", "join", f"p{i}")]
    nodes += [
        node(
            "route",
            "router",
            mode="match",
            routes=["yes", "no"],
            rules=[{"route": "yes", "pattern": "go"}],
            default="no",
        ),
        node("yes", "template", template="yes {{ v }}"),
        node("no", "template", template="no {{ v }}"),
        node("join", "merge"),
        node("out", "output", name="joined"),
    ]
    edges += [
        ("in", "value", "route", "input"),
        ("route", "yes", "yes", "v"),
        ("route", "no", "no", "v"),
        ("yes", "text", "join", "yes"),
        ("no", "text", "join", "no"),
        ("join", "value", "out", "value"),
    ]
    return flow(*nodes, edges=edges)


def fake(ready: Ready) -> Outcome:
    """What each node of `wide` computes, without running anything."""
    inputs, name = ready.inputs, ready.node
    if name == "in":
        return NodeFinished({"value": "go"})
    if name == "route":
        return NodeFinished({"yes": inputs["input"]})
    if name in ("join", "out"):
        return NodeFinished({"value": inputs if name == "join" else inputs["value"]})
    return NodeFinished({"text": f"{name}({inputs['v']})"})


def drive(flow_: CompiledFlow, rng: random.Random | None) -> tuple[dict, list[tuple[str, Any]]]:
    """Run `wide` on the schedule alone, completing ready nodes in a random order."""
    schedule = Schedule(flow_.plan)
    step = schedule.begin({"x": "go"})
    pool, seen = list(step.ready), list(step.events)
    while pool:
        ready = pool.pop(rng.randrange(len(pool)) if rng else 0)
        if rng and rng.random() < 0.3:
            schedule = Schedule(flow_.plan, through_json(schedule.state))
        step = schedule.apply(ready, fake(ready))
        pool += step.ready
        seen += step.events
    assert step.done
    finished = seen[-1][1]
    return finished, sorted((t, f.get("node")) for t, f in seen)


def test_any_completion_order_of_a_fan_out_gives_the_same_outputs_and_events():
    flow_ = compiled(wide(8))
    expected, expected_events = drive(flow_, None)
    assert expected["status"] == "succeeded"
    assert expected["outputs"]["joined"] == {
        **{f"p{i}": f"w{i}(go)" for i in range(8)},
        "yes": "yes(go)",
    }
    assert ("node_skipped", "no") in expected_events
    for seed in range(60):
        finished, events = drive(flow_, random.Random(seed))
        assert finished == expected, seed
        assert events == expected_events, seed


def test_a_cancelled_outcome_of_a_node_that_never_began_says_nothing():
    schedule = Schedule(compiled(flow(node("a", "sleep"), node("b", "sleep"))).plan)
    schedule.begin({})
    schedule.stop("cancelled")
    step = schedule.apply(Ready("a", 1, {}), NodeCancelled(started=False))
    assert step.events == [] and not step.done
    step = schedule.apply(Ready("b", 1, {}), NodeCancelled())
    assert [(t, f.get("error")) for t, f in step.events] == [
        ("node_failed", "cancelled"),
        ("run_finished", None),
    ]


async def test_a_sink_that_cancels_on_a_step_event_lets_no_ready_node_start():
    events: list[dict] = []
    handle = None

    def sink(event: dict) -> None:
        events.append(event)
        if event["type"] == "node_skipped":  # emitted in the same step that readies `code`
            handle.cancel()

    handle = compiled(routed()).start({"q": "fix my code"}, sink)
    result = await handle.wait()
    assert result.status == "cancelled"
    assert "code" not in {e.get("node") for e in events if e["type"] == "node_started"}
    assert events[-1]["type"] == "run_finished"


def test_the_stored_state_says_which_nodes_to_run_again_after_a_worker_is_lost():
    doc = wide(3)
    schedule = Schedule(compiled(doc).plan)
    schedule.begin({"x": "go"})
    step = schedule.apply(Ready("in", 1, {}), NodeFinished({"value": "go"}))
    assert sorted(r.node for r in step.ready) == ["route", "w0", "w1", "w2"]
    schedule.apply(Ready("w0", 1, {"v": "go"}), NodeFinished({"text": "w0(go)"}))
    # The coordinator restarts with nothing but the stored state.
    reloaded = Schedule(schedule.plan, through_json(schedule.state))
    lost = reloaded.in_flight()
    assert sorted((r.node, r.iteration, r.inputs.get("v")) for r in lost) == [
        ("route", 1, None),
        ("w1", 1, "go"),
        ("w2", 1, "go"),
    ]
    for ready in lost:
        reloaded.apply(ready, fake(ready))  # run again elsewhere, with the same inputs
    with pytest.raises(StepRefused, match="duplicate"):
        reloaded.apply(lost[0], fake(lost[0]))  # the first worker wakes up: refused


def test_a_node_that_stops_without_a_result_while_the_run_goes_on_fails_the_run():
    # Only an ending run cancels its nodes; a node that ends with nothing otherwise
    # (its runner broke) must not let the run succeed with what is downstream missing.
    doc = flow(
        node("a", "sleep"),
        node("out", "output", name="out"),
        edges=[("a", "value", "out", "value")],
    )
    for started in (False, True):
        schedule = Schedule(compiled(doc).plan)
        schedule.begin({})
        step = Schedule(schedule.plan, through_json(schedule.state)).node_cancelled(
            "a", 1, started=started
        )
        assert step.done and step.ready == []
        assert step.events[0] == (
            "node_failed",
            {"node": "a", "iteration": 1, "error": "stopped without a result"},
        )
        assert step.events[-1][0] == "run_finished"
        assert step.events[-1][1]["status"] == "failed"
        assert step.events[-1][1]["error"] == "node 'a' failed: stopped without a result"
