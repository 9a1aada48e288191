"""Versions: the history page, a version drawn read-only, diffs of two versions, restore
(a new version, through the same compare-and-set as saves), the save message, and the
same through the API, for each role: alice owns, bob edits, carol views, dave is a stranger."""

from __future__ import annotations

import copy
import json
import re
import threading

import pytest
from django.db import connection
from django.test import Client

from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion
from webapp.flows.versions import service as versions

JSON = "application/json"


def greeting(template: str = "Hi {{ input }}", label: str = "") -> dict:
    """The starter flow with a template between its input and its output."""
    doc = services.starter_graph("Team flow")
    say = {"id": "say", "type": "template", "config": {"template": template}}
    if label:
        say["label"] = label
    say["position"] = {"x": 150, "y": 100}
    doc["nodes"].append(say)
    doc["edges"] = [
        {"source": "input", "target": "say", "source_port": "value", "target_port": "input"},
        {"source": "say", "target": "output", "source_port": "text", "target_port": "value"},
    ]
    return doc


@pytest.fixture
def history(team_flow, alice, bob) -> Flow:
    """v1 (alice): input -> output; v2 (bob): a template in between; v3 (alice): the
    template reworded and labelled."""
    services.save(team_flow, bob, greeting(), 1, message="add a greeting")
    services.save(team_flow, alice, greeting("Hello {{ input }}!", "Say hello"), 2)
    team_flow.refresh_from_db()
    return team_flow


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class Api:
    """A client speaking as one user through a bearer token."""

    def __init__(self, user):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {ApiToken.issue(user, 'tests')[1]}"}

    def get(self, path: str):
        return self.client.get(path, headers=self.headers)

    def post(self, path: str, data=None):
        return self.client.post(path, data, content_type=JSON, headers=self.headers)

    def put(self, path: str, data=None):
        return self.client.put(path, data, content_type=JSON, headers=self.headers)


def page_data(response, element_id: str = "editor-data") -> dict:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, f"no #{element_id} on the page"
    return json.loads(match.group(1))


def stored() -> tuple[int, int]:
    return Flow.objects.count(), FlowVersion.objects.count()


# The history page


def test_the_history_lists_every_version_with_author_time_and_message(history, carol):
    response = logged_in(carol).get(f"/flows/{history.pk}/versions/")
    assert response.status_code == 200
    rows = re.findall(r'<tr data-version="(\d+)"', response.content.decode())
    assert rows == ["3", "2", "1"]
    text = response.content.decode()
    assert "add a greeting" in text
    assert ">bob<" in text and ">alice<" in text
    assert "<time datetime=" in text
    assert f'href="/flows/{history.pk}/versions/diff/?a=1&amp;b=2"' in text


@pytest.mark.parametrize("persona", ["alice", "bob"])
def test_editors_see_restore_on_older_versions(history, persona, request):
    text = logged_in(request.getfixturevalue(persona)).get(f"/flows/{history.pk}/versions/")
    assert text.content.decode().count('data-testid="restore"') == 2  # v1 and v2, not v3


def test_a_viewer_sees_no_restore_and_a_stranger_gets_404(history, carol, dave):
    assert (
        'data-testid="restore"'
        not in logged_in(carol).get(f"/flows/{history.pk}/versions/").content.decode()
    )
    for path in (
        f"/flows/{history.pk}/versions/",
        f"/flows/{history.pk}/versions/1/",
        f"/flows/{history.pk}/versions/diff/?a=1&b=3",
        f"/flows/{history.pk}/versions/latest/",
    ):
        assert logged_in(dave).get(path).status_code == 404, path
    assert (
        logged_in(dave)
        .post(f"/flows/{history.pk}/versions/1/restore/", {"base_version": 3})
        .status_code
        == 404
    )


