"""Draft and published: saving never changes what runs from outside the editor; publishing
does, and every change of it is on record. Alice owns the team's flow, bob edits it, carol
views it, dave is a stranger."""

from __future__ import annotations

import re

import pytest

from webapp.flows import services
from webapp.flows.models import Publication
from webapp.runs.models import Run

JSON = "application/json"


def greeting(word: str) -> dict:
    return {
        "graph": {"name": "Greet"},
        "nodes": [
            {"id": "who", "type": "input", "config": {"name": "who"}},
            {"id": "say", "type": "template", "config": {"template": word + " {{ who }}"}},
            {"id": "out", "type": "output", "config": {"name": "greeting"}},
        ],
        "edges": [
            {"source": "who", "target": "say", "source_port": "value", "target_port": "who"},
            {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


@pytest.fixture
def flow(alice, team):
    """The team's flow at version 2 ("Hi"), with version 1 ("Hello") before it."""
    flow = services.create(alice, "Greet", greeting("Hello"), team=team)
    services.save(flow, alice, greeting("Hi"), 1)
    return flow


def started_version(answer) -> int:
    assert answer.status_code == 201, answer.content
    return Run.objects.get(pk=answer.json()["id"]).flow_version.number


def test_with_nothing_published_an_api_run_runs_the_newest_version(api, flow):
    answer = api("bob").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"who": "x"}})
    assert started_version(answer) == 2
    assert answer.json()["version"] == 2


def test_an_api_run_runs_the_published_version_and_saving_does_not_change_it(api, flow, alice):
    assert api("bob").put(f"/api/flows/{flow.pk}/published", {"version": 1}).status_code == 200
    services.save(flow, alice, greeting("Hey"), 2)
    answer = api("bob").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"who": "x"}})
    assert started_version(answer) == 1
    detail = api("carol").get(f"/api/flows/{flow.pk}").json()
    assert (detail["version"], detail["published_version"]) == (3, 1)


def test_a_run_may_name_its_version_or_the_newest(api, flow):
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    runs = f"/api/flows/{flow.pk}/runs"
    assert started_version(api("bob").post(runs, {"inputs": {"who": "x"}, "version": 2})) == 2
    newest = {"inputs": {"who": "x"}, "version": "current"}
    assert started_version(api("bob").post(runs, newest)) == 2
    missing = api("bob").post(runs, {"inputs": {"who": "x"}, "version": 9})
    assert missing.status_code == 404
    assert Run.objects.count() == 2


def test_the_editor_runs_what_it_shows_and_records_that_it_did(client, alice, flow):
    client.force_login(alice)
    # Django's test client does not enforce CSRF: a session request as the editor sends it.
    client.put(f"/api/flows/{flow.pk}/published", {"version": 1}, content_type=JSON)
    answer = client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"who": "x"}, "version": "current"},
        content_type=JSON,
    )
    assert started_version(answer) == 2
    assert Run.objects.get().trigger == "editor"


def test_an_api_run_records_that_the_api_started_it(api, flow):
    answer = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"who": "x"}})
    run_id = answer.json()["id"]
    assert api("carol").get(f"/api/runs/{run_id}").json()["trigger"] == "api"


def test_unpublishing_goes_back_to_the_newest_and_both_are_on_record(api, flow):
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    assert api("bob").delete(f"/api/flows/{flow.pk}/published").status_code == 204
    answer = api("bob").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"who": "x"}})
    assert started_version(answer) == 2
    history = api("carol").get(f"/api/flows/{flow.pk}/publications").json()["items"]
    assert [(p["version"], p["by"]) for p in history] == [(None, "bob"), (1, "alice")]


def test_publishing_the_published_version_again_records_nothing(api, flow):
    for _ in range(2):
        api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 2})
    assert Publication.objects.count() == 1


def test_the_version_list_marks_the_published_one(api, flow):
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    items = api("carol").get(f"/api/flows/{flow.pk}/versions").json()["items"]
    assert [(v["number"], v["current"], v["published"]) for v in items] == [
        (2, True, False),
        (1, False, True),
    ]


def test_a_viewer_cannot_publish_and_a_stranger_cannot_tell_the_flow_exists(api, flow):
    viewer = api("carol").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    stranger = api("dave").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    missing = api("dave").put("/api/flows/999999/published", {"version": 1})
    assert viewer.status_code == 403
    assert (stranger.status_code, stranger.json()["detail"]) == (
        missing.status_code,
        missing.json()["detail"],
    )
    assert api("carol").delete(f"/api/flows/{flow.pk}/published").status_code == 403
    assert api("dave").get(f"/api/flows/{flow.pk}/publications").status_code == 404
    assert not Publication.objects.exists()


def test_publishing_a_version_the_flow_does_not_have_is_a_404(api, flow):
    answer = api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 7})
    assert answer.status_code == 404
    assert not Publication.objects.exists()


# The history page


def page(client, user, flow) -> str:
    client.force_login(user)
    return client.get(f"/flows/{flow.pk}/versions/").content.decode()


def test_an_editor_publishes_from_the_history_page_and_sees_it_marked(client, bob, flow):
    client.force_login(bob)
    answer = client.post(f"/flows/{flow.pk}/versions/1/publish/")
    assert answer.status_code == 302
    text = page(client, bob, flow)
    row = re.search(r'<tr data-version="1".*?</tr>', text, re.S).group(0)
    assert 'data-testid="published-badge"' in row
    assert 'data-testid="publish"' not in row  # already published
    assert "v1 published by bob" in text
    flow.refresh_from_db()
    assert flow.published.number == 1


def test_unpublishing_from_the_page_is_on_record(client, alice, flow):
    client.force_login(alice)
    client.post(f"/flows/{flow.pk}/versions/2/publish/")
    client.post(f"/flows/{flow.pk}/versions/unpublish/")
    text = page(client, alice, flow)
    assert "Nothing is published" in text
    assert "unpublished by alice" in text


def test_a_viewer_sees_no_publish_button_and_cannot_post_one(client, carol, dave, flow):
    assert 'data-testid="publish"' not in page(client, carol, flow)
    assert client.post(f"/flows/{flow.pk}/versions/1/publish/").status_code == 403
    client.force_login(dave)
    assert client.post(f"/flows/{flow.pk}/versions/1/publish/").status_code == 404
    assert client.post(f"/flows/{flow.pk}/versions/unpublish/").status_code == 404
    assert not Publication.objects.exists()


def test_the_run_history_marks_runs_started_from_outside_the_editor(client, api, alice, flow):
    api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"who": "x"}})
    client.force_login(alice)
    client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"who": "y"}, "version": "current"},
        content_type=JSON,
    )
    text = client.get("/runs/").content.decode()
    badges = re.findall(r'data-testid="trigger"[^>]*>([^<]*)<', text)
    assert badges == ["API"]  # the editor's run is the unmarked, usual kind
