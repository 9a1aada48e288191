"""Run history: the pages and GET /api/runs list what the user may see, filtered and paged."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from webapp.flows import services
from webapp.flows.models import Flow
from webapp.runs.history_views import PAGE_SIZE
from webapp.runs.models import Run

ECHO = {
    "graph": {"name": "echo"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}},
        {"id": "o", "type": "output", "config": {"name": "a"}},
    ],
    "edges": [{"source": "q", "target": "o", "source_port": "value", "target_port": "value"}],
}
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def flow_of(owner, name: str) -> Flow:
    return services.create(owner, name, {**ECHO, "graph": {"name": name}})


def add_runs(flow: Flow, count: int, status: str = "succeeded", **fields) -> list[Run]:
    """Runs of the flow, the last one newest, one minute apart after any already there."""
    start = Run.objects.count()
    version = flow.current()
    runs = []
    for i in range(count):
        run = Run.objects.create(
            flow=flow, flow_version=version, started_by=flow.owner, status=status, **fields
        )
        Run.objects.filter(pk=run.pk).update(created=T0 + dt.timedelta(minutes=start + i))
        runs.append(run)
    return runs


def row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-run="(\d+)"', html)]


@pytest.fixture
def alice_flows(alice):
    return flow_of(alice, "Alpha digest"), flow_of(alice, "Beta triage")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


# The pages


def test_history_lists_every_visible_run_newest_first_with_its_figures(
    alice_client, alice, alice_flows
):
    summarise, triage = alice_flows
    first = add_runs(summarise, 1, input_tokens=1200, output_tokens=345)[0]
    Run.objects.filter(pk=first.pk).update(
        cost_usd=Decimal("0.0042"),
        saved_usd=Decimal("0.0013"),
        cache_hits=2,
        duration_s=3.25,
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=3.25),
    )
    rerun = add_runs(triage, 1, status="failed", kind="from_node", parent=first, from_node="draft")
    resume = add_runs(triage, 1, status="running", kind="resume", parent=rerun[0])[0]

    response = alice_client.get("/runs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert row_ids(html) == [resume.pk, rerun[0].pk, first.pk]
    row = html[html.index(f'data-run="{first.pk}"') :].split("</tr>")[0]
    for text in ("succeeded", "Alpha digest", "you", "3.3 s", "v1", "1200 / 345", "$0.0042"):
        assert text in row, text
    assert "saved $0.0013" in row and f'href="/runs/{first.pk}/"' in row
    assert f'href="/flows/{summarise.pk}/runs/"' in row
    from_row = html[html.index(f'data-run="{rerun[0].pk}"') :].split("</tr>")[0]
    assert "from node <code>draft</code>" in from_row and f'href="/runs/{first.pk}/"' in from_row
    resume_row = html[html.index(f'data-run="{resume.pk}"') :].split("</tr>")[0]
    assert "resume of" in resume_row and f'href="/runs/{rerun[0].pk}/"' in resume_row
    assert "running" in resume_row and "$" not in resume_row  # no cost until it finishes


def test_history_filters_by_status_and_flow(alice_client, alice_flows):
    summarise, triage = alice_flows
    ok = add_runs(summarise, 2)
    failed = add_runs(summarise, 1, status="failed")
    other = add_runs(triage, 2, status="failed")
    ids = lambda runs: sorted(r.pk for r in runs)  # noqa: E731

    assert sorted(row_ids(alice_client.get("/runs/?status=failed").content.decode())) == ids(
        failed + other
    )
    html = alice_client.get(f"/runs/?flow={summarise.pk}").content.decode()
    assert sorted(row_ids(html)) == ids(ok + failed)
    html = alice_client.get(f"/runs/?status=failed&flow={summarise.pk}").content.decode()
    assert row_ids(html) == [failed[0].pk]
    assert f'<option value="{summarise.pk}" selected>' in html
    assert '<option value="failed" selected>' in html
    html = alice_client.get(f"/flows/{triage.pk}/runs/").content.decode()
    assert sorted(row_ids(html)) == ids(other)
    assert "Runs of Beta triage" in html
    html = alice_client.get(f"/flows/{triage.pk}/runs/?status=succeeded").content.decode()
    assert row_ids(html) == [] and "No runs match these filters." in html


def test_an_unknown_filter_value_means_no_filter(alice_client, alice_flows):
    runs = add_runs(alice_flows[0], 2)
    for query in ("status=exploded", "flow=abc", "flow=999999", "page=zzz"):
        html = alice_client.get(f"/runs/?{query}").content.decode()
        assert sorted(row_ids(html)) == sorted(r.pk for r in runs), query


def test_history_pages_hold_fifty_runs_and_links_keep_the_filters(alice_client, alice_flows):
    summarise, triage = alice_flows
    runs = add_runs(summarise, PAGE_SIZE * 2 + 5, status="failed")
    add_runs(triage, 3, status="failed")
    newest_first = [r.pk for r in reversed(runs)]
    base = f"/runs/?status=failed&flow={summarise.pk}"

    html = alice_client.get(base).content.decode()
    assert row_ids(html) == newest_first[:PAGE_SIZE]
    assert "Page 1 of 3 · 105 runs" in html
    assert f'href="/runs/?status=failed&amp;flow={summarise.pk}&amp;page=2"' in html
    html = alice_client.get(base + "&page=2").content.decode()
    assert row_ids(html) == newest_first[PAGE_SIZE : PAGE_SIZE * 2]
    assert f'href="/runs/?status=failed&amp;flow={summarise.pk}"' in html  # page 1 = no page
    html = alice_client.get(base + "&page=3").content.decode()
    assert row_ids(html) == newest_first[PAGE_SIZE * 2 :]
    assert 'rel="next"' not in html
    # Past the end: the last page, as a link typed by hand would hope.
    assert row_ids(alice_client.get(base + "&page=99").content.decode()) == row_ids(html)


def test_a_filter_change_through_htmx_swaps_only_the_rows(alice_client, alice_flows):
    add_runs(alice_flows[0], 3)
    full = alice_client.get("/runs/?status=succeeded").content.decode()
    assert "<html" in full and 'hx-push-url="true"' in full and 'hx-target="#run-history"' in full
    partial = alice_client.get("/runs/?status=succeeded", headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body
    assert body.count('id="run-history"') == 1 and len(row_ids(body)) == 3
    assert "HX-Request" in partial["Vary"]
    restore = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    assert "<html" in alice_client.get("/runs/", headers=restore).content.decode()


def test_a_page_of_history_costs_the_same_few_queries_however_many_rows(
    alice_client, alice, bob, alice_flows, django_assert_max_num_queries
):
    summarise, triage = alice_flows
    parents = add_runs(summarise, PAGE_SIZE)
    for parent in parents[:20]:
        add_runs(triage, 1, kind="rerun", parent=parent)
    # session, user, the header's pending-invitation and waiting-approval badges, flows
    # for the select, count, the page: nothing per row
    with django_assert_max_num_queries(7):
        html = alice_client.get("/runs/").content.decode()
    assert len(row_ids(html)) == PAGE_SIZE
    with django_assert_max_num_queries(7):
        alice_client.get(f"/flows/{triage.pk}/runs/")


def test_strangers_see_no_runs_of_other_peoples_flows(client, charlie, alice_flows):
    summarise, _ = alice_flows
    add_runs(summarise, 3)
    client.force_login(charlie)
    html = client.get("/runs/").content.decode()
    assert row_ids(html) == [] and "No runs yet." in html
    assert "Alpha digest" not in html
    html = client.get(f"/runs/?flow={summarise.pk}").content.decode()
    assert row_ids(html) == [] and "Alpha digest" not in html
    assert client.get(f"/flows/{summarise.pk}/runs/").status_code == 404
    assert client.get("/flows/999999/runs/").status_code == 404


def test_history_needs_a_login(client, alice_flows):
    for url in ("/runs/", f"/flows/{alice_flows[0].pk}/runs/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_nav_and_the_editors_run_panel_link_to_the_history(alice_client, alice_flows):
    flow = alice_flows[0]
    add_runs(flow, 1)
    assert 'href="/runs/">Runs</a>' in alice_client.get("/").content.decode()
    panel = alice_client.get(f"/flows/{flow.pk}/recent-runs/").content.decode()
    assert f'href="/flows/{flow.pk}/runs/">All runs' in panel


# The API


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_lists_runs_with_the_pages_figures(client, alice, alice_token, alice_flows):
    summarise, _ = alice_flows
    parent = add_runs(summarise, 1, input_tokens=10, output_tokens=20)[0]
    Run.objects.filter(pk=parent.pk).update(
        cost_usd=Decimal("0.5"), saved_usd=Decimal("0.25"), cache_hits=3, duration_s=1.5
    )
    child = add_runs(summarise, 1, status="running", kind="from_node", parent=parent)[0]
    Run.objects.filter(pk=child.pk).update(from_node="draft", started_at=timezone.now())

    response = client.get("/api/runs", headers=auth(alice_token))
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"]) == (2, None)
    newest, oldest = body["items"]
    assert oldest == {
        "id": parent.pk,
        "flow": summarise.pk,
        "flow_name": "Alpha digest",
        "flow_version": 1,
        "status": "succeeded",
        "started_by": "alice",
        "created": "2025-03-01T12:00:00Z",
        "started_at": None,
        "finished_at": None,
        "usage": {"input_tokens": 10, "output_tokens": 20},
        "cost_usd": 0.5,
        "saved_usd": 0.25,
        "cache_hits": 3,
        "duration_s": 1.5,
        "kind": "run",
        "trigger": "editor",
        "parent": None,
        "from_node": "",
        "parent_node": "",
    }
    assert (newest["id"], newest["kind"], newest["parent"], newest["from_node"]) == (
        child.pk,
        "from_node",
        parent.pk,
        "draft",
    )
    # Figures arrive when a run finishes.
    assert newest["cost_usd"] is None and newest["cache_hits"] is None

    detail = client.get(f"/api/runs/{child.pk}", headers=auth(alice_token)).json()
    assert {k: detail[k] for k in ("kind", "parent", "from_node", "cost_usd")} == {
        "kind": "from_node",
        "parent": parent.pk,
        "from_node": "draft",
        "cost_usd": None,
    }
    detail = client.get(f"/api/runs/{parent.pk}", headers=auth(alice_token)).json()
    assert (detail["cost_usd"], detail["saved_usd"], detail["cache_hits"]) == (0.5, 0.25, 3)
    assert detail["duration_s"] == 1.5


def test_the_api_filters_and_pages(client, alice_token, alice_flows):
    summarise, triage = alice_flows
    runs = add_runs(summarise, PAGE_SIZE + 7, status="cancelled")
    add_runs(triage, 4, status="cancelled")
    add_runs(summarise, 2, status="succeeded")
    get = lambda **q: client.get("/api/runs", q, headers=auth(alice_token)).json()  # noqa: E731

    first = get(status="cancelled", flow=summarise.pk, limit=PAGE_SIZE)
    assert first["count"] == PAGE_SIZE + 7
    assert first["next"] == (
        f"/api/runs?status=cancelled&flow={summarise.pk}&limit={PAGE_SIZE}&offset={PAGE_SIZE}"
    )
    assert [i["id"] for i in first["items"]] == [r.pk for r in reversed(runs)][:PAGE_SIZE]
    second = client.get(first["next"], headers=auth(alice_token)).json()
    assert [i["id"] for i in second["items"]] == [r.pk for r in reversed(runs)][PAGE_SIZE:]
    assert second["next"] is None
    beyond = get(status="cancelled", flow=summarise.pk, offset=2 * PAGE_SIZE)
    assert beyond["items"] == []
    assert get(flow=triage.pk)["count"] == 4
    assert get(status="succeeded")["count"] == 2
    assert get()["count"] == PAGE_SIZE + 13


@pytest.mark.parametrize(
    "query", [{"status": "exploded"}, {"offset": -1}, {"limit": 0}, {"flow": "x"}]
)
def test_the_api_refuses_bad_filters_with_422(client, alice_token, query):
    assert client.get("/api/runs", query, headers=auth(alice_token)).status_code == 422


def test_the_api_shows_a_stranger_nothing(client, charlie_token, alice_flows):
    summarise, _ = alice_flows
    add_runs(summarise, 3)
    for query in ({}, {"flow": summarise.pk}):
        body = client.get("/api/runs", query, headers=auth(charlie_token)).json()
        assert (body["items"], body["count"]) == ([], 0)
    assert client.get("/api/runs").status_code == 401
