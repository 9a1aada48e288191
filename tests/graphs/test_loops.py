"""Loops: which node starts a loop, what an idle loop still fires, what a loop-back port
holds on the first pass. Built from the wiring of the evaluator-optimizer workflows that
found the bugs (issue 13, B1 and B2)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from graphs.compile import CompiledFlow
from graphs.document import dump, load
from graphs.errors import FlowInvalid
from graphs.schedule import NodeFailed, NodeFinished, Outcome, Ready, RunState, Schedule
from graphs.settings import default_services
from graphs.validation import validate, warnings
from tests.graphs.support import compiled, finished, flow, node, run, statuses
from tests.graphs.test_schedule import StepDriver, stable, through_json


def evaluator_optimizer(evaluator: str = "llm_call_evaluator") -> dict:
    """LangGraph's evaluator-optimizer: the generator writes a joke about the topic (taking
    the feedback into account once there is some), the evaluator grades it and also reads the
    topic, a router sends it back with the feedback until it is accepted."""
    return flow(
        node("topic", "input", name="topic"),
        node(
            "llm_call_generator",
            "llm",
            prompt="Write a joke about {{ topic }}"
            "{% if feedback is defined %} using this feedback: {{ feedback }}{% endif %}",
            max_iterations=3,
        ),
        node(evaluator, "llm", prompt="Grade this joke about {{ topic }}: {{ joke }}"),
        node(
            "route_joke",
            "router",
            mode="match",
            routes=["accepted", "rejected"],
            rules=[{"route": "accepted", "pattern": "using this feedback"}],
            default="rejected",
        ),
        node("out", "output", name="joke"),
        edges=[
            ("topic", "value", "llm_call_generator", "topic"),
            ("topic", "value", evaluator, "topic"),
            ("llm_call_generator", "text", evaluator, "joke"),
            (evaluator, "text", "route_joke", "input"),
            ("route_joke", "rejected", "llm_call_generator", "feedback"),
            ("route_joke", "accepted", "out", "value"),
        ],
    )


def generate_check_fix(passes: str) -> dict:
    """Anthropic's evaluator-optimizer as generate -> check (router) -> fix -> check, where
    `fix` also reads the task, as every generation does in the original."""
    return flow(
        node("task", "input", name="task"),
        node("generate", "template", template="draft for {{ task }}"),
        node(
            "check",
            "router",
            mode="match",
            routes=["pass", "fix"],
            rules=[{"route": "pass", "pattern": passes}],
            default="fix",
        ),
        node("fix", "template", template="{{ draft }}, fixed for {{ task }}", max_iterations=3),
        node("out", "output", name="answer"),
        edges=[
            ("task", "value", "generate", "task"),
            ("task", "value", "fix", "task"),
            ("generate", "text", "check", "input"),
            ("check", "fix", "fix", "draft"),
            ("fix", "text", "check", "input"),
            ("check", "pass", "out", "value"),
        ],
    )


# B1: leftover outside values fired after the loop exited ------------------------------


async def test_a_first_draft_that_passes_ends_the_loop_and_the_fix_never_runs():
    result, events = await run(generate_check_fix(passes="draft"), {"task": "sorting"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "draft for sorting"}
    assert statuses(events)["fix"] == "skipped"
    assert events[-1]["type"] == "run_finished"


async def test_a_first_draft_that_fails_is_fixed_with_the_task_once():
    result, events = await run(generate_check_fix(passes="fixed"), {"task": "sorting"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "draft for sorting, fixed for sorting"}
    assert [e["inputs"] for e in events if e["type"] == "node_started" and e["node"] == "fix"] == [
        {"draft": "draft for sorting", "task": "sorting"}
    ]


# B2: which loop node starts first was alphabetical ------------------------------------


@pytest.mark.parametrize("evaluator", ["llm_call_evaluator", "zz_evaluator", "a_evaluator"])
async def test_the_generator_starts_the_loop_whatever_the_evaluator_is_called(evaluator):
    result, events = await run(evaluator_optimizer(evaluator), {"topic": "cats"})
    assert result.status == "succeeded", result.error
    generated = [e["output"]["text"] for e in finished(events, "llm_call_generator")]
    assert len(generated) == 2
    assert generated[0].endswith("Write a joke about cats")
    assert "using this feedback" in generated[1]
    assert result.outputs["joke"].startswith("[offline model]")
    assert "Grade this joke about cats: " in result.outputs["joke"]
    first = next(e for e in events if e["type"] == "node_started" and e["node"] != "topic")
    assert first["node"] == "llm_call_generator"


@pytest.mark.parametrize(
    ("doc", "inputs"),
    [
        (evaluator_optimizer(), {"topic": "cats"}),
        (generate_check_fix(passes="draft"), {"task": "sorting"}),
        (generate_check_fix(passes="fixed"), {"task": "sorting"}),
    ],
    ids=["evaluator-optimizer", "passes-at-once", "fixed-once"],
)
async def test_loops_step_by_step_through_json_match_the_in_process_run(doc, inputs):
    _, in_process = await run(doc, inputs)
    stepped = await StepDriver(compiled(doc)).run(inputs)
    assert stable(stepped) == stable(in_process)
    assert stepped[-1]["status"] == "succeeded"


# Step by step, and in any completion order -------------------------------------------


def test_the_loop_starts_at_the_generator_with_its_feedback_port_empty():
    schedule = Schedule(compiled(evaluator_optimizer()).plan)
    schedule.begin({"topic": "cats"})
    schedule = Schedule(schedule.plan, through_json(schedule.state))
    step = schedule.node_finished("topic", 1, {"value": "cats"})
    assert step.ready == [Ready("llm_call_generator", 1, {"topic": "cats"})]
    step = schedule.node_finished("llm_call_generator", 1, {"text": "a joke"})
    assert step.ready == [Ready("llm_call_evaluator", 1, {"joke": "a joke", "topic": "cats"})]


def test_a_loop_that_exits_at_once_ends_with_its_leftover_outside_values_unused():
    schedule = Schedule(compiled(generate_check_fix(passes="draft")).plan)
    schedule.begin({"task": "t"})
    schedule.node_finished("task", 1, {"value": "t"})
    schedule.node_finished("generate", 1, {"text": "draft for t"})
    schedule = Schedule(schedule.plan, through_json(schedule.state))
    step = schedule.node_finished("check", 1, {"pass": "draft for t"})
    assert step.ready == [Ready("out", 1, {"value": "draft for t"})]
    assert ("node_skipped", {"node": "fix", "iteration": 1}) in step.events
    assert schedule.state.entered == set()  # the activation is over
    assert schedule.state.kept["fix"] == {"task": "t"}  # held, not fired
    step = schedule.node_finished("out", 1, {"value": "draft for t"})
    assert step.done and step.events[-1][1]["status"] == "succeeded"


def twin_loops() -> dict:
    """Two evaluator-optimizer loops side by side, joined: a and b."""
    nodes = [node("topic", "input", name="topic")]
    edges = []
    for side in ("a", "b"):
        gen, grade, route = f"{side}_generator", f"{side}_evaluator", f"{side}_route"
        nodes += [
            node(
                gen,
                "template",
                template="{{ topic }}{{ feedback | default('') }}",
                max_iterations=3,
            ),
            node(grade, "template", template="{{ joke }} {{ topic }}"),
            node(
                route,
                "router",
                mode="match",
                routes=["accepted", "rejected"],
                rules=[{"route": "accepted", "pattern": "again"}],
                default="rejected",
            ),
        ]
        edges += [
            ("topic", "value", gen, "topic"),
            ("topic", "value", grade, "topic"),
            (gen, "text", grade, "joke"),
            (grade, "text", route, "input"),
            (route, "rejected", gen, "feedback"),
            (route, "accepted", "join", side),
        ]
    nodes += [node("join", "merge"), node("out", "output", name="jokes")]
    edges.append(("join", "value", "out", "value"))
    return flow(*nodes, edges=edges)


def fake(ready: Ready) -> Outcome:
    """What each node of `twin_loops` computes; a node fired without an input fails."""
    name, inputs = ready.node, ready.inputs
    if name == "topic":
        return NodeFinished({"value": "cats"})
    if name.endswith("_generator"):
        return NodeFinished({"text": f"joke about {inputs['topic']}: {inputs.get('feedback')}"})
    if name.endswith("_evaluator"):
        if "joke" not in inputs:
            return NodeFailed("no joke to grade")
        return NodeFinished({"text": f"{inputs['joke']} ({ready.iteration})"})
    if name.endswith("_route"):
        text = inputs["input"]
        return NodeFinished({"accepted": text} if "again" in text else {"rejected": "again"})
    return NodeFinished({"value": inputs if name == "join" else inputs["value"]})


def drive(flow_: CompiledFlow, rng: random.Random | None) -> tuple[dict, list[tuple[str, Any]]]:
    """Run on the schedule alone, completing ready nodes in a random order, sometimes
    through JSON."""
    schedule = Schedule(flow_.plan)
    step = schedule.begin({"topic": "cats"})
    pool, seen = list(step.ready), list(step.events)
    while pool:
        ready = pool.pop(rng.randrange(len(pool)) if rng else 0)
        if rng and rng.random() < 0.5:
            schedule = Schedule(flow_.plan, through_json(schedule.state))
        outcome = fake(ready)
        step = schedule.apply(ready, outcome)
        pool += step.ready
        seen += step.events
    assert step.done
    return seen[-1][1], sorted((t, f.get("node"), f.get("iteration")) for t, f in seen)


def test_any_completion_order_of_two_loops_gives_the_same_outputs_and_events():
    flow_ = compiled(twin_loops())
    expected, expected_events = drive(flow_, None)
    assert expected["status"] == "succeeded", expected
    assert expected["outputs"]["jokes"] == {
        side: "joke about cats: again (2)" for side in ("a", "b")
    }
    for seed in range(40):
        assert drive(flow_, random.Random(seed)) == (expected, expected_events), seed


# What a loop-back port holds on the first pass ----------------------------------------


def with_edge(doc: dict, source: str, target: str, **attrs: Any) -> dict:
    """The document with extra attributes on its edge from source to target."""
    for edge in doc["edges"]:
        if (edge["source"], edge["target"]) == (source, target):
            edge.update(attrs)
    return doc


def generate_fix_loop() -> dict:
    """task -> generate -> check -> fix -> generate: `generate` and `fix` both read the
    task, and nothing in the wiring says which starts (the shape of B2, mirrored)."""
    return flow(
        node("task", "input", name="task"),
        node("generate", "template", template="draft for {{ task }}{{ revised }}"),
        node(
            "check",
            "router",
            mode="match",
            routes=["pass", "fix"],
            rules=[{"route": "pass", "pattern": "fixed"}],
            default="fix",
        ),
        node("fix", "template", template=" fixed ({{ draft }}; {{ task }})", max_iterations=3),
        node("out", "output", name="answer"),
        edges=[
            ("task", "value", "generate", "task"),
            ("task", "value", "fix", "task"),
            ("generate", "text", "check", "input"),
            ("check", "fix", "fix", "draft"),
            ("fix", "text", "generate", "revised"),
            ("check", "pass", "out", "value"),
        ],
    )


async def test_an_initial_value_on_the_loop_back_edge_says_where_the_loop_starts():
    doc = with_edge(generate_fix_loop(), "fix", "generate", initial="")
    result, events = await run(doc, {"task": "t"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "draft for t fixed (draft for t; t)"}
    started = [(e["node"], e["inputs"]) for e in events if e["type"] == "node_started"]
    assert started[1] == ("generate", {"task": "t", "revised": ""})
    # Round the loop, what came back replaces the initial value.
    assert started[4] == ("generate", {"task": "t", "revised": " fixed (draft for t; t)"})


async def test_without_it_the_rule_starts_the_mirrored_loop_at_fix_and_validate_says_so():
    result, _ = await run(generate_fix_loop(), {"task": "t"})
    assert result.failed_node == "fix"  # started without a draft: the flow must say
    [warning] = warnings(load(generate_fix_loop()))
    assert warning.node == "fix"
    assert "2 nodes that take inputs from outside it (fix, generate)" in warning.message
    assert "set 'initial' on a loop-back edge" in warning.message
    assert warnings(load(with_edge(generate_fix_loop(), "fix", "generate", initial=""))) == []


async def test_append_collects_every_round_of_feedback_for_the_generator():
    doc = with_edge(evaluator_optimizer(), "route_joke", "llm_call_generator", append=True)
    doc["nodes"][1]["config"].update(
        prompt="Write a joke about {{ topic }}; feedback so far: {{ feedback | length }}",
        max_iterations=4,
    )
    doc["nodes"][3]["config"]["rules"] = [{"route": "accepted", "pattern": "so far: 2"}]
    result, events = await run(doc, {"topic": "cats"})
    assert result.status == "succeeded", result.error
    fed = [
        e["inputs"]["feedback"]
        for e in events
        if e["type"] == "node_started" and e["node"] == "llm_call_generator"
    ]
    assert [len(f) for f in fed] == [0, 1, 2]
    assert fed[2][0] == fed[1][0] and fed[2][1] != fed[2][0]
    stepped = await StepDriver(compiled(doc)).run({"topic": "cats"})
    assert stable(stepped) == stable(events)


def test_initial_and_append_are_refused_off_a_loop_or_beside_another_edge():
    doc = with_edge(generate_check_fix(passes="x"), "task", "generate", initial="")
    doc = with_edge(doc, "fix", "check", append=True, initial="not a list")
    found = sorted(str(p) for p in validate(load(doc), default_services()))
    assert found == [
        "edge 'fix' -> 'check' (0): 'append' needs 'initial' to be a list (leave it out for [])",
        "edge 'fix' -> 'check' (0): an edge with 'initial' or 'append' must be the only edge "
        "into 'check' port 'input'",
        "edge 'task' -> 'generate' (0): 'initial' and 'append' are for an edge that goes "
        "round a loop; this one is on none",
    ]
    with pytest.raises(FlowInvalid, match="'append' must be true or false"):
        load(with_edge(generate_check_fix(passes="x"), "fix", "check", append="yes"))


def test_initial_and_append_survive_the_document_round_trip():
    doc = with_edge(evaluator_optimizer(), "route_joke", "llm_call_generator", initial=["a"])
    doc = with_edge(doc, "route_joke", "llm_call_generator", append=True)
    [edge] = [e for e in dump(load(doc))["edges"] if e["target_port"] == "feedback"]
    assert (edge["initial"], edge["append"]) == (["a"], True)


# A loop fed several rounds ------------------------------------------------------------


def loop_after_loop() -> dict:
    """A counting loop that hands each count to a second loop, which polishes each once
    ("1" -> "1!") before passing it on: the second loop runs once per count."""
    return flow(
        node("start", "input", name="start"),
        node("count", "count", max_iterations=5),
        node(
            "enough",
            "router",
            mode="match",
            routes=["done", "again"],
            rules=[{"route": "done", "pattern": "^3$"}],
            default="again",
        ),
        node(
            "polish",
            "template",
            template="{{ n }}{% if rough is defined %}!{% endif %}",
            max_iterations=9,
        ),
        node(
            "polished",
            "router",
            mode="match",
            routes=["yes", "no"],
            rules=[{"route": "yes", "pattern": "!"}],
            default="no",
        ),
        node("out", "output", name="last"),
        node("total", "output", name="total"),
        edges=[
            ("start", "value", "count", "value"),
            ("enough", "done", "total", "value"),
            ("count", "value", "enough", "input"),
            ("enough", "again", "count", "value"),
            ("count", "value", "polish", "n"),
            ("polish", "text", "polished", "input"),
            ("polished", "no", "polish", "rough"),
            ("polished", "yes", "out", "value"),
        ],
    )


async def test_a_loop_fed_several_values_runs_once_for_each_taking_one_per_round():
    result, events = await run(loop_after_loop(), {"start": 0})
    assert result.status == "succeeded", result.error
    polished = [
        e["inputs"] for e in events if e["type"] == "node_started" and e["node"] == "polish"
    ]
    assert polished == [
        {"n": 1},
        {"n": 1, "rough": "1"},
        {"n": 2},
        {"n": 2, "rough": "2"},
        {"n": 3},
        {"n": 3, "rough": "3"},
    ]
    assert [e["output"]["value"] for e in finished(events, "out")] == ["1!", "2!", "3!"]
    stepped = await StepDriver(compiled(loop_after_loop())).run({"start": 0})
    assert stable(stepped) == stable(events)


def test_a_state_stored_before_loops_had_activations_still_loads():
    schedule = Schedule(compiled(evaluator_optimizer()).plan)
    schedule.begin({"topic": "cats"})
    schedule.node_finished("topic", 1, {"value": "cats"})
    saved = schedule.state.to_json()
    assert saved["entered"] == ["llm_call_generator"]
    old = {k: v for k, v in saved.items() if k not in ("entered", "held")}
    assert RunState.from_json(old).to_json() == {**saved, "entered": [], "held": {}}
