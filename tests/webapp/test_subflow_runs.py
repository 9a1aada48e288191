"""Flows that call saved flows, in the web app: child runs on the in-process driver, who may
call what, recursion, cancel, cost, and where a child run shows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from django.test import override_settings

from tests.graphs.support import flow, node
from tests.support.wait import wait_for
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.flows.models import Flow
from webapp.runs.models import Run, RunEvent
from webapp.teams.models import Membership

pytestmark = pytest.mark.django_db(transaction=True)
EXAMPLES = Path(__file__).parents[2] / "examples"
PRICES = {"offline": {"input": 1000.0, "output": 1000.0}}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def shout() -> dict:
    """text -> LOUD TEXT! (a template: no model)."""
    return flow(
        node("text", "input", name="text"),
        node("up", "template", template="{{ text | upper }}!"),
        node("loud", "output", name="loud"),
        edges=[("text", "value", "up", "text"), ("up", "text", "loud", "value")],
        name="shout",
    )


def asking() -> dict:
    """text -> the offline model's answer to it (costs tokens)."""
    return flow(
        node("text", "input", name="text"),
        node("ask", "llm", prompt="Answer: {{ text }}"),
        node("loud", "output", name="loud"),
        edges=[("text", "value", "ask", "text"), ("ask", "text", "loud", "value")],
        name="asking",
    )


def calling(child_id: int, **config) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("call", "subflow", flow=str(child_id), **config),
        node("out", "output", name="a"),
        edges=[("q", "value", "call", "text"), ("call", "loud", "out", "value")],
        name="caller",
    )


def relay(child_id: int) -> dict:
    """A flow shaped as shout (text in, loud out) that passes both through `child_id`."""
    doc = calling(child_id)
    doc["nodes"][0]["config"]["name"] = "text"
    doc["nodes"][2]["config"]["name"] = "loud"
    return doc


def start(api, who: str, flow_id: int, inputs: dict):
    return api(who).post(f"/api/flows/{flow_id}/runs", {"inputs": inputs})


def finish(answer) -> Run:
    assert answer.status_code == 201, answer.json()
    asyncio.run(execution.driver().wait_idle())
    return Run.objects.get(pk=answer.json()["id"])


def events(run: Run) -> list[dict]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("payload", flat=True))


def test_a_subflow_runs_its_flow_as_a_child_run_linked_both_ways(api, alice, client):
    child_flow = services.create(alice, "shout", shout())
    parent_flow = services.create(alice, "caller", calling(child_flow.pk))
    parent = finish(start(api, "alice", parent_flow.pk, {"q": "hey"}))
    assert (parent.status, parent.outputs) == ("succeeded", {"a": "HEY!"})
    child = Run.objects.get(parent=parent)
    assert (child.kind, child.parent_node, child.flow_id) == ("subflow", "call", child_flow.pk)
    assert (child.status, child.outputs, child.started_by) == ("succeeded", {"loud": "HEY!"}, alice)
    # Its own log, numbered without gaps by the one writer.
    seqs = [e["seq"] for e in events(child)]
    assert (
        seqs == list(range(1, child.last_seq + 1)) and events(child)[-1]["type"] == "run_finished"
    )
    [finished] = [e for e in events(parent) if e["type"] == "node_finished" and e["node"] == "call"]
    assert finished["child_runs"] == [child.pk]
    shown = api("alice").get(f"/api/runs/{child.pk}").json()
    assert (shown["kind"], shown["parent"], shown["parent_node"]) == ("subflow", parent.pk, "call")
    client.force_login(alice)
    page = client.get(f"/runs/{child.pk}/").content.decode()
    assert "called by node <code>call</code> of" in page and f"/runs/{parent.pk}/" in page
    parent_page = client.get(f"/runs/{parent.pk}/").content.decode()
    assert 'data-testid="run-subflows"' in parent_page and f"/runs/{child.pk}/" in parent_page
    inspector = client.get(f"/runs/{parent.pk}/nodes/call/").content.decode()
    assert f'<a href="/runs/{child.pk}/">run #{child.pk}</a>' in inspector


@override_settings(MODEL_PRICES=PRICES)
def test_the_childs_usage_and_cost_are_in_the_parents(api, alice):
    child_flow = services.create(alice, "asking", asking())
    parent_flow = services.create(alice, "caller", calling(child_flow.pk))
    parent = finish(start(api, "alice", parent_flow.pk, {"q": "why is the sky blue"}))
    child = Run.objects.get(parent=parent)
    assert child.output_tokens > 0 and child.cost_usd > 0
    assert (parent.input_tokens, parent.output_tokens) == (child.input_tokens, child.output_tokens)
    assert parent.cost_usd == child.cost_usd
    [finished] = [e for e in events(parent) if e["type"] == "node_finished" and e["node"] == "call"]
    assert finished["cost_usd"] == float(child.cost_usd)


