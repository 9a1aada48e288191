"""Breakpoints on the in-process driver: a run started from the editor's endpoint with
breakpoints is stored waiting before the marked node; its editors Continue (with edited
inputs), Step or Stop through a POST that checks permissions (carol the viewer 403, dave
the stranger 404), names the port of bad JSON (400) and refuses a second answer (409).
The API ignores breakpoints: its runs never pause.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.test import Client

from webapp import execution
from webapp.execution.inprocess import InProcessDriver
from webapp.flows import services
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)


def chain_graph() -> dict:
    """q -> a -> b -> out, templates that show what they got."""

    def node(id_: str, type_: str, **config) -> dict:
        return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}

    def edge(source: str, port: str, target: str, target_port: str) -> dict:
        return {"source": source, "target": target, "source_port": port, "target_port": target_port}

    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Chain"},
        "nodes": [
            node("q", "input", name="q"),
            node("a", "template", template="a({{ x }})"),
            node("b", "template", template="b({{ x }})"),
            node("out", "output", name="answer"),
        ],
        "edges": [
            edge("q", "value", "a", "x"),
            edge("a", "text", "b", "x"),
            edge("b", "text", "out", "value"),
        ],
    }


def idle() -> None:
    async_to_sync(execution.driver().wait_idle)()


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Chain", chain_graph(), team=team)


def start(flow, user, breakpoints: list[str], **extra) -> Run:
    body = {"inputs": {"q": "hi"}, "breakpoints": breakpoints, **extra}
    response = session(user).post(
        f"/flows/{flow.pk}/editor-runs/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 201, response.content
    idle()
    return Run.objects.get(pk=response.json()["id"])


def answer(user, run: Run, node: str, action: str, **inputs: str):
    data = {"action": action, **{f"in_{port}": text for port, text in inputs.items()}}
    response = session(user).post(f"/runs/{run.pk}/breakpoints/{node}/", data)
    idle()
    run.refresh_from_db()
    return response


def types(run: Run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))


@pytest.fixture
def paused(flow, alice) -> Run:
    run = start(flow, alice, ["a"])
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING, run.error
    return run


def test_a_run_from_the_editor_pauses_before_its_breakpoint_and_shows_its_inputs(paused, bob):
    assert paused.breakpoints == ["a"]
    assert paused.state["waiting"]["a"] == {"kind": "breakpoint", "inputs": {"x": "hi"}}
    assert types(paused)[-1] == "node_waiting"
    assert "a" not in {
        e.payload.get("node") for e in RunEvent.objects.filter(run=paused, type="node_started")
    }
    page = session(bob).get(f"/runs/{paused.pk}/breakpoints/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="in_x"' in html and "&quot;hi&quot;" in html
    assert 'data-testid="breakpoint-continue"' in html


def test_continue_runs_the_node_on_the_edited_input_and_records_it(paused, bob):
    response = answer(bob, paused, "a", "continue", x='"edited"')
    assert response.status_code == 200, response.content
    assert paused.status == Run.Status.SUCCEEDED, paused.error
    assert paused.outputs == {"answer": "b(a(edited))"}
    resumed = RunEvent.objects.get(run=paused, type="node_resumed").payload
    assert resumed["by"]["user"] == "bob"
    assert (resumed["action"], resumed["inputs"], resumed["edited"]) == (
        "continue",
        {"x": "edited"},
        ["x"],
    )
    started = RunEvent.objects.get(run=paused, type="node_started", payload__node="a")
    assert started.payload["inputs"] == {"x": "edited"}
    seqs = list(RunEvent.objects.filter(run=paused).values_list("seq", flat=True))
    assert sorted(seqs) == list(range(1, len(seqs) + 1))


def test_step_pauses_before_the_next_node_then_continue_runs_to_the_end(paused, alice):
    assert answer(alice, paused, "a", "step", x='"hi"').status_code == 200
    assert paused.status == Run.Status.WAITING
    assert paused.state["waiting"] == {"b": {"kind": "breakpoint", "inputs": {"x": "a(hi)"}}}
    assert answer(alice, paused, "b", "continue", x='"a(hi)"').status_code == 200
    assert paused.status == Run.Status.SUCCEEDED, paused.error
    assert paused.outputs == {"answer": "b(a(hi))"}


def test_stop_cancels_the_paused_run_and_a_second_stop_is_refused(paused, alice):
    assert answer(alice, paused, "a", "stop").status_code == 200
    assert paused.status == Run.Status.CANCELLED
    assert types(paused)[-2:] == ["node_failed", "run_finished"]
    assert answer(alice, paused, "a", "stop").status_code == 409


def test_a_second_continue_of_the_same_pause_is_refused_with_409(paused, alice, bob):
    assert answer(alice, paused, "a", "continue", x='"first"').status_code == 200
    response = answer(bob, paused, "a", "continue", x='"second"')
    assert response.status_code == 409
    assert "not paused at a breakpoint" in response.content.decode()
    assert paused.outputs == {"answer": "b(a(first))"}
    assert RunEvent.objects.filter(run=paused, type="node_resumed").count() == 1


def test_bad_json_is_refused_naming_the_port_and_the_run_stays_paused(paused, bob):
    response = answer(bob, paused, "a", "continue", x="edited without quotes")
    assert response.status_code == 400
    html = response.content.decode()
    assert "port &#x27;x&#x27;: not valid JSON" in html
    assert "edited without quotes" in html  # what was sent stays to be corrected
    assert paused.status == Run.Status.WAITING
    assert answer(bob, paused, "a", "continue", x='"fixed"').status_code == 200
    assert paused.outputs == {"answer": "b(a(fixed))"}


def test_an_unknown_action_or_port_is_refused(paused, bob):
    assert answer(bob, paused, "a", "skip").status_code == 400
    response = answer(bob, paused, "a", "continue", nope="1")
    assert response.status_code == 400
    assert "port &#x27;nope&#x27;: the node has no such input" in response.content.decode()
    assert paused.status == Run.Status.WAITING


def test_viewers_get_403_strangers_404_and_the_run_stays_paused(paused, carol, dave):
    assert answer(carol, paused, "a", "continue", x='"carol"').status_code == 403
    assert answer(dave, paused, "a", "continue", x='"dave"').status_code == 404
    assert answer(dave, paused, "a", "stop").status_code == 404
    assert session(dave).get(f"/runs/{paused.pk}/breakpoints/").status_code == 404
    assert paused.status == Run.Status.WAITING
    # Carol sees where it is paused, without the buttons.
    html = session(carol).get(f"/runs/{paused.pk}/breakpoints/").content.decode()
    assert 'name="in_x"' in html and "breakpoint-continue" not in html


def test_the_editor_endpoint_is_for_editors_only(flow, carol, dave):
    body = json.dumps({"inputs": {"q": "hi"}, "breakpoints": ["a"]})
    url = f"/flows/{flow.pk}/editor-runs/"
    assert session(carol).post(url, body, content_type="application/json").status_code == 403
    assert session(dave).post(url, body, content_type="application/json").status_code == 404
    assert not Run.objects.filter(flow=flow).exists()


def test_breakpoints_that_are_not_node_ids_are_refused_and_stale_ones_ignored(flow, alice):
    url = f"/flows/{flow.pk}/editor-runs/"
    for bad in ("a", ["../x"], [1]):
        body = json.dumps({"inputs": {"q": "hi"}, "breakpoints": bad})
        assert session(alice).post(url, body, content_type="application/json").status_code == 400
    run = start(flow, alice, ["gone", "b"])
    assert run.breakpoints == ["b"]


def test_without_breakpoints_the_editor_run_does_not_pause(flow, alice):
    run = start(flow, alice, [])
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.outputs == {"answer": "b(a(hi))"}


def test_the_api_ignores_breakpoints(flow, api):
    body = {"inputs": {"q": "hi"}, "breakpoints": ["a"], "version": "current"}
    response = api("alice").post(f"/api/flows/{flow.pk}/runs", body)
    assert response.status_code == 201, response.content
    idle()
    run = Run.objects.get(pk=response.json()["id"])
    assert run.trigger == Run.Trigger.API and run.breakpoints == []
    assert run.status == Run.Status.SUCCEEDED and run.outputs == {"answer": "b(a(hi))"}
    assert "node_waiting" not in types(run)


def test_a_run_not_from_the_editor_never_pauses_even_with_breakpoints_stored(flow, alice):
    # Whatever a row holds, only an editor run applies them (webapp.runs.breakpoints).
    for trigger in (Run.Trigger.API, Run.Trigger.WEBHOOK, Run.Trigger.SCHEDULE):
        run = Run.objects.create(
            flow=flow,
            flow_version=flow.current(),
            started_by=alice,
            inputs={"q": "hi"},
            trigger=trigger,
            breakpoints=["a"],
        )
        execution.start(run.pk)
        idle()
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, (trigger, run.error)


def test_a_paused_run_stays_paused_through_recover_runs_and_then_continues(paused, bob):
    call_command("recover_runs")
    paused.refresh_from_db()
    assert paused.status == Run.Status.WAITING
    assert answer(bob, paused, "a", "continue", x='"after"').status_code == 200
    assert paused.outputs == {"answer": "b(a(after))"}


class NeverPauses(InProcessDriver):
    """A driver whose runs cannot pause (both of the product's can)."""

    pauses_runs = False


def test_a_driver_whose_runs_cannot_pause_refuses_breakpoints(flow, alice, settings):
    settings.RUN_DRIVER = f"{__name__}.NeverPauses"
    body = json.dumps({"inputs": {"q": "hi"}, "breakpoints": ["a"]})
    response = session(alice).post(
        f"/flows/{flow.pk}/editor-runs/", body, content_type="application/json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "breakpoints_unsupported"
    assert not Run.objects.filter(flow=flow).exists()
