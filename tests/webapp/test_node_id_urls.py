"""Node ids cannot steer URLs: finding 1 of the hardening issue.

A node id like ``../../../teams/4/delete`` once made "Re-run from this node" POST to
``/teams/4/delete/`` with the viewer's CSRF token. Ids are identifiers now, checked by the
engine on every document, and routes take them as one segment of that character set.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from django.urls import NoReverseMatch, reverse

from webapp.flows import services
from webapp.flows.models import FlowVersion
from webapp.runs.models import Run, RunEvent
from webapp.teams.models import Team

pytestmark = pytest.mark.django_db

EVIL = "../../../teams/4/delete"

GRAPH = {
    "graph": {"name": "greet"},
    "nodes": [
        {"id": "who", "type": "input", "config": {"name": "who"}},
        {"id": "greet", "type": "template", "config": {"template": "Hi {{ who }}"}},
        {"id": "out", "type": "output", "config": {"name": "greeting"}},
    ],
    "edges": [
        {"source": "who", "target": "greet", "source_port": "value", "target_port": "who"},
        {"source": "greet", "target": "out", "source_port": "text", "target_port": "value"},
    ],
}


def with_node_id(graph: dict, old: str, new: str) -> dict:
    doc = copy.deepcopy(graph)
    for node in doc["nodes"]:
        if node["id"] == old:
            node["id"] = new
    for edge in doc["edges"]:
        for end in ("source", "target"):
            if edge[end] == old:
                edge[end] = new
    return doc


@pytest.fixture
def flow(alice):
    return services.create(alice, "Greeter", GRAPH)


def test_saving_a_node_id_that_is_a_path_is_refused_and_nothing_is_stored(api, flow):
    before = flow.versions.count()
    answer = api("alice").put(
        f"/api/flows/{flow.pk}",
        {"graph": with_node_id(GRAPH, "greet", EVIL), "base_version": flow.current().number},
    )
    assert answer.status_code == 400
    assert "must be an identifier" in json.dumps(answer.json())
    assert flow.versions.count() == before


def test_creating_or_importing_a_flow_with_a_path_node_id_is_refused(api):
    bad = with_node_id(GRAPH, "greet", EVIL)
    assert api("alice").post("/api/flows", {"name": "x", "graph": bad}).status_code == 400
    imported = api("alice").post("/api/flows/import", {"document": bad})
    assert imported.status_code == 400, imported.content


@pytest.mark.parametrize("port", ["../x", "a b", "x/y", "", "<b>"])
def test_port_names_outside_the_identifier_set_are_refused(api, flow, port):
    doc = copy.deepcopy(GRAPH)
    doc["edges"][0]["target_port"] = port
    answer = api("alice").put(
        f"/api/flows/{flow.pk}", {"graph": doc, "base_version": flow.current().number}
    )
    assert answer.status_code == 400


def test_routes_take_a_node_id_as_one_identifier_segment():
    assert reverse("run_rerun_from", args=[7, "greet_2"]) == "/runs/7/rerun-from/greet_2/"
    for bad in (EVIL, "a/b", "..", "a b"):
        with pytest.raises(NoReverseMatch):
            reverse("run_rerun_from", args=[7, bad])
        with pytest.raises(NoReverseMatch):
            reverse("run_node", args=[7, bad])


def test_a_legacy_run_with_a_path_node_id_renders_no_url_that_leaves_its_run(client, flow):
    """A run recorded before the rule (its version stored as it was) is still safe to open."""
    team = Team.objects.create(name="Victims")
    legacy = with_node_id(GRAPH, "greet", EVIL.replace("4", str(team.pk)))
    FlowVersion.objects.filter(pk=flow.current().pk).update(graph=legacy)
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=flow.owner, status="failed"
    )
    events = [
        {"type": "run_started", "inputs": {}},
        {"type": "node_started", "node": legacy["nodes"][1]["id"], "iteration": 1},
        {"type": "node_failed", "node": legacy["nodes"][1]["id"], "iteration": 1, "error": "x"},
        {"type": "run_finished", "status": "failed", "outputs": {}},
    ]
    for seq, event in enumerate(events, 1):
        RunEvent.objects.create(run=run, seq=seq, type=event["type"], payload={"seq": seq, **event})
    Run.objects.filter(pk=run.pk).update(last_seq=len(events))
    client.force_login(flow.owner)
    for name in ("run_detail", "run_steps"):
        html = client.get(reverse(name, args=[run.pk])).content.decode()
        targets = re.findall(r'(?:href|action|hx-get|hx-post)="([^"]*)"', html)
        assert targets, name
        assert not [t for t in targets if "delete" in t or ".." in t], (name, targets)
    assert client.post(f"/runs/{run.pk}/rerun-from/{EVIL}/").status_code == 404
    assert Team.objects.filter(pk=team.pk).exists()


def test_the_api_refuses_a_rerun_from_a_node_id_outside_the_set(api, flow, alice):
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, status="succeeded"
    )
    answer = api("alice").post(f"/api/runs/{run.pk}/rerun-from", {"node": EVIL})
    assert answer.status_code in (400, 404, 422)
    assert Run.objects.count() == 1
