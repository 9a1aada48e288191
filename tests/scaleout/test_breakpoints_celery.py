"""Breakpoints on the celery driver (real workers, PostgreSQL, Redis), through the
editor's HTTP endpoints: a run started from the editor with a breakpoint parks before the
marked node, holding no task or lease; Step runs it on edited inputs and parks before the
next node; Continue runs on to the end on the workers; a second answer to the same pause
is refused (409); Stop cancels a paused run.
"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.test import Client

from tests.scaleout.conftest import finished, sound_log
from tests.support.wait import wait_for
from tests.webapp.test_breakpoints import chain_graph
from webapp.flows import services as flow_services
from webapp.runs.models import NodeTask, Run, RunEvent


def session() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get_or_create(username="alice")[0])
    return client


def parked_at(run: Run, node: str) -> Run:
    def waiting() -> Run | None:
        run.refresh_from_db()
        assert not run.finished, run.error
        if run.status == Run.Status.WAITING and node in run.state["waiting"]:
            return run
        return None

    run = wait_for(waiting, 60, message=f"run {run.pk} to pause before {node}")
    tasks = NodeTask.objects.filter(run=run)
    assert not tasks.exclude(status=NodeTask.Status.DONE).exists(), "a paused run holds a task"
    assert not tasks.filter(lease_until__isnull=False).exists(), "a paused run holds a lease"
    assert not tasks.filter(node=node).exists(), "the paused node was handed to a worker"
    return run


def start(breakpoints: list[str]) -> Run:
    alice = get_user_model().objects.get_or_create(username="alice")[0]
    flow = flow_services.create(alice, "Chain", chain_graph())
    body = json.dumps({"inputs": {"q": "hi"}, "breakpoints": breakpoints})
    response = session().post(
        f"/flows/{flow.pk}/editor-runs/", body, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return Run.objects.get(pk=response.json()["id"])


def answer(run: Run, node: str, action: str, **inputs: str):
    data = {"action": action, **{f"in_{port}": text for port, text in inputs.items()}}
    return session().post(f"/runs/{run.pk}/breakpoints/{node}/", data)


def test_step_on_edited_inputs_then_continue_runs_on_the_workers(cluster):
    cluster.workers(1)
    run = parked_at(start(["a"]), "a")
    assert run.state["waiting"]["a"] == {"kind": "breakpoint", "inputs": {"x": "hi"}}
    page = session().get(f"/runs/{run.pk}/breakpoints/").content.decode()
    assert 'name="in_x"' in page and 'data-testid="breakpoint-continue"' in page

    assert answer(run, "a", "step", x='"edited"').status_code == 200
    run = parked_at(run, "b")
    assert run.state["waiting"] == {"b": {"kind": "breakpoint", "inputs": {"x": "a(edited)"}}}
    started = RunEvent.objects.get(run=run, type="node_started", payload__node="a")
    assert started.payload["inputs"] == {"x": "edited"}
    assert answer(run, "a", "continue", x='"again"').status_code == 409

    assert answer(run, "b", "continue").status_code == 200
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answer": "b(a(edited))"}
    events = sound_log(run)
    resumed = [e for e in events if e["type"] == "node_resumed"]
    assert [(e["node"], e["action"], e["edited"]) for e in resumed] == [
        ("a", "step", ["x"]),
        ("b", "continue", []),
    ]
    assert resumed[0]["by"]["user"] == "alice"
    assert answer(run, "b", "continue").status_code == 409


def test_stop_cancels_a_paused_run(cluster):
    cluster.workers(1)
    run = parked_at(start(["b"]), "b")
    assert answer(run, "b", "stop").status_code == 200
    run = finished(run)
    assert run.status == Run.Status.CANCELLED
    events = sound_log(run)
    assert [e["type"] for e in events][-2:] == ["node_failed", "run_finished"]
    assert answer(run, "b", "continue").status_code == 409