def test_a_logged_out_visitor_is_sent_to_log_in(history):
    response = Client().get(f"/flows/{history.pk}/versions/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# One version, read-only on the canvas


def test_a_version_opens_read_only_on_the_canvas_with_its_own_graph(history, carol):
    response = logged_in(carol).get(f"/flows/{history.pk}/versions/2/")
    assert response.status_code == 200
    data = page_data(response)
    assert data["editable"] is False
    assert data["version"] == 2
    assert data["doc"] == history.versions.get(number=2).graph
    assert data["flowId"] != history.pk  # no editor drafts for this view
    assert set(data["ports"]) == {"input", "output", "say"}
    text = response.content.decode()
    assert "add a greeting" in text
    assert "latest is v3" in text
    assert "js/canvas/editor.js" in text


def test_a_missing_version_is_a_404(history, alice):
    assert logged_in(alice).get(f"/flows/{history.pk}/versions/9/").status_code == 404


# Diffs


def test_the_diff_lists_nodes_and_edges_added_and_removed(history, carol):
    response = logged_in(carol).get(f"/flows/{history.pk}/versions/diff/?a=1&b=2")
    assert response.status_code == 200
    text = response.content.decode()
    assert "1 node added, 2 edges added, 1 removed" in text
    assert 'data-testid="node-added"' in text and 'data-diff-node="say"' in text
    assert text.count('data-testid="edge-added"') == 2
    assert text.count('data-testid="edge-removed"') == 1
    assert "<code>input.value</code> → <code>output.value</code>" in text


def test_the_diff_names_changed_config_keys_with_before_and_after(history, carol):
    text = logged_in(carol).get(f"/flows/{history.pk}/versions/diff/?a=2&b=3").content.decode()
    assert 'data-testid="node-changed"' in text
    keys = re.findall(r'data-testid="changed-key"><code>([^<]+)</code>', text)
    assert keys == ["label", "config.template"]
    assert '<pre class="vs-before" aria-label="before">Hi {{ input }}</pre>' in text
    assert '<pre class="vs-after" aria-label="after">Hello {{ input }}!</pre>' in text
    assert '<pre class="vs-after" aria-label="after">Say hello</pre>' in text


def test_the_diff_canvas_draws_b_with_removed_nodes_and_edges_marked(history, carol):
    response = logged_in(carol).get(f"/flows/{history.pk}/versions/diff/?a=3&b=1")
    data = page_data(response)
    marks = page_data(response, "version-marks")
    assert data["editable"] is False
    assert [n["id"] for n in data["doc"]["nodes"]] == ["input", "output", "say"]
    assert marks["nodes"] == {"say": "removed"}
    kinds = sorted((e["source"], e["target"], e["kind"]) for e in marks["edges"])
    assert kinds == [
        ("input", "output", "added"),
        ("input", "say", "removed"),
        ("say", "output", "removed"),
    ]
    # The removed edges are drawn too, so the canvas can grey them.
    assert len(data["doc"]["edges"]) == 3
    assert "js/versions.js" in response.content.decode()


def test_the_diff_of_a_version_with_itself_says_no_changes(history, carol):
    text = logged_in(carol).get(f"/flows/{history.pk}/versions/diff/?a=2&b=2").content.decode()
    assert 'data-testid="no-changes"' in text


def test_the_diff_defaults_to_the_newest_against_the_one_before(history, carol):
    response = logged_in(carol).get(f"/flows/{history.pk}/versions/diff/")
    assert page_data(response, "version-marks")["nodes"] == {"say": "changed"}


def test_a_diff_with_a_missing_or_bad_version_is_refused(history, carol):
    client = logged_in(carol)
    assert client.get(f"/flows/{history.pk}/versions/diff/?a=1&b=7").status_code == 404
    assert client.get(f"/flows/{history.pk}/versions/diff/?a=x&b=2").status_code == 400


# Restore


def test_restore_saves_the_old_graph_as_a_new_version(history, bob):
    response = logged_in(bob).post(
        f"/flows/{history.pk}/versions/1/restore/", {"base_version": 3}, follow=True
    )
    assert response.status_code == 200
    assert "Restored version 1 as version 4." in response.content.decode()
    history.refresh_from_db()
    assert history.version == 4
    newest = history.versions.get(number=4)
    assert newest.graph == history.versions.get(number=1).graph
    assert newest.message == "restored v1"
    assert newest.author == bob
    assert history.versions.count() == 4  # nothing rewritten


def test_a_viewer_cannot_restore(history, carol):
    response = logged_in(carol).post(
        f"/flows/{history.pk}/versions/1/restore/", {"base_version": 3}
    )
    assert response.status_code == 403
    assert history.versions.count() == 3


def test_a_restore_from_a_stale_page_changes_nothing_and_says_so(history, alice):
    response = logged_in(alice).post(
        f"/flows/{history.pk}/versions/1/restore/", {"base_version": 2}, follow=True
    )
    assert "Not restored: someone saved version 3" in response.content.decode()
    history.refresh_from_db()
    assert history.version == 3


def test_restore_then_a_save_from_the_same_base_gives_one_version_and_one_409(history, alice, bob):
    restored = Api(alice).post(f"/api/flows/{history.pk}/versions/1/restore", {"base_version": 3})
    assert restored.status_code == 201
    assert restored.json() == {"version": 4, "problems": [], "warnings": []}
    saved = Api(bob).put(
        f"/api/flows/{history.pk}", {"graph": greeting("Bob's {{ input }}"), "base_version": 3}
    )
    assert saved.status_code == 409
    assert saved.json()["current_version"] == 4
    assert history.versions.count() == 4


def test_a_save_then_a_restore_from_the_same_base_gives_one_version_and_one_409(
    history, alice, bob
):
    saved = Api(bob).put(
        f"/api/flows/{history.pk}", {"graph": greeting("Bob's {{ input }}"), "base_version": 3}
    )
    assert saved.status_code == 200
    restored = Api(alice).post(f"/api/flows/{history.pk}/versions/1/restore", {"base_version": 3})
    assert restored.status_code == 409
    assert restored.json()["current_version"] == 4
    assert (
        history.versions.get(number=4).graph["nodes"][2]["config"]["template"]
        == "Bob's {{ input }}"
    )


@pytest.mark.django_db(transaction=True)
def test_a_restore_racing_a_save_in_two_threads_leaves_one_winner(team, alice, bob):
    flow = services.create(alice, "Race", services.starter_graph("Race"), team=team)
    start = threading.Barrier(2, timeout=30)
    results: dict[str, int] = {}
    as_alice, as_bob = Api(alice), Api(bob)

    def restore():
        start.wait()
        try:
            results["restore"] = as_alice.post(
                f"/api/flows/{flow.pk}/versions/1/restore", {"base_version": 1}
            ).status_code
        finally:
            connection.close()

    def save():
        start.wait()
        try:
            results["save"] = as_bob.put(
                f"/api/flows/{flow.pk}", {"graph": greeting(), "base_version": 1}
            ).status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=restore), threading.Thread(target=save)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = sorted(results.values())
    assert winners in ([200, 409], [201, 409]), results
    assert FlowVersion.objects.filter(flow=flow).count() == 2


