"""The subflow node's form and ports in the editor: it offers, and accepts, only the flows
the user may run; the canvas's ports are the chosen flow's inputs and outputs."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.webapp.test_subflow_runs import shout
from webapp.flows import services

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(user, flow_id: int, node_type: str, config: dict) -> str:
    answer = client_for(user).post(
        f"/flows/{flow_id}/node-form/",
        {"type": node_type, "node_id": "n1", "config": json.dumps(config)},
    )
    assert answer.status_code == 200
    return answer.content.decode()


def test_the_flow_picker_offers_the_flows_the_user_may_run_and_no_others(alice, bob, team):
    team_child = services.create(alice, "Team shout", shout(), team=team)
    private = services.create(alice, "Alice's secret", shout())
    bobs = services.create(bob, "Bob's caller", services.starter_graph("x"))
    html = form(bob, bobs.pk, "subflow", {"flow": "0"})
    assert f'<option value="{team_child.pk}">Team shout (#{team_child.pk})</option>' in html
    assert "Alice&#x27;s secret" not in html and f'value="{private.pk}"' not in html
    # Picking a flow he may not run is refused on the field, as if it did not exist.
    html = form(bob, bobs.pk, "subflow", {"flow": str(private.pk)})
    assert f"no flow {private.pk} that you may run" in html
    assert "needs attention" not in form(bob, bobs.pk, "subflow", {"flow": str(team_child.pk)})


def test_an_agents_tools_offer_flows_as_flow_tools(alice):
    child = services.create(alice, "Shout", shout())
    mine = services.create(alice, "Agent", services.starter_graph("x"))
    html = form(alice, mine.pk, "agent", {"prompt": "hi", "tools": [f"flow:{child.pk}"]})
    assert f'value="flow:{child.pk}" checked> <code>flow:{child.pk}</code> Shout' in html
    assert 'value="calculator"' in html


def test_the_ports_api_gives_the_chosen_flows_inputs_and_outputs(api, alice, dave):
    child = services.create(alice, "Shout", shout())
    body = {"type": "subflow", "config": {"flow": str(child.pk)}}
    ports = api("alice").post("/api/editor/ports", body).json()
    assert (ports["inputs"], ports["outputs"], ports["known"]) == (["text"], ["loud"], True)
    theirs = api("dave").post("/api/editor/ports", body).json()
    assert (theirs["inputs"], theirs["outputs"]) == ([], [])
    assert theirs["problems"] == []  # ports only; the form names what is wrong


def test_a_viewer_sees_a_subflow_the_team_may_run_as_valid(alice, carol, team):
    child = services.create(alice, "Team shout", shout(), team=team)
    caller = services.create(alice, "Team caller", services.starter_graph("x"), team=team)
    html = form(carol, caller.pk, "subflow", {"flow": str(child.pk)})
    assert "needs attention" not in html
    assert f'<option value="{child.pk}" selected>' in html
