"""A condition router through the web API: refused when an expression is broken, and run
by the web app's executor like any other node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webapp import execution
from webapp.execution import plans
from webapp.flows.models import Flow

JSON = "application/json"
EXAMPLES = Path(__file__).parents[2] / "examples"


def evaluate() -> dict:
    """The evaluate example; offline its evaluator passes every draft, so the condition
    here sends the first draft back and accepts the one written with its feedback."""
    doc = json.loads((EXAMPLES / "evaluate.json").read_text())
    gate = next(n for n in doc["nodes"] if n["id"] == "gate")
    gate["config"]["conditions"][0]["expression"] = (
        'verdict == "PASS" and "earlier attempts" in input.draft'
    )
    return doc


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def test_a_broken_condition_is_saved_as_a_problem_and_refused_a_run(client, alice_token):
    doc = evaluate()
    gate = next(n for n in doc["nodes"] if n["id"] == "gate")
    gate["config"]["conditions"][0]["expression"] = "verdict =="
    headers = {"Authorization": f"Bearer {alice_token}"}
    response = client.post(
        "/api/flows", {"name": "broken", "graph": doc}, content_type=JSON, headers=headers
    )
    # Unfinished work is kept; the problem names the node, the rule and the route.
    assert response.status_code == 201
    expected = [
        (
            "gate",
            "node 'gate': rule 1 (route 'accept'): syntax error: unexpected end of the expression",
        )
    ]
    assert [(p["node"], p["text"]) for p in response.json()["problems"]] == expected
    flow = Flow.objects.get(name="broken")
    run = client.post(f"/api/flows/{flow.pk}/runs", {}, content_type=JSON, headers=headers)
    assert run.status_code == 400
    assert [(p["node"], p["text"]) for p in run.json()["problems"]] == expected
    assert run.json()["detail"].startswith("version 1 has 1 problem to fix before it can run")


@pytest.mark.django_db(transaction=True)
async def test_a_run_follows_the_route_its_condition_chooses(async_client, alice_token):
    headers = {"Authorization": f"Bearer {alice_token}"}
    created = await async_client.post(
        "/api/flows", {"name": "evaluate", "graph": evaluate()}, content_type=JSON, headers=headers
    )
    assert created.status_code == 201
    response = await async_client.post(
        f"/api/flows/{created.json()['id']}/runs", {}, content_type=JSON, headers=headers
    )
    assert response.status_code == 201
    run_id = response.json()["id"]
    await execution.driver().wait_idle()

    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "succeeded", body["error"]
    events = (await async_client.get(f"/api/runs/{run_id}/events", headers=headers)).json()
    gate = [e for e in events["items"] if e["type"] == "node_finished" and e["node"] == "gate"]
    assert [list(e["output"]) for e in gate] == [["revise"], ["accept"]]
    assert [e["detail"].get("rule") for e in gate] == [None, 1]
    assert body["outputs"]["result"] == gate[-1]["output"]["accept"]["draft"]