def test_restoring_a_version_the_engine_now_refuses_stores_nothing(history, alice):
    # A version stored before a rule tightened (written directly: saves would refuse it).
    broken = copy.deepcopy(history.versions.get(number=2).graph)
    broken["nodes"][2]["type"] = "retired_type"
    FlowVersion.objects.filter(flow=history, number=2).update(graph=broken)
    response = Api(alice).post(f"/api/flows/{history.pk}/versions/2/restore", {"base_version": 3})
    assert response.status_code == 400
    assert "unknown node type 'retired_type'" in response.json()["problems"][0]["text"]
    assert history.versions.count() == 3


def test_restore_service_goes_through_the_compare_and_set(history, alice):
    with pytest.raises(services.StaleVersion):
        versions.restore(history, alice, 1, base_version=1)
    assert versions.restore(history, alice, 2, base_version=3) == 4


# The save message and the editor's version line


def test_a_save_may_carry_a_message(history, bob):
    response = Api(bob).put(
        f"/api/flows/{history.pk}",
        {"graph": greeting("Yo {{ input }}"), "base_version": 3, "message": "  shorter  "},
    )
    assert response.status_code == 200
    assert history.versions.get(number=4).message == "shorter"


def test_a_save_message_over_500_characters_is_refused(history, bob):
    response = Api(bob).put(
        f"/api/flows/{history.pk}",
        {"graph": greeting(), "base_version": 3, "message": "x" * 501},
    )
    assert response.status_code == 422
    assert history.versions.count() == 3


def test_the_editor_shows_who_saved_last_and_links_the_history(history, carol, bob):
    text = logged_in(carol).get(f"/flows/{history.pk}/").content.decode()
    assert f'href="/flows/{history.pk}/versions/" data-testid="history"' in text
    assert re.search(r'class="vs-saved-by" title="Version 3 saved by alice[^>]*>alice, <time', text)
    assert f'href="/flows/{history.pk}/export/" data-testid="export"' in text
    # Only editors get the message box next to Save.
    assert 'data-testid="save-message"' not in text
    assert (
        'data-testid="save-message"' in logged_in(bob).get(f"/flows/{history.pk}/").content.decode()
    )


