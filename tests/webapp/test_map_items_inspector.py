"""The inspector of a map node lists its items (graphs.log's ``items``): index, status,
output or error, tokens; in full, and as of a replay's position (``?upto=``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from tests.webapp.test_run_pages import make_run
from webapp.flows import services

LOGS = Path(__file__).parents[1] / "fixtures" / "logs"
pytestmark = pytest.mark.django_db


def recorded(name: str) -> list[dict]:
    events = json.loads((LOGS / f"{name}.json").read_text())["events"]
    return [{k: v for k, v in e.items() if k not in ("seq", "ts")} for e in events]


@pytest.fixture
def flow(alice, team):
    graph = services.starter_graph("Map")
    return services.create(alice, "Map", graph, team=team)


def inspector(user, run, node="each", upto=None) -> str:
    client = Client()
    client.force_login(user)
    url = f"/runs/{run.pk}/nodes/{node}/" + (f"?upto={upto}" if upto is not None else "")
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def rows(html: str) -> list[str]:
    body = html.split('data-testid="map-items"', 1)[1].split("</tbody>", 1)[0]
    return [" ".join(row.split()) for row in body.split("<tr data-item=")[1:]]


def test_a_finished_maps_items_show_each_output_and_its_tokens(carol, flow):
    run = make_run(flow, recorded("map_items"), status="succeeded")
    html = inspector(carol, run)
    assert "Items (2)" in html
    first, second = rows(html)
    assert first.startswith('"0" data-status="done"')
    assert "here is your prompt back: Define: alpha" in first
    assert "2 in · 19 out" in first
    assert "Define: beta" in second


def test_a_failed_item_shows_its_error_and_the_others_their_output(bob, flow):
    run = make_run(flow, recorded("map_item_failure"), status="failed")
    ok, failed = rows(inspector(bob, run))
    assert '"0" data-status="done"' in ok
    assert failed.startswith('"1" data-status="failed"')
    assert "run-error" in failed
    assert "&#x27;str object&#x27; has no attribute &#x27;name&#x27;" in failed


def test_as_of_a_replay_position_only_the_items_begun_show_and_run_on(alice, flow):
    events = recorded("map_items")
    run = make_run(flow, events, status="succeeded")
    started = next(i for i, e in enumerate(events, 1) if e.get("item") == 1)
    html = inspector(alice, run, upto=started)
    first, second = rows(html)
    assert '"0" data-status="done"' in first
    assert second.startswith('"1" data-status="running"')
    assert "Items (2)" in html


def test_a_node_that_is_not_a_map_lists_no_items(alice, flow):
    run = make_run(flow, recorded("map_items"), status="succeeded")
    assert 'data-testid="map-items"' not in inspector(alice, run, node="out")


def test_a_stranger_sees_no_items(dave, flow):
    run = make_run(flow, recorded("map_items"), status="succeeded")
    client = Client()
    client.force_login(dave)
    assert client.get(f"/runs/{run.pk}/nodes/each/").status_code == 404
