"""Loops: which node starts a loop, what an idle loop still fires, what a loop-back port
holds on the first pass. Built from the wiring of the evaluator-optimizer workflows that
found the bugs (issue 13, B1 and B2)."""

from __future__ import annotations

import pytest

from tests.graphs.support import compiled, finished, flow, node, run, statuses
from tests.graphs.test_schedule import StepDriver, stable


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