def test_the_version_line_is_asked_again_after_a_save(history, carol, bob):
    services.save(history, bob, greeting("again {{ input }}"), 3)
    response = logged_in(carol).get(f"/flows/{history.pk}/versions/latest/")
    assert response.status_code == 200
    assert re.search(r'class="vs-saved-by"[^>]*>bob, <time', response.content.decode())


# The API


def test_the_api_lists_versions_newest_first(history, carol):
    response = Api(carol).get(f"/api/flows/{history.pk}/versions")
    assert response.status_code == 200
    body = response.json()["items"]
    assert [(v["number"], v["author"], v["current"]) for v in body] == [
        (3, "alice", True),
        (2, "bob", False),
        (1, "alice", False),
    ]
    assert body[1]["message"] == "add a greeting"
    assert (
        Api(carol)
        .get(f"/api/flows/{history.pk}/versions?limit=1&offset=1")
        .json()["items"][0]["number"]
        == 2
    )


def test_the_api_returns_one_version_with_its_graph(history, carol):
    response = Api(carol).get(f"/api/flows/{history.pk}/versions/2")
    assert response.status_code == 200
    body = response.json()
    assert body["number"] == 2 and body["author"] == "bob" and not body["current"]
    assert body["graph"] == history.versions.get(number=2).graph
    assert Api(carol).get(f"/api/flows/{history.pk}/versions/8").status_code == 404


def test_the_api_diff_names_what_changed(history, carol):
    response = Api(carol).get(f"/api/flows/{history.pk}/versions/diff?a=2&b=3")
    assert response.status_code == 200
    body = response.json()
    assert (body["a"], body["b"], body["is_empty"]) == (2, 3, False)
    changed = body["nodes"]["changed"]
    assert [node["id"] for node in changed] == ["say"]
    assert changed[0]["changes"][1] == {
        "key": "config.template",
        "kind": "changed",
        "before": "Hi {{ input }}",
        "after": "Hello {{ input }}!",
    }
    added = Api(carol).get(f"/api/flows/{history.pk}/versions/diff?a=1&b=2").json()
    assert [node["id"] for node in added["nodes"]["added"]] == ["say"]
    assert len(added["edges"]["added"]) == 2 and len(added["edges"]["removed"]) == 1
    assert Api(carol).get(f"/api/flows/{history.pk}/versions/diff?a=1").status_code == 422
    assert Api(carol).get(f"/api/flows/{history.pk}/versions/diff?a=1&b=5").status_code == 404


@pytest.mark.parametrize(
    ("persona", "status"), [("alice", 201), ("bob", 201), ("carol", 403), ("dave", 404)]
)
def test_api_restore_by_role(history, persona, status, request):
    user = request.getfixturevalue(persona)
    response = Api(user).post(f"/api/flows/{history.pk}/versions/1/restore", {"base_version": 3})
    assert response.status_code == status
    assert history.versions.count() == (4 if status == 201 else 3)


@pytest.mark.parametrize(("persona", "status"), [("carol", 200), ("dave", 404)])
def test_api_reads_by_role(history, persona, status, request):
    api = Api(request.getfixturevalue(persona))
    for path in (
        f"/api/flows/{history.pk}/versions",
        f"/api/flows/{history.pk}/versions/1",
        f"/api/flows/{history.pk}/versions/diff?a=1&b=2",
    ):
        assert api.get(path).status_code == status, path


def test_a_stranger_gets_the_same_404_as_for_a_missing_flow(history, dave):
    api = Api(dave)
    missing = Flow.objects.order_by("-pk").first().pk + 100
    for flow_id in (history.pk, missing):
        listed = api.get(f"/api/flows/{flow_id}/versions")
        restore = api.post(f"/api/flows/{flow_id}/versions/1/restore", {"base_version": 3})
        assert listed.status_code == restore.status_code == 404
        assert listed.json() == restore.json()
        assert listed.json()["detail"] == "No such flow."


def test_restoring_a_missing_version_is_a_404_and_stores_nothing(history, alice):
    response = Api(alice).post(f"/api/flows/{history.pk}/versions/9/restore", {"base_version": 3})
    assert response.status_code == 404
    assert history.versions.count() == 3
