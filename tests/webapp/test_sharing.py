"""Sharing a flow: the owner's share panel, shares with people and teams, transfer of
ownership, read-only share links (public pages and their events) and the API for all of it.

Personas (tests/webapp/conftest.py): alice owns the team "Research" and its `team_flow`,
bob is the team's editor, carol its viewer, dave and charlie strangers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import graphs
from webapp.flows import access, services
from webapp.flows.models import Flow, FlowShare, ShareLink
from webapp.flows.sharing import service as sharing
from webapp.flows.sharing import views as share_views
from webapp.runs.eventlog import write_batch
from webapp.runs.models import Run, RunEvent
from webapp.runs.services import create_run
from webapp.teams.models import Membership, Role, Team

JSON = "application/json"
SECRET = "SECRET-INPUT-1234"

ECHO = {
    "graph": {"name": "Echo"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 0}},
        {
            "id": "say",
            "type": "llm",
            "config": {"prompt": "Repeat {{ q }}"},
            "position": {"x": 300, "y": 0},
        },
        {
            "id": "out",
            "type": "output",
            "config": {"name": "answer"},
            "position": {"x": 600, "y": 0},
        },
    ],
    "edges": [
        {"source": "q", "target": "say", "source_port": "value", "target_port": "q"},
        {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
    ],
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The engine runs on the offline model: deterministic, no network."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("SWITCHYARD_OFFLINE_DELAY_MS", raising=False)


def as_user(client, user):
    client.force_login(user)
    return client


def finished_run(flow: Flow, user, q: str = SECRET, name: str = "q") -> Run:
    """A run of the flow, executed by the real engine and recorded as the server records it."""
    run = create_run(flow, user, {name: q})
    events: list[dict] = []
    compiled = graphs.compile_flow(run.flow_version.graph)
    asyncio.run(compiled.run(run.inputs, sink=events.append))
    write_batch(run.pk, events)
    run.refresh_from_db()
    return run


@pytest.fixture
def echo(alice) -> Flow:
    return services.create(alice, "Echo", ECHO)


@pytest.fixture
def echo_run(echo, alice) -> Run:
    run = finished_run(echo, alice)
    assert run.status == "succeeded"
    return run


def htmx(client, method: str, url: str, data: dict | None = None):
    return getattr(client, method)(url, data or {}, headers={"HX-Request": "true"})


# ---- The share panel: owner only ------------------------------------------------------------


def panel_urls(flow: Flow, run: Run | None = None) -> list[tuple[str, str]]:
    urls = [
        ("get", reverse("flow_share", args=[flow.pk])),
        ("post", reverse("flow_share_create", args=[flow.pk])),
        ("post", reverse("flow_share_update", args=[flow.pk, 1])),
        ("post", reverse("flow_share_remove", args=[flow.pk, 1])),
        ("post", reverse("flow_transfer", args=[flow.pk])),
        ("post", reverse("flow_link_create", args=[flow.pk])),
        ("post", reverse("flow_link_revoke", args=[flow.pk, 1])),
    ]
    if run is not None:
        urls += [
            ("get", reverse("run_share_link", args=[run.pk])),
            ("post", reverse("run_share_link", args=[run.pk])),
        ]
    return urls


def test_the_share_panel_is_the_owners_403_for_team_members_404_for_strangers(
    client, team_flow, alice, bob, carol, dave
):
    run = finished_run(team_flow, alice, "x", name="input")
    for user, status in ((bob, 403), (carol, 403), (dave, 404)):
        as_user(client, user)
        for method, url in panel_urls(team_flow, run):
            data = {"who": "dave", "role": "editor", "team": "", "days": ""}
            assert getattr(client, method)(url, data).status_code == status, (user, url)
    assert not FlowShare.objects.exists()
    assert not ShareLink.objects.exists()
    assert Flow.objects.get(pk=team_flow.pk).team_id is not None


def test_the_editor_shows_the_share_button_to_owners_only(client, team_flow, alice, bob):
    share_url = reverse("flow_share", args=[team_flow.pk])
    assert (
        share_url
        in as_user(client, alice).get(reverse("flow_editor", args=[team_flow.pk])).content.decode()
    )
    assert (
        share_url
        not in as_user(client, bob)
        .get(reverse("flow_editor", args=[team_flow.pk]))
        .content.decode()
    )


def test_the_panel_is_a_partial_for_htmx_and_a_page_without(client, echo, alice):
    as_user(client, alice)
    partial = htmx(client, "get", reverse("flow_share", args=[echo.pk]))
    assert partial.templates[0].name == "flows/_share_panel.html"
    assert "<html" not in partial.content.decode()
    assert 'id="share-panel"' in partial.content.decode()
    page = client.get(reverse("flow_share", args=[echo.pk]))
    assert "<html" in page.content.decode()


# ---- Shares ---------------------------------------------------------------------------------


def accept(share: FlowShare) -> FlowShare:
    return sharing.accept_share(share.user, share.pk)


def test_sharing_with_a_person_gives_them_that_role_once_accepted_until_removed(
    client, echo, alice, dave
):
    as_user(client, alice)
    response = htmx(
        client,
        "post",
        reverse("flow_share_create", args=[echo.pk]),
        {"who": "dave", "role": "viewer"},
    )
    assert (
        "Shared with “dave” (viewer). If they have an account, the flow waits for them to "
        "accept it." in response.content.decode()
    )
    assert "(not accepted)" in response.content.decode()
    assert access.role_on_flow(dave, echo) is None

    share = accept(FlowShare.objects.get(flow=echo, user=dave))
    assert access.role_on_flow(dave, echo) == "viewer"
    panel = htmx(client, "get", reverse("flow_share", args=[echo.pk])).content.decode()
    assert "(not accepted)" not in panel

    htmx(client, "post", reverse("flow_share_update", args=[echo.pk, share.pk]), {"role": "editor"})
    assert access.role_on_flow(dave, echo) == "editor"

    htmx(client, "post", reverse("flow_share_remove", args=[echo.pk, share.pk]))
    assert access.role_on_flow(dave, echo) is None
    as_user(client, dave)
    assert client.get(reverse("flow_editor", args=[echo.pk])).status_code == 404


def test_sharing_again_with_the_same_name_changes_the_role(client, echo, alice, dave):
    as_user(client, alice)
    url = reverse("flow_share_create", args=[echo.pk])
    htmx(client, "post", url, {"who": "dave@example.com", "role": "viewer"})
    htmx(client, "post", url, {"who": "dave@example.com", "role": "editor"})
    assert list(FlowShare.objects.values_list("invitee", "user__username", "role")) == [
        ("dave@example.com", "dave", "editor")
    ]
    # Once accepted, the share shows the username, and sharing with it changes the role.
    accept(FlowShare.objects.get())
    htmx(client, "post", url, {"who": "dave", "role": "viewer"})
    assert list(FlowShare.objects.values_list("user__username", "role")) == [("dave", "viewer")]
    assert access.role_on_flow(dave, echo) == "viewer"


def test_shared_by_name_and_by_email_one_acceptance_settles_both(client, echo, alice, dave):
    as_user(client, alice)
    url = reverse("flow_share_create", args=[echo.pk])
    htmx(client, "post", url, {"who": "dave@example.com", "role": "viewer"})
    htmx(client, "post", url, {"who": "dave", "role": "editor"})
    assert sharing.pending_shares(dave).count() == 2
    accepted = accept(sharing.pending_shares(dave).get(invitee="dave"))
    assert list(FlowShare.objects.values_list("pk", "role")) == [(accepted.pk, "editor")]
    assert not sharing.pending_shares(dave).exists()


def test_sharing_with_a_team_reaches_its_members(client, echo, team, alice, carol):
    as_user(client, alice)
    htmx(
        client,
        "post",
        reverse("flow_share_create", args=[echo.pk]),
        {"team": team.pk, "role": "viewer"},
    )
    assert access.role_on_flow(carol, echo) == "viewer"
    response = as_user(client, carol).get(reverse("flow_list"))
    # Under the team it was shared with (marked shared), not in "Shared with me".
    by_title = {s["title"]: s["flows"] for s in response.context["spaces"]}
    assert [f.pk for f in by_title[team.name]] == [echo.pk]
    assert by_title[team.name][0].shared_with_team
    assert "Shared with me" not in by_title


def test_sharing_problems_are_shown_in_the_panel(client, echo, alice, dave):
    other = Team.objects.create(name="Not alice's")
    Membership.objects.create(team=other, user=dave, role=Role.OWNER)
    as_user(client, alice)
    url = reverse("flow_share_create", args=[echo.pk])
    for data, phrase in [
        ({"who": "", "role": "viewer"}, "Give a username or an e-mail address"),
        ({"who": "alice", "role": "viewer"}, "That is you: you have this flow already"),
        ({"who": "alice@example.com", "role": "viewer"}, "That is you"),
        ({"team": other.pk, "role": "viewer"}, "Choose one of your teams"),
        ({"who": "dave", "role": "owner"}, "Choose a person or a team"),
    ]:
        response = htmx(client, "post", url, data)
        assert response.status_code == 200
        assert phrase in response.content.decode(), data
    assert not FlowShare.objects.exists()


# ---- Transfer ---------------------------------------------------------------------------------


def test_transfer_to_a_person_who_accepted_a_share_puts_the_flow_in_their_space(
    client, echo, alice, dave
):
    accept(sharing.share_with_user(echo, alice, "dave", "viewer"))
    as_user(client, alice)
    response = htmx(client, "post", reverse("flow_transfer", args=[echo.pk]), {"who": "dave"})
    assert response["HX-Redirect"] == reverse("flow_list")  # alice no longer sees it
    echo.refresh_from_db()
    assert (echo.owner, echo.team) == (dave, None)
    assert access.role_on_flow(dave, echo) == "owner"
    assert access.role_on_flow(alice, echo) is None
    assert not FlowShare.objects.exists()  # his share: owning it says more


def test_a_personal_flow_goes_only_to_someone_who_can_open_it(client, echo, alice, dave):
    as_user(client, alice)
    url = reverse("flow_transfer", args=[echo.pk])
    sharing.share_with_user(echo, alice, "dave", "editor")  # not accepted: not enough
    refused = htmx(client, "post", url, {"who": "dave"})
    assert (
        "“dave” cannot take this flow: it goes only to someone who can open it already"
        in refused.content.decode()
    )
    assert Flow.objects.get(pk=echo.pk).owner == alice


def test_transfer_into_a_team_where_the_owner_edits(client, echo, team, alice, bob, carol, dave):
    FlowShare.objects.create(flow=echo, team=team, role="viewer", created_by=alice)
    as_user(client, alice)
    response = htmx(client, "post", reverse("flow_transfer", args=[echo.pk]), {"team": team.pk})
    assert response["HX-Redirect"] == reverse("flow_editor", args=[echo.pk])
    echo.refresh_from_db()
    assert echo.team == team
    assert not FlowShare.objects.filter(flow=echo).exists()  # the team's share is moot now
    assert [access.role_on_flow(u, echo) for u in (alice, bob, carol, dave)] == [
        "owner",
        "editor",
        "viewer",
        None,
    ]


def test_transfer_into_a_team_where_one_only_views_is_refused(client, team, bob, carol):
    flow = services.create(carol, "Carol's", services.starter_graph("Carol's"))
    as_user(client, carol)
    response = htmx(client, "post", reverse("flow_transfer", args=[flow.pk]), {"team": team.pk})
    assert "Choose a team where you are an editor or owner" in response.content.decode()
    assert Flow.objects.get(pk=flow.pk).team is None


def test_a_team_flow_moves_only_to_a_members_personal_space(client, team_flow, alice, bob, dave):
    as_user(client, alice)
    refused = htmx(client, "post", reverse("flow_transfer", args=[team_flow.pk]), {"who": "dave"})
    assert (
        "“dave” cannot take this flow: a team&#x27;s flow goes only to one of "
        "Research&#x27;s members." in refused.content.decode()
    )
    htmx(client, "post", reverse("flow_transfer", args=[team_flow.pk]), {"who": "bob"})
    team_flow.refresh_from_db()
    assert (team_flow.owner, team_flow.team) == (bob, None)
    assert access.role_on_flow(alice, team_flow) is None


def test_without_htmx_transfer_redirects(client, echo, alice, team):
    as_user(client, alice)
    response = client.post(reverse("flow_transfer", args=[echo.pk]), {"team": team.pk})
    assert response.status_code == 302
    assert response.url == reverse("flow_editor", args=[echo.pk])


# ---- Share links: making, listing, revoking ----------------------------------------------------


def new_link(response) -> str:
    """The public path of the link a response shows once."""
    match = re.search(r'value="http://testserver(/s/[^/"]+/)"', response.content.decode())
    assert match, "the new link is shown"
    return match.group(1)


def test_a_share_link_is_shown_once_and_only_its_hash_is_kept(client, echo, alice):
    as_user(client, alice)
    response = htmx(client, "post", reverse("flow_link_create", args=[echo.pk]), {"days": "7"})
    path = new_link(response)
    raw = path.split("/")[2]
    link = ShareLink.objects.get()
    assert link.digest != raw and raw not in link.digest
    assert raw.startswith(link.hint)
    assert timezone.now() + dt.timedelta(days=6) < link.expires
    again = htmx(client, "get", reverse("flow_share", args=[echo.pk])).content.decode()
    assert raw not in again
    assert f"{link.hint}…" in again


def test_a_run_link_is_made_from_the_run(client, echo, echo_run, alice):
    as_user(client, alice)
    form = htmx(client, "get", reverse("run_share_link", args=[echo_run.pk]))
    assert form.templates[0].name == "flows/_share_link_form.html"
    response = htmx(client, "post", reverse("run_share_link", args=[echo_run.pk]), {"hide_io": "1"})
    path = new_link(response)
    link = ShareLink.objects.get()
    assert (link.run_id, link.hide_io, link.expires) == (echo_run.pk, True, None)
    assert client.logout() is None
    assert client.get(path).url == reverse("public_run", args=[path.split("/")[2], echo_run.pk])


def test_the_run_share_form_offers_the_same_expiries_as_the_panel(client, echo_run, alice):
    html = htmx(as_user(client, alice), "get", reverse("run_share_link", args=[echo_run.pk]))
    offered = re.findall(r'<option value="(\d*)">([^<]+)</option>', html.content.decode())
    assert offered == [(value, label) for value, label in share_views.DAY_CHOICES]


def test_revoking_a_link_makes_every_public_url_404(client, echo, echo_run, alice):
    link, raw = sharing.create_link(echo, alice)
    public = Client()
    urls = [
        reverse("public_share", args=[raw]),
        reverse("public_run", args=[raw, echo_run.pk]),
        reverse("public_run_events", args=[raw, echo_run.pk]),
    ]
    assert [public.get(url).status_code for url in urls] == [200, 200, 200]
    as_user(client, alice)
    htmx(client, "post", reverse("flow_link_revoke", args=[echo.pk, link.pk]))
    assert [public.get(url).status_code for url in urls] == [404, 404, 404]
    assert (
        'data-testid="share-links"'
        not in htmx(client, "get", reverse("flow_share", args=[echo.pk])).content.decode()
    )


def test_an_expired_link_is_404_everywhere(client, echo, echo_run, alice):
    link, raw = sharing.create_link(echo, alice, days=1)
    ShareLink.objects.filter(pk=link.pk).update(expires=timezone.now() - dt.timedelta(seconds=1))
    for url in (
        reverse("public_share", args=[raw]),
        reverse("public_run", args=[raw, echo_run.pk]),
        reverse("public_run_events", args=[raw, echo_run.pk]),
    ):
        assert Client().get(url).status_code == 404
    panel = as_user(client, alice).get(reverse("flow_share", args=[echo.pk])).content.decode()
    assert "expired" in panel


def test_a_made_up_token_is_404(client, db):
    assert client.get("/s/not-a-token/").status_code == 404
    assert client.get("/s/not-a-token/runs/1/events").status_code == 404


# ---- Share links: what the public sees --------------------------------------------------------


def test_a_flow_link_shows_the_current_version_and_its_runs_to_anyone(
    client, echo, echo_run, alice
):
    newer = json.loads(json.dumps(ECHO))
    newer["nodes"][1]["label"] = "Say it back"
    services.save(echo, alice, newer, base_version=1)
    other = finished_run(services.create(alice, "Other", ECHO), alice)
    _, raw = sharing.create_link(echo, alice)

    response = client.get(reverse("public_share", args=[raw]))
    assert response.status_code == 200
    assert response.context["canvas_data"]["doc"]["nodes"][1]["label"] == "Say it back"
    assert response.context["canvas_data"]["editable"] is False
    html = response.content.decode()
    assert reverse("public_run", args=[raw, echo_run.pk]) in html
    assert f"Run #{other.pk}<" not in html
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "no-referrer"
    # Another flow's run is not behind this link.
    assert client.get(reverse("public_run", args=[raw, other.pk])).status_code == 404
    assert client.get(reverse("public_run_events", args=[raw, other.pk])).status_code == 404


def test_a_run_link_shows_that_run_only(client, echo, echo_run, alice):
    second = finished_run(echo, alice, "another")
    _, raw = sharing.create_link(echo, alice, run=echo_run)
    assert client.get(reverse("public_run", args=[raw, echo_run.pk])).status_code == 200
    assert client.get(reverse("public_run", args=[raw, second.pk])).status_code == 404
    assert client.get(reverse("public_run_events", args=[raw, second.pk])).status_code == 404


def test_the_public_run_page_shows_final_states_and_no_controls(client, echo, echo_run, alice):
    _, raw = sharing.create_link(echo, alice)
    response = client.get(reverse("public_run", args=[raw, echo_run.pk]))
    html = response.content.decode()
    assert [(s["id"], s["state"]) for s in response.context["steps"]] == [
        ("q", "done"),
        ("say", "done"),
        ("out", "done"),
    ]
    assert 'data-node="say" data-status="done"' in html
    assert SECRET in html  # not hidden: inputs and outputs are shown
    events_url = reverse("public_run_events", args=[raw, echo_run.pk])
    assert f'data-events-url="{events_url}"' in html
    assert "data-public" in html
    assert f'data-run-id="{echo_run.pk}"' in html
    for forbidden in (
        "/ws/",
        "data-run-cancel",
        "csrfmiddlewaretoken",
        "csrf-token",
        "/api/",
        reverse("flow_editor", args=[echo.pk]),
        reverse("run_node", args=[echo_run.pk, "say"]),
        "data-run-node",
        'method="post"',
    ):
        assert forbidden not in html, forbidden
    assert 'data-testid="replay"' in html


def test_a_run_in_progress_is_not_followed(client, echo, alice):
    run = create_run(echo, alice, {"q": "x"})
    _, raw = sharing.create_link(echo, alice)
    html = client.get(reverse("public_run", args=[raw, run.pk])).content.decode()
    assert "still in progress" in html
    assert "data-run-id" not in html
    assert 'http-equiv="refresh"' in html


def test_public_events_are_the_apis_events(client, echo, echo_run, alice, alice_token):
    _, raw = sharing.create_link(echo, alice)
    public = client.get(reverse("public_run_events", args=[raw, echo_run.pk]))
    api = Client().get(
        f"/api/runs/{echo_run.pk}/events", headers={"Authorization": f"Bearer {alice_token}"}
    )
    assert public.status_code == 200
    assert public.json() == api.json()["items"]
    assert [e["seq"] for e in public.json()] == list(range(1, echo_run.last_seq + 1))


def test_public_events_page_with_after_and_limit(client, echo, echo_run, alice):
    _, raw = sharing.create_link(echo, alice)
    url = reverse("public_run_events", args=[raw, echo_run.pk])
    assert [e["seq"] for e in client.get(url, {"after": 2, "limit": 3}).json()] == [3, 4, 5]
    for bad in ({"after": "x"}, {"limit": 0}, {"limit": 5001}, {"after": -1}):
        response = client.get(url, bad)
        assert response.status_code == 400, bad
        assert "detail" in response.json()


def test_hide_io_hides_inputs_outputs_text_and_details_but_keeps_states(
    client, echo, echo_run, alice
):
    _, raw = sharing.create_link(echo, alice, hide_io=True)
    events = client.get(reverse("public_run_events", args=[raw, echo_run.pk])).json()
    dumped = json.dumps(events)
    assert SECRET not in dumped
    assert "offline model" not in dumped  # the streamed text and the outputs
    assert len(events) == echo_run.last_seq
    by_type = {e["type"]: e for e in events}
    assert "inputs" not in by_type["run_started"]
    assert "outputs" not in by_type["run_finished"]
    assert by_type["run_finished"]["status"] == "succeeded"
    assert "text" not in by_type["node_delta"]
    finished = [e for e in events if e["type"] == "node_finished"]
    assert all("output" not in e and "detail" not in e for e in finished)
    assert all(isinstance(e["duration_s"], float) for e in finished)

    response = client.get(reverse("public_run", args=[raw, echo_run.pk]))
    html = response.content.decode()
    assert SECRET not in html
    assert "offline model" not in html
    assert "Hidden by the person who shared this run" in html
    assert 'data-node="out" data-status="done"' in html
    # The flow page behind the same link hides nothing of the flow itself, only run data.
    assert SECRET not in client.get(reverse("public_share", args=[raw])).content.decode()


def test_hide_io_hides_error_messages_which_quote_inputs(client, alice):
    # The strict-undefined error names the missing key: the run's secret input.
    doc = json.loads(json.dumps(ECHO).replace("Repeat {{ q }}", "{{ q[q] }}"))
    run = finished_run(services.create(alice, "Leaky", doc), alice)
    assert run.status == "failed" and SECRET in run.error
    _, raw = sharing.create_link(run.flow, alice, hide_io=True)
    events = client.get(reverse("public_run_events", args=[raw, run.pk])).json()
    assert SECRET not in json.dumps(events)
    failed = [e for e in events if e["type"] == "node_failed"]
    assert failed and all("hides error details" in e["error"] for e in failed)
    html = client.get(reverse("public_run", args=[raw, run.pk])).content.decode()
    assert SECRET not in html
    assert "hides error details" in html
    _, shown = sharing.create_link(run.flow, alice, hide_io=False)
    assert SECRET in json.dumps(
        client.get(reverse("public_run_events", args=[shown, run.pk])).json()
    )


# A run's log as write_batch stores it: non-ASCII and escapes in its text, and a cache hit
# whose source names another run, which a link never shows.
SHARED_LOG = [
    {"seq": 1, "ts": 1.5, "type": "run_started", "inputs": {"q": 'héllo — 日本語 ✓ "q" \\ 🚀'}},
    {"seq": 2, "ts": 1.75, "type": "node_delta", "node": "say", "text": "naïve café ✓ \u2028"},
    {
        "seq": 3,
        "ts": 2.0,
        "type": "node_finished",
        "node": "say",
        "output": {"text": "réponse"},
        "cached": {"source": "run 7", "usage": {"input_tokens": 3}},
    },
    {"seq": 4, "ts": 2.25, "type": "run_finished", "status": "succeeded", "outputs": {"a": 0.1}},
]


def stored_texts(run: Run) -> list[str]:
    """The run's events as the database holds them, read past the ORM: PostgreSQL's jsonb
    as its text, SQLite's text as written."""
    column = "payload::text" if connection.vendor == "postgresql" else "payload"
    table = connection.ops.quote_name(RunEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE run_id = %s ORDER BY seq", [run.pk])
        return [text for (text,) in cursor.fetchall()]


def assert_shared_events_read_back_as_stored(client, user) -> None:
    """A link's events are the stored JSON, byte for byte, but for the cache hit, whose
    source is cut; and the events view refuses what it refused."""
    flow = services.create(user, "Shared", ECHO)
    run = create_run(flow, user, {"q": "x"})
    write_batch(run.pk, SHARED_LOG)
    link, raw = sharing.create_link(flow, user)
    url = reverse("public_run_events", args=[raw, run.pk])
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    body = response.content.decode()
    stored = stored_texts(run)
    # Each event's stored text is in the body whole, in order: nothing decoded and encoded.
    for text in stored[:2] + stored[3:]:
        assert text in body
    assert body.startswith("[" + stored[0] + ", " + stored[1] + ", ")
    assert body.endswith(", " + stored[3] + "]")
    events = json.loads(body)
    assert events[:2] + events[3:] == SHARED_LOG[:2] + SHARED_LOG[3:]
    assert events[2]["cached"] == {"usage": {"input_tokens": 3}}
    assert "run 7" not in body
    # A page of them is cut from the same text.
    paged = client.get(url, {"after": 1, "limit": 1}).content.decode()
    assert paged == "[" + stored[1] + "]"

    for bad in ({"after": "x"}, {"limit": 0}, {"limit": 5001}, {"after": -1}):
        assert client.get(url, bad).status_code == 400, bad
    other = create_run(flow, user, {"q": "y"})
    assert client.get(reverse("public_run_events", args=[raw, other.pk])).status_code == 200
    _, run_only = sharing.create_link(flow, user, run=run)
    assert client.get(reverse("public_run_events", args=[run_only, other.pk])).status_code == 404
    _, hiding = sharing.create_link(flow, user, hide_io=True)
    hidden = client.get(reverse("public_run_events", args=[hiding, run.pk])).json()
    assert [e["seq"] for e in hidden] == [1, 2, 3, 4]
    for shown in ("héllo", "café", "réponse", "run 7", "outputs"):
        assert shown not in json.dumps(hidden, ensure_ascii=False), shown
    sharing.revoke_link(link)
    assert client.get(url).status_code == 404


def test_a_shared_runs_events_read_back_as_stored_non_ascii_included(client, alice):
    assert_shared_events_read_back_as_stored(client, alice)


def test_cached_and_reused_sources_are_not_named(client):
    link = ShareLink(hide_io=False)
    event = {"type": "node_finished", "output": {"a": 1}, "reused": {"source": "run 9"}}
    assert sharing.public_event(link, event) == {
        "type": "node_finished",
        "output": {"a": 1},
        "reused": {},
    }


# ---- The API ------------------------------------------------------------------------------------


def test_api_sharing_is_owner_only(api, team_flow):
    f = team_flow.pk
    calls = [
        ("get", f"/api/flows/{f}/shares", None),
        ("post", f"/api/flows/{f}/shares", {"user": "dave", "role": "editor"}),
        ("patch", f"/api/flows/{f}/shares/1", {"role": "editor"}),
        ("delete", f"/api/flows/{f}/shares/1", None),
        ("post", f"/api/flows/{f}/transfer", {"user": "bob"}),
        ("get", f"/api/flows/{f}/share-links", None),
        ("post", f"/api/flows/{f}/share-links", {}),
        ("delete", f"/api/flows/{f}/share-links/1", None),
    ]
    for name, status in (("bob", 403), ("carol", 403), ("dave", 404)):
        for method, path, data in calls:
            caller = getattr(api(name), method)
            response = caller(path, data) if data is not None else caller(path)
            assert response.status_code == status, (name, method, path)
    assert not FlowShare.objects.exists()
    assert not ShareLink.objects.exists()
    assert Flow.objects.get(pk=team_flow.pk).team_id is not None


def test_api_shares_list_create_update_delete(api, team_flow, team, dave):
    f = team_flow.pk
    other = Team.objects.create(name="Other")
    Membership.objects.create(team=other, user=dave, role=Role.VIEWER)
    Membership.objects.create(team=other, user=team_flow.owner, role=Role.VIEWER)

    made = api("alice").post(f"/api/flows/{f}/shares", {"user": "dave", "role": "viewer"})
    assert made.status_code == 201
    assert (made.json()["user"], made.json()["accepted"]) == ("dave", False)
    assert api("dave").get(f"/api/flows/{f}").status_code == 404
    assert api("dave").post(f"/api/shares/{made.json()['id']}/accept").status_code == 200
    assert api("dave").get(f"/api/flows/{f}").status_code == 200

    by_team = api("alice").post(f"/api/flows/{f}/shares", {"team": other.pk, "role": "editor"})
    assert by_team.json()["team_name"] == "Other"
    listed = api("alice").get(f"/api/flows/{f}/shares").json()["items"]
    assert [(s["user"], s["team_name"], s["role"], s["accepted"]) for s in listed] == [
        ("dave", None, "viewer", True),
        (None, "Other", "editor", True),
    ]

    share_id = made.json()["id"]
    assert (
        api("alice").patch(f"/api/flows/{f}/shares/{share_id}", {"role": "editor"}).json()["role"]
        == "editor"
    )
    assert api("alice").delete(f"/api/flows/{f}/shares/{share_id}").status_code == 204
    assert api("alice").delete(f"/api/flows/{f}/shares/{by_team.json()['id']}").status_code == 204
    assert api("dave").get(f"/api/flows/{f}").status_code == 404

    assert api("alice").post(f"/api/flows/{f}/shares", {"user": ""}).status_code == 400
    assert (
        api("alice").post(f"/api/flows/{f}/shares", {"user": "dave", "team": other.pk}).status_code
        == 400
    )
    assert (
        api("alice").post(f"/api/flows/{f}/shares", {"user": "dave", "role": "owner"}).status_code
        == 422
    )


def test_api_transfer(api, team_flow, team, bob):
    f = team_flow.pk
    refused = api("alice").post(f"/api/flows/{f}/transfer", {"user": "dave"})
    assert refused.status_code == 400
    assert "goes only to one of Research's members" in refused.json()["detail"]
    moved = api("alice").post(f"/api/flows/{f}/transfer", {"user": "bob"})
    assert moved.json() == {"id": f, "owner": "bob", "team": None, "role": None}
    assert api("alice").get(f"/api/flows/{f}").status_code == 404
    back = api("bob").post(f"/api/flows/{f}/transfer", {"team": team.pk})
    assert back.json() == {"id": f, "owner": "bob", "team": team.pk, "role": "editor"}


def test_api_share_links(api, client, echo, echo_run):
    f = echo.pk
    made = api("alice").post(
        f"/api/flows/{f}/share-links", {"run": echo_run.pk, "hide_io": True, "expires_in_days": 7}
    )
    assert made.status_code == 201
    body = made.json()
    assert body["url"] == f"/s/{body['token']}/"
    assert (body["run"], body["hide_io"], body["expired"]) == (echo_run.pk, True, False)
    listed = api("alice").get(f"/api/flows/{f}/share-links").json()["items"]
    assert [link["id"] for link in listed] == [body["id"]]
    assert "token" not in listed[0]

    events_url = f"/s/{body['token']}/runs/{echo_run.pk}/events"
    assert SECRET not in Client().get(events_url).content.decode()
    assert api("alice").delete(f"/api/flows/{f}/share-links/{body['id']}").status_code == 204
    assert Client().get(events_url).status_code == 404
    assert api("alice").get(f"/api/flows/{f}/share-links").json()["items"] == []

    foreign = finished_run(services.create(echo.owner, "Other", ECHO), echo.owner, "x")
    wrong = api("alice").post(f"/api/flows/{f}/share-links", {"run": foreign.pk})
    assert wrong.status_code == 400
    assert (
        api("alice").post(f"/api/flows/{f}/share-links", {"expires_in_days": 3}).status_code == 422
    )


def test_hide_io_hides_the_text_and_errors_of_a_map_in_a_maps_items():
    # The golden log of a map in a map: the inner map's item events come nested.
    events = json.loads(
        (Path(__file__).parents[1] / "fixtures" / "logs" / "map_nested.json").read_text()
    )["events"]
    nested = [e for e in events if e.get("nested")]
    assert any("Spell" in json.dumps(e) for e in nested)  # what there is to hide
    failure = {"item": 0, "event": "node_failed", "inner": "w", "error": SECRET}
    failing = {"type": "node_item", "item": 0, "event": "node_item", "nested": failure}
    hidden = [sharing.without_io(e) for e in [*events, failing]]
    dumped = json.dumps(hidden)
    assert "Spell" not in dumped and "offline model" not in dumped and SECRET not in dumped
    assert hidden[-1]["nested"]["error"] == sharing.HIDDEN_ERROR
    assert [e["nested"]["event"] for e in hidden if "nested" in e] == [
        e["nested"]["event"] for e in nested
    ] + ["node_failed"]
