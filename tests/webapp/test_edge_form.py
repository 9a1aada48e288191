"""The edge form (``/flows/<id>/edge-form/``): a loop-back edge's ``initial`` and
``append``, server-rendered and checked as the node form is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from webapp.flows import services

EXAMPLES = Path(__file__).parents[2] / "examples"
EVALUATE = json.loads((EXAMPLES / "evaluate.json").read_text())
LOOP_BACK = {"source": "gate", "target": "generate", "source_port": "revise"}
ENDS = {**LOOP_BACK, "target_port": "attempts"}


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Evaluate", EVALUATE, team=team)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def open_form(user, flow, ends=ENDS, kept=None, **extra):
    values = {
        "edge_id": "e-1",
        **ends,
        "kept": json.dumps(kept if kept is not None else {"append": True}),
        "graph": json.dumps(EVALUATE),
        **extra,
    }
    return client_for(user).post(f"/flows/{flow.pk}/edge-form/", values)


def edit(user, flow, initial="", append=False, in_loop="1"):
    values = {"edge_id": "e-1", **ENDS, "initial": initial, "in_loop": in_loop, "form_key": "k1"}
    if append:
        values["append"] = "on"
    return client_for(user).post(f"/flows/{flow.pk}/edge-form/", values)


def payload(response) -> dict | None:
    html = response.content.decode()
    marker = "<div hidden data-edge-config>"
    if marker not in html:
        return None
    script = html.split(marker, 1)[1].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(script)


def test_a_loop_back_edge_opens_with_its_settings(alice, flow):
    response = open_form(alice, flow)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="edge-form"' in html
    assert "gate.revise → generate.attempts" in html
    assert 'name="append" data-testid="edge-append" checked' in html
    assert 'name="initial"' in html
    assert "hx-post" in html


def test_an_edge_round_no_loop_has_nothing_to_set(alice, flow):
    ends = {"source": "task", "target": "generate", "source_port": "value", "target_port": "task"}
    html = open_form(alice, flow, ends=ends, kept={}).content.decode()
    assert 'data-testid="edge-not-in-loop"' in html
    assert 'name="initial"' not in html
    assert "hx-post" not in html


def test_an_edge_round_no_loop_that_still_has_settings_shows_them_to_clear(bob, flow):
    ends = {"source": "task", "target": "generate", "source_port": "value", "target_port": "task"}
    html = open_form(bob, flow, ends=ends, kept={"initial": "x"}).content.decode()
    assert "which a save would refuse" in html
    assert 'name="initial"' in html


def test_an_edit_hands_back_the_checked_settings(bob, flow):
    response = edit(bob, flow, initial='["seed"]', append=True)
    assert response.status_code == 200
    assert payload(response) == {"edge": "e-1", "kept": {"initial": ["seed"], "append": True}}
    assert payload(edit(bob, flow, initial='  {"verdict": "FAIL"} ')) == {
        "edge": "e-1",
        "kept": {"initial": {"verdict": "FAIL"}},
    }
    # Cleared: the edge has no settings left.
    assert payload(edit(bob, flow)) == {"edge": "e-1", "kept": {}}


def test_text_that_is_not_json_is_named_and_not_applied(bob, flow):
    response = edit(bob, flow, initial="first draft")
    html = response.content.decode()
    assert 'data-testid="error-initial"' in html
    assert "not a JSON value (Expecting value, column 1): put text in &quot;quotes&quot;" in html
    assert payload(response) is None


def test_append_needs_a_list_and_says_so_on_its_field(bob, flow):
    response = edit(bob, flow, initial='"so far"', append=True)
    html = response.content.decode()
    assert 'data-testid="error-append"' in html
    assert "&#x27;append&#x27; needs &#x27;initial&#x27; to be a list" in html
    assert payload(response) is None


def test_a_viewer_sees_the_form_read_only(carol, flow):
    html = open_form(carol, flow).content.decode()
    assert "<fieldset disabled>" in html
    assert "hx-post" not in html


def test_a_stranger_gets_404(dave, flow):
    assert open_form(dave, flow).status_code == 404
    assert edit(dave, flow, initial="[]").status_code == 404


@pytest.mark.parametrize(
    "bad",
    [{"edge_id": 'e 1"><script>'}, {"source": "../x"}, {"target_port": ""}],
)
def test_an_edge_named_outside_the_identifier_rules_is_refused(alice, flow, bad):
    response = open_form(alice, flow, **bad) if "edge_id" in bad else None
    if response is None:
        response = open_form(alice, flow, ends={**ENDS, **bad})
    assert response.status_code == 400
    assert b"identifiers" in response.content


def test_the_editor_page_gives_the_canvas_the_edge_form(alice, flow):
    data = client_for(alice).get(f"/flows/{flow.pk}/").context["editor_data"]
    assert data["urls"]["edgeForm"] == f"/flows/{flow.pk}/edge-form/"
    assert data["urls"]["validate"] == "/api/editor/validate"


# ---- What changed: a loop-back edge's settings in the diffs ---------------------------------


def appending(initial=None) -> dict:
    doc = json.loads(json.dumps(EVALUATE))
    edge = next(e for e in doc["edges"] if e["source"] == "gate" and e["target"] == "generate")
    edge.pop("append")
    if initial is not None:
        edge["initial"] = initial
    return doc


def test_the_versions_diff_names_a_loop_edges_changed_settings(alice, carol, flow):
    services.save(flow, alice, appending(initial=[]), base_version=1)
    client = client_for(carol)
    html = client.get(f"/flows/{flow.pk}/versions/diff/?a=1&b=2").content.decode()
    assert 'data-testid="edge-changed"' in html
    assert "<code>gate.revise</code> → <code>generate.attempts</code>" in html
    assert "<code>append</code> cleared, <code>initial</code> set" in html
    api = client.get(f"/api/flows/{flow.pk}/versions/diff?a=1&b=2").json()
    [changed] = api["edges"]["changed"]
    assert changed["target_port"] == "attempts"
    assert changed["changes"] == [
        {"key": "append", "kind": "removed", "before": True},
        {"key": "initial", "kind": "added", "after": []},
    ]
    assert api["summary"] == "1 edge changed"


def test_a_teammates_difference_names_a_loop_edges_changed_settings(alice, bob, flow):
    services.save(flow, bob, appending(), base_version=1)
    response = client_for(alice).post(
        f"/flows/{flow.pk}/collab/diff/", {"doc": json.dumps(EVALUATE), "version": "2"}
    )
    assert response.status_code == 200
    assert "<code>append</code> set" in response.content.decode()
