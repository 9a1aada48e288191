"""Warnings (``graphs.validation.warnings``) in the web API: a save, a create and the
editor's check tell them; they never refuse a save the way problems do."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from webapp.flows import services

EXAMPLES = Path(__file__).parents[2] / "examples"


def two_entry_loop() -> dict:
    """A generator and a grader that both read the topic from outside their loop."""
    nodes = [
        {"id": "topic", "type": "input", "config": {"name": "topic"}},
        {"id": "gen", "type": "template", "config": {"template": "{{ topic }} {{ feedback }}"}},
        {
            "id": "grade",
            "type": "template",
            "config": {"template": "{{ topic }} {{ joke }}", "max_iterations": 3},
        },
        {"id": "out", "type": "output", "config": {"name": "out"}},
    ]
    edges = [
        ("topic", "gen", "value", "topic"),
        ("topic", "grade", "value", "topic"),
        ("gen", "grade", "text", "joke"),
        ("grade", "gen", "text", "feedback"),
        ("grade", "out", "text", "value"),
    ]
    return {
        "graph": {"name": "Two entries"},
        "nodes": nodes,
        "edges": [
            {"source": s, "target": t, "source_port": sp, "target_port": tp}
            for s, t, sp, tp in edges
        ],
    }


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Two entries", two_entry_loop(), team=team)


def test_a_save_with_a_warning_is_stored_and_the_answer_names_the_node(api, flow):
    response = api("bob").put(
        f"/api/flows/{flow.pk}", {"graph": two_entry_loop(), "base_version": 1}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 2
    [warning] = body["warnings"]
    assert warning["node"] == "gen"
    assert "2 nodes that take inputs from outside it (gen, grade)" in warning["message"]
    assert warning["text"].startswith("node 'gen': ")


def test_setting_initial_on_the_loop_back_edge_answers_no_warnings(api, flow):
    graph = two_entry_loop()
    graph["edges"][3]["initial"] = ""
    response = api("alice").put(f"/api/flows/{flow.pk}", {"graph": graph, "base_version": 1})
    assert response.status_code == 200
    assert response.json()["warnings"] == []


def test_creating_a_flow_answers_its_warnings(api):
    response = api("dave").post("/api/flows", {"name": "Mine", "graph": two_entry_loop()})
    assert response.status_code == 201
    assert [w["node"] for w in response.json()["warnings"]] == ["gen"]


def test_the_editors_check_gives_problems_and_warnings_without_storing(api, flow):
    graph = two_entry_loop()
    graph["nodes"][3]["config"] = {}  # the output's name is required
    response = api("carol").post("/api/editor/validate", {"graph": graph})
    assert response.status_code == 200
    body = response.json()
    assert [(p["node"], p["message"]) for p in body["problems"]] == [
        ("out", "config.name is required")
    ]
    assert [w["node"] for w in body["warnings"]] == ["gen"]
    flow.refresh_from_db()
    assert flow.version == 1


def test_the_check_of_a_document_of_the_wrong_shape_is_a_problem_document(api):
    graph = two_entry_loop()
    graph["edges"][0]["append"] = "yes"
    response = api("dave").post("/api/editor/validate", {"graph": graph})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "invalid_flow"
    assert body["problems"][0]["edge"] == ["topic", "gen", 0]
    assert body["problems"][0]["message"] == "'append' must be true or false"


def test_the_check_needs_a_signed_in_user(client):
    response = client.post(
        "/api/editor/validate",
        json.dumps({"graph": two_entry_loop()}),
        content_type="application/json",
    )
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/problem+json")


def test_a_refused_save_is_still_a_problem_document(api, flow):
    graph = copy.deepcopy(two_entry_loop())
    # Not well-formed (an unknown node type): refused, where unfinished work is saved.
    graph["nodes"].append({"id": "ghost", "type": "no_such_type"})
    response = api("alice").put(f"/api/flows/{flow.pk}", {"graph": graph, "base_version": 1})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_flow"


def test_the_examples_open_without_warnings(api):
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.stem in ("agent_flow", "subflow"):
            # They call a flow by its file's name; a user's copy calls their copy of it, by
            # id (test_subflow_runs runs that copy).
            continue
        body = api("dave").post("/api/editor/validate", {"graph": json.loads(path.read_text())})
        assert body.json() == {"problems": [], "warnings": []}, path.name


def test_restoring_or_importing_a_version_answers_its_warnings(api, flow):
    fixed = two_entry_loop()
    fixed["edges"][3]["initial"] = ""
    saved = api("alice").put(f"/api/flows/{flow.pk}", {"graph": fixed, "base_version": 1})
    assert saved.json() == {"version": 2, "problems": [], "warnings": []}
    restored = api("bob").post(f"/api/flows/{flow.pk}/versions/1/restore", {"base_version": 2})
    assert restored.status_code == 201
    assert [w["node"] for w in restored.json()["warnings"]] == ["gen"]
    imported = api("bob").post(
        f"/api/flows/{flow.pk}/import", {"document": two_entry_loop(), "base_version": 3}
    )
    assert imported.status_code == 201, imported.content
    assert [w["node"] for w in imported.json()["warnings"]] == ["gen"]


def test_the_editor_page_brings_the_saved_versions_warnings(client, bob, flow):
    client.force_login(bob)
    data = client.get(f"/flows/{flow.pk}/").context["editor_data"]
    assert [w["node"] for w in data["warnings"]] == ["gen"]
    assert data["urls"]["validate"] == "/api/editor/validate"
