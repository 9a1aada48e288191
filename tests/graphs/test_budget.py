"""Budgets in the engine: a call that would exceed the run's budget parks its node
(``run_paused``), the run parks once nothing else moves, and raising the budget runs the
paused nodes again (``resume_budget``) while nodes that finished are not run again."""

from __future__ import annotations

import asyncio
import json

import pytest

from graphs.schedule import StepRefused
from tests.graphs.support import CountingClient, LedgerBudget, compiled, flow, node, of_type


def fan_out(branches: int) -> dict:
    """``branches`` model calls side by side, merged."""
    asks = [
        node(f"ask{i}", "llm", prompt=f"Topic {i}: {{{{ q }}}}", max_tokens=20)
        for i in range(branches)
    ]
    return flow(
        node("q", "input", name="q"),
        *asks,
        node("all", "merge"),
        node("out", "output", name="answers"),
        edges=[
            *[("q", "value", f"ask{i}", "q") for i in range(branches)],
            *[(f"ask{i}", "text", "all", f"a{i}") for i in range(branches)],
            ("all", "value", "out", "value"),
        ],
    )


def test_a_fan_out_pauses_before_the_call_past_its_budget_and_resumes_once_raised():
    client = CountingClient()
    # Each call reserves 4 prompt tokens + 20 max_tokens; three of them fit in 80, not four.
    budget = LedgerBudget(budget_usd=80)
    flow_ = compiled(fan_out(4), model_client=client, budget=budget, max_concurrency=1)
    events: list[dict] = []
    result = asyncio.run(flow_.run({"q": "tea"}, events.append))

    assert result.status == "waiting"
    assert len(client.prompts) == 3 and budget.calls == ["ask0", "ask1", "ask2"]
    [paused] = of_type(events, "run_paused")
    assert paused["node"] == "ask3" and paused["needed_usd"] == 24
    assert paused["spent_usd"] == budget.spent_usd
    assert paused["remaining_usd"] == 80 - budget.spent_usd
    state = json.loads(json.dumps(result.state))
    assert state["waiting"]["ask3"]["kind"] == "budget"

    budget.budget_usd = 200
    more: list[dict] = []
    resumed = asyncio.run(
        flow_.resume_budget(state, 200, {"user": "bob"}, more.append, seq=events[-1]["seq"])
    )
    assert resumed.status == "succeeded"
    # Only the paused call was made: the three that finished were not paid again.
    assert len(client.prompts) == 4 and budget.calls[3:] == ["ask3"]
    assert [e["type"] for e in more[:2]] == ["run_resumed", "node_resumed"]
    assert more[0]["budget_usd"] == 200 and more[0]["nodes"] == ["ask3"]
    assert [e["node"] for e in of_type(more, "node_started")] == ["ask3", "all", "out"]
    assert more[0]["seq"] == events[-1]["seq"] + 1
    assert len(resumed.outputs["answers"]) == 4
    with pytest.raises(StepRefused, match="not paused for its budget"):
        asyncio.run(flow_.resume_budget(resumed.state, 300, {"user": "bob"}))


def test_a_map_item_past_the_budget_parks_the_map():
    client = CountingClient()
    doc = flow(
        node("xs", "input", name="xs"),
        node(
            "each",
            "map",
            flow=flow(
                node("item", "input", name="item"),
                node("ask", "llm", prompt="{{ item }}", max_tokens=10),
                node("out", "output", name="text"),
                edges=[("item", "value", "ask", "item"), ("ask", "text", "out", "value")],
            ),
            concurrency=1,
        ),
        node("out", "output", name="results"),
        edges=[("xs", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    budget = LedgerBudget(budget_usd=12)  # one call of 11 fits, not two
    events: list[dict] = []
    result = asyncio.run(
        compiled(doc, model_client=client, budget=budget).run(
            {"xs": ["a", "b", "c"]}, events.append
        )
    )
    assert result.status == "waiting"
    assert result.state["waiting"]["each"]["kind"] == "budget"
    assert [e["node"] for e in of_type(events, "run_paused")] == ["each"]
    assert client.prompts == ["a"]


def test_without_a_budget_every_call_goes_ahead():
    client = CountingClient()
    result = asyncio.run(compiled(fan_out(3), model_client=client).run({"q": "tea"}))
    assert result.status == "succeeded" and len(client.prompts) == 3
