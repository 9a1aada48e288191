"""The ``parse`` node through the JSON API: saved, checked, run, its value recorded."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.webapp.test_api import JSON, api, auth, example, offline  # noqa: F401 - fixtures
from webapp import execution
from webapp.flows import services
from webapp.flows.models import Flow


def parse_flow(**config) -> dict:
    return {
        "graph": {"name": "Parse a reply"},
        "nodes": [
            {"id": "reply", "type": "input", "config": {"name": "reply"}},
            {"id": "read", "type": "parse", "config": config},
            {"id": "out", "type": "output", "config": {"name": "value"}},
        ],
        "edges": [
            {"source": "reply", "target": "read", "source_port": "value", "target_port": "text"},
            {"source": "read", "target": "out", "source_port": "value", "target_port": "value"},
        ],
    }


REPLY = "Scores:\nalice: 7\nbob: 9\n"


@pytest.mark.django_db(transaction=True)
async def test_a_run_started_through_the_api_records_the_parsed_value(
    async_client, alice, alice_token
):
    pattern = r"(?P<name>\w+): (?P<score>\d+)"
    flow = await _create(alice, parse_flow(mode="regex", pattern=pattern, matches="all"))
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"reply": REPLY}},
        content_type=JSON,
        headers=headers,
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    await execution.driver().wait_idle()

    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "succeeded", body["error"]
    assert body["outputs"] == {
        "value": [{"name": "alice", "score": "7"}, {"name": "bob", "score": "9"}]
    }
    events = (await async_client.get(f"/api/runs/{run_id}/events", headers=headers)).json()
    [read] = [e for e in events["items"] if e["type"] == "node_finished" and e["node"] == "read"]
    assert read["output"]["value"][1] == {"name": "bob", "score": "9"}


@pytest.mark.django_db(transaction=True)
async def test_a_reply_that_does_not_parse_fails_the_run_saying_what_was_expected(
    async_client, alice, alice_token
):
    flow = await _create(alice, parse_flow(mode="json"))
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"reply": "I would rather not."}},
        content_type=JSON,
        headers=headers,
    )
    run_id = response.json()["id"]
    await execution.driver().wait_idle()
    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "failed"
    assert body["error"].startswith("node 'read' failed: no JSON value found: expected an object")


@pytest.mark.django_db(transaction=True)
async def test_a_failed_runs_error_names_the_node_by_its_label_with_its_key(
    async_client, alice, alice_token
):
    doc = parse_flow(mode="json")
    doc["nodes"][1]["label"] = "Read the reply"
    flow = await _create(alice, doc)
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"reply": "I would rather not."}},
        content_type=JSON,
        headers=headers,
    )
    run_id = response.json()["id"]
    await execution.driver().wait_idle()
    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["error"].startswith('node "Read the reply" (read) failed: no JSON value found')


@pytest.mark.django_db(transaction=True)
async def test_the_orchestrator_example_runs_through_the_api(async_client, alice, alice_token):
    flow = await _create(alice, example("orchestrator"))
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {}}, content_type=JSON, headers=headers
    )
    run_id = response.json()["id"]
    await execution.driver().wait_idle()
    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "succeeded", body["error"]
    assert len(body["outputs"]["results"]) == 2


def test_a_pattern_re2_cannot_run_is_saved_as_a_problem_naming_the_node(api):  # noqa: F811
    graph = parse_flow(mode="regex", pattern="(?P<a>x+)(?=!)")
    response = api.post("/api/flows", {"name": "lookahead", "graph": graph})
    # Unfinished work is kept; the problem stops a run.
    assert response.status_code == 201
    [problem] = response.json()["problems"]
    assert problem["node"] == "read"
    assert "config.pattern: regex '(?P<a>x+)(?=!)' cannot be used: lookahead" in problem["text"]


async def _create(owner, document: dict) -> Flow:
    return await sync_to_async(services.create)(owner, document["graph"]["name"], document)
