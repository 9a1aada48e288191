"""Where people see what waits for them (issue 16): the approvals inbox, the header's
count, the waiting node's card on the run page, and the run's waiting status in the
history and the timeline. In-process driver, real database.

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import re

import pytest

from tests.webapp.test_approvals import flow, idle, waiting_run
from webapp.runs.models import Run

__all__ = ["flow", "waiting_run"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def page(client, user, path: str) -> str:
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def badge(html: str) -> str | None:
    found = re.search(r'data-testid="approvals-badge">(\d+)<', html)
    return found.group(1) if found else None


def test_the_inbox_lists_an_editors_waiting_approval_with_its_form(waiting_run, client, bob):
    html = page(client, bob, "/approvals/")
    item = html[html.index('data-testid="inbox-item"') :]
    assert f'data-run="{waiting_run.pk}"' in item and 'data-node="ask"' in item
    assert "Refund 12 EUR?" in item and "Refund" in item and f"run #{waiting_run.pk}" in item
    assert "waiting since" in item and "<time" in item
    # The run page's form, posting to the run page's answer path, marked as the inbox's.
    assert f'hx-post="/runs/{waiting_run.pk}/approvals/ask/"' in item
    assert 'name="place" value="inbox"' in item and 'name="f_note"' in item
    assert 'value="approve"' in item and 'value="reject"' in item


def test_the_inbox_shows_the_nodes_label_when_it_has_one(flow, alice, bob, client):
    graph = flow.current().graph
    for node in graph["nodes"]:
        if node["id"] == "ask":
            node["label"] = "Refund desk"
    version = flow.current()
    version.graph = graph
    version.save()
    run = Run.objects.create(flow=flow, flow_version=version, started_by=alice, inputs={"q": "3"})
    from webapp import execution

    execution.start(run.pk)
    idle()
    assert "Refund desk" in page(client, bob, "/approvals/")


def test_carol_a_viewer_sees_no_form_and_dave_a_stranger_sees_nothing(
    waiting_run, client, carol, dave
):
    for user in (carol, dave):
        html = page(client, user, "/approvals/")
        assert 'data-testid="inbox-empty"' in html
        assert "Refund 12 EUR?" not in html and 'name="f_note"' not in html
        assert badge(html) is None


def test_anonymous_visitors_are_sent_to_log_in(client):
    for path in ("/approvals/", "/approvals/badge/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_answering_from_the_inbox_resumes_the_run_and_the_count_goes(waiting_run, client, bob):
    html = page(client, bob, "/")
    assert badge(html) == "1"
    client.force_login(bob)
    missing = client.post(
        f"/runs/{waiting_run.pk}/approvals/ask/", {"action": "approve", "place": "inbox"}
    )
    text = missing.content.decode()
    assert 'data-testid="approval-item"' in text and "is required" in text
    assert 'name="f_note"' in text, "the form stays to be answered again"
    answered = client.post(
        f"/runs/{waiting_run.pk}/approvals/ask/",
        {"action": "approve", "place": "inbox", "f_note": "fine"},
    )
    assert 'data-testid="approval-answered"' in answered.content.decode()
    assert answered["HX-Trigger"] == "switchyard-approvals-changed"
    idle()
    waiting_run.refresh_from_db()
    assert waiting_run.outputs == {"answer": "approved by bob: fine"}
    assert badge(client.get("/approvals/badge/").content.decode()) is None
    assert 'data-testid="inbox-empty"' in page(client, bob, "/approvals/")
    again = client.post(
        f"/runs/{waiting_run.pk}/approvals/ask/",
        {"action": "approve", "place": "inbox", "f_note": "twice"},
    )
    assert "does not wait" in again.content.decode() and 'name="f_note"' not in (
        again.content.decode()
    )


def test_a_viewer_posting_from_the_inbox_path_is_refused(waiting_run, client, carol, dave):
    body = {"action": "approve", "place": "inbox", "f_note": "x"}
    client.force_login(carol)
    assert client.post(f"/runs/{waiting_run.pk}/approvals/ask/", body).status_code == 403
    client.force_login(dave)
    assert client.post(f"/runs/{waiting_run.pk}/approvals/ask/", body).status_code == 404
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.WAITING


def test_the_badge_counts_for_editors_only(waiting_run, client, alice, bob, carol):
    for user in (alice, bob):
        client.force_login(user)
        html = client.get("/approvals/badge/").content.decode()
        assert badge(html) == "1" and 'href="/approvals/"' in html and "every 5s" in html
    client.force_login(carol)
    html = client.get("/approvals/badge/").content.decode()
    # Nothing for her: no link and no count, only the poller, which asks again.
    assert badge(html) is None and 'href="/approvals/"' not in html and "every 5s" in html


def test_the_waiting_nodes_card_holds_its_form_for_editors_only(waiting_run, client, bob, carol):
    html = page(client, bob, f"/runs/{waiting_run.pk}/nodes/ask/")
    assert 'data-testid="node-approval"' in html and 'name="place" value="node"' in html
    assert 'name="f_note"' in html
    html = page(client, carol, f"/runs/{waiting_run.pk}/nodes/ask/")
    assert 'data-testid="node-approval"' in html and 'name="f_note"' not in html
    assert "The flow's editors can answer it." in html
    # Another node's card, or this one in a replay's past, has no form.
    assert "node-approval" not in page(client, bob, f"/runs/{waiting_run.pk}/nodes/q/")
    assert "node-approval" not in page(client, bob, f"/runs/{waiting_run.pk}/nodes/ask/?upto=3")


def test_a_waiting_run_says_waiting_in_the_history_the_timeline_and_its_page(
    waiting_run, client, alice
):
    history = page(client, alice, "/runs/")
    row_html = rf'<tr data-run="{waiting_run.pk}" data-status="(\w+)">(.*?)</tr>'
    row = re.search(row_html, history, re.S)
    assert row and row.group(1) == "waiting"
    assert '<span class="badge waiting">waiting</span>' in row.group(2)
    assert 'href="/approvals/" data-testid="inbox-link"' in history
    timeline = page(client, alice, f"/runs/{waiting_run.pk}/timeline/")
    assert re.search(r'class="tl-bar st-waiting[^"]*"', timeline)
    detail = page(client, alice, f"/runs/{waiting_run.pk}/")
    assert re.search(r'data-run-status data-status="waiting"', detail)
    assert "Waiting</span>" in detail


def test_waiting_has_its_own_colour_in_light_and_both_dark_blocks():
    from pathlib import Path

    tokens = (Path(__file__).parents[2] / "static/css/tokens.css").read_text()
    for name in ("--waiting", "--waiting-soft"):
        values = re.findall(rf"^\s*{name}: (#[0-9a-f]{{6}});", tokens, re.M)
        # :root, the system's dark preference, the chosen dark: the two dark ones agree.
        assert len(values) == 3 and values[1] == values[2] != values[0], (name, values)
    root = tokens.split("@media")[0]
    light = dict(re.findall(r"^  (--[a-z-]+): (#[0-9a-f]{6});", root, re.M))
    assert light["--waiting"] not in (light["--running"], light["--warn"], light["--accent"])


def test_the_inbox_costs_the_same_queries_for_one_waiting_run_or_three(
    waiting_run, flow, alice, bob, client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webapp import execution

    client.force_login(bob)
    with CaptureQueriesContext(connection) as one:
        client.get("/approvals/")
    for _ in range(2):
        run = Run.objects.create(
            flow=flow, flow_version=flow.current(), started_by=alice, inputs={"q": "1"}
        )
        execution.start(run.pk)
        idle()
    with CaptureQueriesContext(connection) as three:
        html = client.get("/approvals/").content.decode()
    assert html.count('data-testid="inbox-item"') == 3
    assert len(three.captured_queries) == len(one.captured_queries)
