"""Thinking in the web app: the node form's fields and their problems, the inspector's
collapsible thinking, and a share link that hides it."""

from __future__ import annotations

import html as html_lib
import json

import pytest
from django.test import Client
from django.urls import reverse

from graphs.nodes import NODE_TYPES
from webapp.flows import forms, services
from webapp.flows.sharing.service import without_io
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db

THOUGHT = "The user wants <17*23>; 17*20 is 340, plus 51."


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def payload_of(html: str) -> dict:
    return json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])


def error_on(html: str, field: str) -> str:
    return html_lib.unescape(html.split(f'data-testid="error-{field}">')[1].split("<")[0])


@pytest.fixture
def flow(alice):
    return services.create(alice, "Thinker", services.starter_graph("Thinker"))


def edit(user, flow, type_: str = "llm", **fields: str) -> str:
    # As the browser posts the form: the citations box is ticked by default.
    data = {
        "type": type_,
        "node_id": "think",
        "form_key": "k1",
        "f_prompt": "Solve {{ x }}",
        "f_citations": "on",
    }
    response = client_for(user).post(f"/flows/{flow.pk}/node-form/", data | fields)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("type_", ["llm", "agent"])
def test_thinking_is_an_advanced_choice_and_its_budget_shows_only_when_enabled(type_):
    fields = {f.name: f for f in forms.fields_for(NODE_TYPES[type_], {"prompt": "x"})}
    thinking, budget = fields["thinking"], fields["thinking_budget"]
    assert thinking.advanced and thinking.kind == "select"
    assert thinking.choices == ["off", "enabled", "adaptive"]
    assert budget.kind == "number" and budget.minimum == "1024"
    assert budget.when == ("thinking", "enabled") and budget.off
    shown = {
        f.name: f
        for f in forms.fields_for(NODE_TYPES[type_], {"prompt": "x", "thinking": "enabled"})
    }
    assert not shown["thinking_budget"].off


def test_a_routers_thinking_shows_only_in_llm_mode():
    fields = {f.name: f for f in forms.fields_for(NODE_TYPES["router"], {"routes": ["a"]})}
    assert fields["thinking"].when == ("mode", "llm") and fields["thinking"].off


def test_a_budget_that_does_not_fit_in_max_tokens_is_reported_on_the_budget(alice, flow):
    html = edit(alice, flow, f_thinking="enabled", f_thinking_budget="2048", f_max_tokens="1024")
    assert payload_of(html)["valid"] is False
    assert error_on(html, "thinking_budget") == (
        "must be less than max_tokens (1024): thinking counts toward max_tokens; raise "
        "max_tokens or lower the budget"
    )


def test_a_budget_under_1024_is_reported_on_the_budget(alice, flow):
    html = edit(alice, flow, f_thinking="enabled", f_thinking_budget="512", f_max_tokens="4096")
    assert payload_of(html)["valid"] is False
    assert "1024" in error_on(html, "thinking_budget")


def test_a_temperature_with_thinking_is_reported_on_the_temperature(alice, flow):
    html = edit(alice, flow, f_thinking="adaptive", f_temperature="0.3", f_max_tokens="4096")
    assert error_on(html, "temperature") == "thinking does not take a temperature: leave it empty"


def test_thinking_that_fits_is_kept_in_the_config(alice, flow):
    html = edit(
        alice,
        flow,
        f_thinking="enabled",
        f_thinking_budget="2048",
        f_max_tokens="4096",
        f_retries="2",
        f_on_error="fail",
    )
    payload = payload_of(html)
    assert payload["valid"] is True, html
    assert payload["config"] == {
        "prompt": "Solve {{ x }}",
        "max_tokens": 4096,
        "thinking": "enabled",
        "thinking_budget": 2048,
    }


def test_a_stranger_gets_no_form_for_the_flow(dave, flow):
    response = client_for(dave).post(
        f"/flows/{flow.pk}/node-form/", {"type": "llm", "node_id": "n", "f_thinking": "enabled"}
    )
    assert response.status_code == 404


# The inspector ----------------------------------------------------------------------------


def thinking_run(flow) -> Run:
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=flow.owner, status="succeeded"
    )
    usage = {"input_tokens": 12, "output_tokens": 40, "thinking_tokens": 31}
    events = [
        {"type": "run_started", "inputs": {}},
        {"type": "node_started", "node": "ask", "iteration": 1, "inputs": {}},
        {"type": "node_thinking", "node": "ask", "iteration": 1, "text": THOUGHT[:20]},
        {"type": "node_thinking", "node": "ask", "iteration": 1, "text": THOUGHT[20:]},
        {"type": "node_delta", "node": "ask", "iteration": 1, "text": "391"},
        {"type": "node_finished", "node": "ask", "iteration": 1, "output": {"text": "391"},
         "duration_s": 1.5, "model": "claude-sonnet-4-6", "usage": usage},
        {"type": "run_finished", "status": "succeeded", "outputs": {}, "usage": usage},
    ]  # fmt: skip
    for seq, event in enumerate(events, 1):
        payload = {"seq": seq, "ts": 1_700_000_000.0 + seq, **event}
        RunEvent.objects.create(run=run, seq=seq, type=event["type"], payload=payload)
    Run.objects.filter(pk=run.pk).update(last_seq=len(events))
    return run


def test_the_inspector_folds_the_thinking_away_apart_from_the_answer(alice, bob, carol, team_flow):
    run = thinking_run(team_flow)
    for user in (alice, bob, carol):  # owner, editor, viewer
        html = client_for(user).get(reverse("run_node", args=[run.pk, "ask"])).content.decode()
        section = html.split('data-testid="inspector-thinking">')[1].split("</details>")[0]
        assert section.startswith("<summary>Thinking</summary>")  # closed until opened
        assert html_lib.escape(THOUGHT) in section  # escaped, and whole
        output = html.split("<summary>Output</summary>")[1]
        assert "391" in output and "17*20" not in output
        assert "(31 of them thinking)" in html


def test_a_stranger_sees_no_thinking(dave, team_flow):
    run = thinking_run(team_flow)
    response = client_for(dave).get(reverse("run_node", args=[run.pk, "ask"]))
    assert response.status_code == 404 and THOUGHT not in response.content.decode()


def test_a_share_link_hiding_inputs_and_outputs_hides_the_thinking_too():
    event = {"type": "node_thinking", "node": "ask", "iteration": 1, "text": THOUGHT}
    assert without_io(event) == {"type": "node_thinking", "node": "ask", "iteration": 1}
