"""Unfinished work is saved (issue 14, item 2): every well-formed document becomes a kept
version listing its problems; the problems stop runs (editor, API, webhook) and
publication, never a save. Documents that are not well-formed are refused, nothing stored.

Alice owns the team flow, bob edits it, carol views it, dave is a stranger."""

from __future__ import annotations

import json

import pytest

from tests.webapp.test_webhooks import deliver
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion
from webapp.runs.models import Run


def unfinished() -> dict:
    """input -> llm whose prompt is empty, and a template whose {{ context }} has no edge."""
    return {
        "graph": {"name": "Half built"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}},
            {"id": "ask", "type": "llm", "config": {"prompt": ""}},
            {"id": "fmt", "type": "template", "config": {"template": "{{ q }} {{ context }}"}},
            {"id": "out", "type": "output", "config": {"name": "out"}},
        ],
        "edges": [
            {"source": "q", "target": "fmt", "source_port": "value", "target_port": "q"},
            {"source": "fmt", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


def stored() -> tuple[int, int, int]:
    return Flow.objects.count(), FlowVersion.objects.count(), Run.objects.count()


def texts(problems: list[dict]) -> list[str]:
    return [p["text"] for p in problems]


EXPECTED = [
    "node 'ask': the prompt is required: write what to ask the model",
    "node 'fmt': template variable {{ context }} has no port: connect an edge into 'context'",
]


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Half built", services.starter_graph("Half built"), team=team)


@pytest.mark.parametrize("persona", ["alice", "bob"])
def test_an_editor_saves_unfinished_work_as_a_version_listing_its_problems(api, flow, persona):
    saved = api(persona).put(f"/api/flows/{flow.pk}", {"graph": unfinished(), "base_version": 1})
    assert saved.status_code == 200, saved.content
    assert saved.json()["version"] == 2
    assert texts(saved.json()["problems"]) == EXPECTED
    assert texts(flow.versions.get(number=2).problems) == EXPECTED
    # Whoever may see the flow sees the problems: the flow, its history, the version.
    detail = api("carol").get(f"/api/flows/{flow.pk}").json()
    assert detail["version"] == 2 and texts(detail["problems"]) == EXPECTED
    history = api("carol").get(f"/api/flows/{flow.pk}/versions").json()["items"]
    assert [(v["number"], len(v["problems"])) for v in history] == [(2, 2), (1, 0)]
    one = api("carol").get(f"/api/flows/{flow.pk}/versions/2").json()
    assert texts(one["problems"]) == EXPECTED


def test_a_viewer_or_a_stranger_saves_nothing_even_unfinished(api, flow):
    before = stored()
    body = {"graph": unfinished(), "base_version": 1}
    assert api("carol").put(f"/api/flows/{flow.pk}", body).status_code == 403
    assert api("dave").put(f"/api/flows/{flow.pk}", body).status_code == 404
    assert stored() == before


def test_a_version_with_problems_is_refused_a_run_naming_them(api, flow):
    api("bob").put(f"/api/flows/{flow.pk}", {"graph": unfinished(), "base_version": 1})
    before = stored()
    for persona in ("alice", "bob"):
        run = api(persona).post(f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "hi"}})
        assert run.status_code == 400
        body = run.json()
        assert body["code"] == "invalid_flow"
        assert body["detail"].startswith("version 2 has 2 problems to fix before it can run:")
        assert texts(body["problems"]) == EXPECTED
    # Carol may not run it at all; dave may not know it exists.
    assert api("carol").post(f"/api/flows/{flow.pk}/runs", {}).status_code == 403
    assert api("dave").post(f"/api/flows/{flow.pk}/runs", {}).status_code == 404
    assert stored() == before
    # The earlier version, finished, still runs when named.
    older = api("alice").post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"input": "hi"}, "version": 1}
    )
    assert older.status_code == 201, older.content


def test_a_refused_runs_detail_names_the_nodes_by_their_labels(api, flow):
    graph = unfinished()
    graph["nodes"][1]["label"] = "Ask the model"
    api("bob").put(f"/api/flows/{flow.pk}", {"graph": graph, "base_version": 1})
    run = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "hi"}})
    assert run.status_code == 400
    assert run.json()["detail"] == (
        "version 2 has 2 problems to fix before it can run: "
        'node "Ask the model" (ask): the prompt is required: write what to ask the model; '
        "node 'fmt': template variable {{ context }} has no port: connect an edge into 'context'"
    )


