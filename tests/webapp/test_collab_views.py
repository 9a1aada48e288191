"""The editor's answers when a teammate saved while you have unsaved changes: the banner,
the difference, and "save mine as a copy". None of them can change the flow itself."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from webapp.flows import services
from webapp.flows.models import Flow

JSON = "application/json"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def with_node(doc: dict, node_id: str = "note") -> dict:
    """`doc` with one more template node, wired from the input."""
    return {
        **doc,
        "nodes": [
            *doc["nodes"],
            {"id": node_id, "type": "template", "config": {"template": "{{ input }}!"}},
        ],
        "edges": [
            *doc["edges"],
            {"source": "input", "target": node_id, "source_port": "value", "target_port": "input"},
        ],
    }


@pytest.fixture
def saved_by_bob(team_flow, bob) -> Flow:
    """Bob saved v2 (a renamed output) on top of v1."""
    graph = services.starter_graph("Team flow", output_name="answer")
    services.save(team_flow, bob, graph, 1, message="rename the output")
    team_flow.refresh_from_db()
    return team_flow


def test_the_banner_names_who_saved_which_version_and_offers_three_ways(alice, saved_by_bob):
    response = client_for(alice).get(f"/flows/{saved_by_bob.pk}/collab/saved/2/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong>bob</strong> saved v2 while you were editing" in html
    assert "rename the output" in html
    for label in ("Save mine as a copy", "View the difference", "Discard mine, load theirs"):
        assert label in html


def test_the_banner_for_ones_own_save_in_another_tab_says_so(bob, saved_by_bob):
    html = client_for(bob).get(f"/flows/{saved_by_bob.pk}/collab/saved/2/").content.decode()
    assert "You saved v2 in another tab" in html


def test_the_banner_is_a_404_for_strangers_and_missing_versions(alice, dave, saved_by_bob):
    assert client_for(dave).get(f"/flows/{saved_by_bob.pk}/collab/saved/2/").status_code == 404
    assert client_for(alice).get(f"/flows/{saved_by_bob.pk}/collab/saved/9/").status_code == 404


def test_the_difference_lists_what_is_only_in_yours_and_only_in_theirs(alice, saved_by_bob):
    mine = with_node(services.starter_graph("Team flow"))
    response = client_for(alice).post(
        f"/flows/{saved_by_bob.pk}/collab/diff/", {"doc": json.dumps(mine), "version": "2"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "From v2 (bob) to yours" in html
    assert 'data-diff-node="note"' in html and "Only in yours" in html
    # Bob renamed the output node: his is only in v2, the old one only in mine.
    assert 'data-diff-node="answer"' in html and "Only in v2" in html


def test_the_difference_needs_a_document_and_a_version(alice, saved_by_bob):
    url = f"/flows/{saved_by_bob.pk}/collab/diff/"
    client = client_for(alice)
    assert client.post(url, {"doc": "not json", "version": "2"}).status_code == 400
    assert client.post(url, {"doc": "{}", "version": "x"}).status_code == 400
    assert client.post(url, {"doc": "{}", "version": "9"}).status_code == 404


def test_save_mine_as_a_copy_makes_a_new_flow_and_leaves_the_team_flow_alone(
    alice, bob, saved_by_bob
):
    mine = with_node(services.starter_graph("Team flow"))
    response = client_for(alice).post(
        f"/flows/{saved_by_bob.pk}/collab/copy/", {"doc": json.dumps(mine), "version": "1"}
    )
    assert response.status_code == 200
    copy = Flow.objects.get(name="Team flow (my copy)")
    assert copy.owner == alice and copy.team is None
    assert copy.name == "Team flow (my copy)"
    version = copy.current()
    assert [n["id"] for n in version.graph["nodes"]] == ["input", "output", "note"]
    assert version.message == "my changes to “Team flow” v1, kept as a copy"
    assert f'href="/flows/{copy.pk}/"' in response.content.decode()
    saved_by_bob.refresh_from_db()
    assert saved_by_bob.version == 2
    assert saved_by_bob.current().graph["nodes"][1]["id"] == "answer"


def test_a_copy_of_an_invalid_document_is_refused_with_its_problems(alice, saved_by_bob):
    broken = {**services.starter_graph("Team flow"), "edges": []}
    broken["nodes"].append({"id": "x", "type": "nope", "config": {}})
    response = client_for(alice).post(
        f"/flows/{saved_by_bob.pk}/collab/copy/", {"doc": json.dumps(broken), "version": "1"}
    )
    assert response.status_code == 200
    assert "Not copied" in response.content.decode()
    assert not Flow.objects.filter(name="Team flow (my copy)").exists()


def test_only_editors_make_copies_and_strangers_get_404(carol, dave, saved_by_bob):
    url = f"/flows/{saved_by_bob.pk}/collab/copy/"
    doc = json.dumps(services.starter_graph("x"))
    assert client_for(carol).post(url, {"doc": doc}).status_code == 403
    assert client_for(dave).post(url, {"doc": doc}).status_code == 404


def test_after_the_banner_a_save_from_the_old_base_is_still_refused(alice, saved_by_bob):
    client = client_for(alice)
    mine = with_node(services.starter_graph("Team flow"))
    client.post(f"/flows/{saved_by_bob.pk}/collab/copy/", {"doc": json.dumps(mine), "version": "1"})
    client.post(f"/flows/{saved_by_bob.pk}/collab/diff/", {"doc": json.dumps(mine), "version": 2})
    body = {"graph": mine, "base_version": 1}
    response = client.put(f"/api/flows/{saved_by_bob.pk}", body, content_type=JSON)
    assert response.status_code == 409
    assert response.json()["current_version"] == 2
    saved_by_bob.refresh_from_db()
    assert saved_by_bob.version == 2


def test_the_editor_has_the_presence_slot_and_collab_script(carol, team_flow):
    html = client_for(carol).get(f"/flows/{team_flow.pk}/").content.decode()
    assert 'data-testid="presence"' in html
    assert f'data-socket-path="/ws/flows/{team_flow.pk}/"' in html
    assert "js/collab.js" in html


def test_a_copy_keeps_the_name_this_tab_gave_the_flow(bob, saved_by_bob):
    mine = services.starter_graph("Bob's idea")
    client_for(bob).post(
        f"/flows/{saved_by_bob.pk}/collab/copy/", {"doc": json.dumps(mine), "version": "1"}
    )
    copy = Flow.objects.get(name="Bob's idea (my copy)")
    assert copy.current().graph["graph"]["name"] == "Bob's idea (my copy)"
