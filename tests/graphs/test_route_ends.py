"""A route with no edge leaving it is legal: a run that takes it ends that branch there."""

from __future__ import annotations

import json

import pytest

from graphs.document import load
from graphs.settings import default_services
from graphs.validation import validate, warnings
from tests.graphs.support import compiled, flow, node, run, statuses
from tests.graphs.test_schedule import StepDriver, stable


def triage() -> dict:
    """q -> router (answer | ignore), `ignore` leading nowhere; q is also logged beside it."""
    return flow(
        node("q", "input", name="q"),
        node(
            "r",
            "router",
            mode="match",
            routes=["answer", "ignore"],
            rules=[{"route": "ignore", "pattern": "(?i)spam"}],
            default="answer",
        ),
        node("reply", "template", template="Re: {{ q }}"),
        node("a", "output", name="answer"),
        node("log", "template", template="seen: {{ q }}"),
        node("l", "output", name="log"),
        edges=[
            ("q", "value", "r", "input"),
            ("r", "answer", "reply", "q"),
            ("reply", "text", "a", "value"),
            ("q", "value", "log", "q"),
            ("log", "text", "l", "value"),
        ],
    )


def test_a_route_with_no_edge_is_neither_a_problem_nor_a_warning():
    graph = load(triage())
    assert validate(graph, default_services()) == []
    assert warnings(graph) == []


async def test_taking_a_route_that_leads_nowhere_ends_that_branch_and_the_run_goes_on():
    result, events = await run(triage(), {"q": "buy SPAM now"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"log": "seen: buy SPAM now"}
    seen = statuses(events)
    assert (seen["r"], seen["reply"], seen["a"]) == ("finished", "skipped", "skipped")
    assert seen["l"] == "finished"


async def test_the_other_route_still_runs_its_branch():
    result, _ = await run(triage(), {"q": "hello"})
    assert result.outputs == {"answer": "Re: hello", "log": "seen: hello"}


@pytest.mark.parametrize("q", ["buy SPAM now", "hello"])
async def test_step_by_step_through_json_a_run_ends_as_in_process(q):
    _, events = await run(triage(), {"q": q})
    stepped = await StepDriver(compiled(triage())).run({"q": q})
    # The two branches run concurrently in process: compare what happened, not its order.
    assert sorted(map(json.dumps, stable(stepped))) == sorted(map(json.dumps, stable(events)))