def test_a_version_with_problems_cannot_be_published(api, flow):
    api("alice").put(f"/api/flows/{flow.pk}", {"graph": unfinished(), "base_version": 1})
    refused = api("bob").put(f"/api/flows/{flow.pk}/published", {"version": 2})
    assert refused.status_code == 400
    assert "version 2 has 2 problems" in refused.json()["detail"]
    assert texts(refused.json()["problems"]) == EXPECTED
    flow.refresh_from_db()
    assert flow.published is None
    assert api("bob").put(f"/api/flows/{flow.pk}/published", {"version": 1}).status_code == 200


def test_a_webhook_of_a_version_with_problems_starts_nothing(client, api, flow):
    made = api("bob").post(f"/api/flows/{flow.pk}/webhooks", {"name": "CI"}).json()
    api("bob").put(f"/api/flows/{flow.pk}", {"graph": unfinished(), "base_version": 1})
    before = stored()
    answer = deliver(client, made["url"], b'{"q": "hi"}', made["secret"])
    assert answer.status_code == 400
    assert "version 2 has 2 problems" in answer.json()["detail"]
    assert "the prompt is required" in answer.json()["detail"]
    assert stored() == before


def test_fixing_the_problems_makes_the_next_version_run(api, flow):
    api("alice").put(f"/api/flows/{flow.pk}", {"graph": unfinished(), "base_version": 1})
    fixed = unfinished()
    fixed["nodes"][1]["config"]["prompt"] = "Context for {{ q }}"
    fixed["edges"] += [
        {"source": "q", "target": "ask", "source_port": "value", "target_port": "q"},
        {"source": "ask", "target": "fmt", "source_port": "text", "target_port": "context"},
    ]
    saved = api("alice").put(f"/api/flows/{flow.pk}", {"graph": fixed, "base_version": 2})
    assert saved.status_code == 200 and saved.json()["problems"] == []
    run = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "hi"}})
    assert run.status_code == 201, run.content


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (
            lambda d: d["nodes"][0]["config"].update(name="my input"),
            "config.name: use only letters (A-Z, a-z), digits (0-9) and _, "
            "not starting with a digit",
        ),
        (lambda d: d["nodes"][1].update(type="llmm"), "unknown node type 'llmm'"),
        (lambda d: d["nodes"][1]["config"].update(max_tokens="many"), "config.max_tokens"),
        (lambda d: d["nodes"][1]["config"].update(temprature=1), "unknown config key"),
        (lambda d: d["nodes"][1]["config"].update(prompt="x" * 1_000_001), "at most"),
        (lambda d: d.update(nodes="none"), "'nodes' must be a list"),
    ],
    ids=["identifier charset", "unknown type", "wrong type", "unknown key", "size cap", "shape"],
)
def test_a_document_that_is_not_well_formed_is_refused_and_nothing_stored(
    api, flow, change, phrase
):
    document = unfinished()
    change(document)
    before = stored()
    answer = api("alice").put(f"/api/flows/{flow.pk}", {"graph": document, "base_version": 1})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_flow"
    assert any(phrase in text for text in texts(answer.json()["problems"])), answer.json()
    # No raw pydantic pattern in what a person reads.
    assert "String should match pattern" not in json.dumps(answer.json())
    assert stored() == before
    flow.refresh_from_db()
    assert flow.version == 1


def test_the_editors_check_lists_the_problems_a_save_would_keep(api, flow):
    checked = api("bob").post("/api/editor/validate", {"graph": unfinished()})
    assert checked.status_code == 200
    assert texts(checked.json()["problems"]) == EXPECTED


def test_a_schedule_of_a_version_with_problems_is_refused_naming_them(api, flow):
    api("bob").put(f"/api/flows/{flow.pk}", {"graph": unfinished(), "base_version": 1})
    schedule = {"cron": "30 2 * * *", "timezone": "UTC", "inputs": {"q": "hi"}}
    answer = api("bob").post(f"/api/flows/{flow.pk}/schedules", schedule)
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("version 2 has 2 problems")
    assert texts(answer.json()["problems"]) == EXPECTED
    assert api("carol").post(f"/api/flows/{flow.pk}/schedules", schedule).status_code == 403


def test_a_document_without_edges_is_well_formed_and_saved(api, flow):
    lone = {"graph": {"name": "Lone"}, "nodes": [{"id": "q", "type": "input", "config": {}}]}
    saved = api("alice").put(f"/api/flows/{flow.pk}", {"graph": lone, "base_version": 1})
    assert saved.status_code == 200, saved.content
    assert flow.versions.get(number=2).graph["edges"] == []