def test_a_stranger_cannot_call_a_flow_or_learn_it_exists(api, alice, dave):
    private = services.create(alice, "shout", shout())
    missing = private.pk + 1000
    for reference in (private.pk, missing):
        # Saved unfinished, the same problem either way; and it cannot run.
        answer = api("dave").post("/api/flows", {"name": "mine", "graph": calling(reference)})
        assert answer.status_code == 201
        [problem] = answer.json()["problems"]
        assert problem["text"] == f"node 'call': no flow {reference} that you may run"
        run = start(api, "dave", answer.json()["id"], {"q": "x"})
        assert run.status_code == 400
        assert [p["text"] for p in run.json()["problems"]] == [problem["text"]]


def test_the_runners_access_is_checked_when_the_run_starts(api, alice, bob, team):
    child_flow = services.create(alice, "shout", shout(), team=team)
    parent_flow = services.create(bob, "bob's caller", calling(child_flow.pk))
    assert finish(start(api, "bob", parent_flow.pk, {"q": "x"})).status == "succeeded"
    Membership.objects.filter(team=team, user=bob).delete()
    answer = start(api, "bob", parent_flow.pk, {"q": "x"})
    assert answer.status_code == 400
    texts = [p["text"] for p in answer.json()["problems"]]
    assert texts == [f"node 'call': no flow {child_flow.pk} that you may run"]
    assert Run.objects.filter(flow=parent_flow).count() == 1  # nothing stored


def test_a_flow_calling_itself_is_refused_and_a_longer_cycle_fails_the_run(api, alice):
    a = services.create(alice, "a", shout())
    answer = api("alice").put(f"/api/flows/{a.pk}", {"graph": calling(a.pk), "base_version": 1})
    # Kept as version 2 with the problem, which a run of it is refused for.
    assert answer.status_code == 200
    [problem] = answer.json()["problems"]
    assert problem["text"] == f"node 'call': flow {a.pk} calls itself: {a.pk} -> {a.pk}"
    assert start(api, "alice", a.pk, {"q": "x"}).status_code == 400
    services.save(a, alice, shout(), 2)
    b = services.create(alice, "b", relay(a.pk))
    services.save(a, alice, relay(b.pk), 3)
    run = finish(start(api, "alice", b.pk, {"text": "round"}))
    assert run.status == "failed"
    assert f"flow {b.pk} calls itself: {b.pk} -> {a.pk} -> {b.pk}" in run.error


@override_settings(SUBFLOW_MAX_DEPTH=1)
def test_nesting_deeper_than_the_setting_fails_saying_so(api, alice):
    leaf = services.create(alice, "leaf", shout())
    middle = services.create(alice, "middle", relay(leaf.pk))
    top = services.create(alice, "top", calling(middle.pk))
    run = finish(start(api, "alice", top.pk, {"q": "deep"}))
    assert run.status == "failed"
    assert "subflows nest at most 1 deep" in run.error


def test_cancelling_the_parent_cancels_the_child(api, alice, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_OFFLINE_DELAY_MS", "300")
    plans.engine_services.cache_clear()
    child_flow = services.create(alice, "asking", asking())
    parent_flow = services.create(alice, "caller", calling(child_flow.pk))
    answer = start(api, "alice", parent_flow.pk, {"q": "one two three four five six"})
    parent_id = answer.json()["id"]
    wait_for(
        lambda: RunEvent.objects.filter(run__parent_id=parent_id, type="node_delta").exists(),
        message="the child's model to stream",
    )
    assert api("alice").post(f"/api/runs/{parent_id}/cancel").status_code == 202
    parent = finish(answer)
    child = Run.objects.get(parent=parent)
    assert (parent.status, child.status) == ("cancelled", "cancelled")
    assert events(child)[-1]["type"] == "run_finished"


def test_examples_call_the_users_own_copies_and_the_agent_uses_its_flow_tool(api, alice):
    # Every new user gets the examples (give_examples_to): the agent's tool is their copy.
    agent = Flow.objects.get(owner=alice, name__startswith="Support agent")
    classify = Flow.objects.get(owner=alice, name="Triage support tickets")
    assert agent.current().graph["nodes"][1]["config"]["tools"] == [f"flow:{classify.pk}"]
    run = finish(start(api, "alice", agent.pk, {}))
    assert run.status == "succeeded", run.error
    child = Run.objects.get(parent=run)
    assert (child.flow_id, child.parent_node, child.status) == (classify.pk, "agent", "succeeded")
    assert json.dumps(child.outputs)[1:40] in run.outputs["reply"].replace('\\"', '"')
