"""The celery driver end to end: runs executed node by node by real worker processes,
coordinated in PostgreSQL, with the fake Messages API as the model."""

from __future__ import annotations

import json

import httpx
import pytest
from django.contrib.auth import get_user_model
from websockets.sync.client import connect

from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from webapp.accounts.models import ApiToken
from webapp.flows import services as flow_services
from webapp.runs.models import NodeTask, Run
from webapp.runs.services import create_from_node

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fan_out_runs_node_by_node_on_two_workers(cluster):
    cluster.workers(2, pool="threads", size=4)
    # Long enough that the branches overlap even when a loaded machine is slow to hand the
    # second and third tasks to a thread.
    run = cluster.start(flows.fan_out(branches=3, delay_s=1.0, final_delay_s=0.3))
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs["answer"].startswith("fake reply: final")
    events = sound_log(run)
    done = {e["node"] for e in events if e["type"] == "node_finished"}
    assert done == {"topic", "b1", "b2", "b3", "join", "final", "out"}
    assert sorted(cluster.calls()) == ["branch b1 on scale-out #fake:delay=1.0",
        "branch b2 on scale-out #fake:delay=1.0", "branch b3 on scale-out #fake:delay=1.0",
        "final #fake:delay=0.3"]  # fmt: skip
    tasks = NodeTask.objects.filter(run=run)
    assert tasks.count() == 7 and set(tasks.values_list("status", flat=True)) == {"done"}
    # The branches ran at the same time, not one after another.
    branches = tasks.filter(node__startswith="b")
    first_end = min(t.finished_at for t in branches)
    assert all(t.started_at < first_end for t in branches)


def test_a_run_started_over_the_api_streams_every_event_to_its_socket(cluster, celery_server):
    """The whole path: Daphne with the celery driver takes the run, workers execute it, and
    a socket on Daphne receives every event, once, in order, through Redis."""
    cluster.workers(1, pool="threads", size=4)
    alice = get_user_model().objects.create_user("alice", password="correct horse battery")
    _, token = ApiToken.issue(alice, "tests")
    graph = flows.fan_out(branches=2, delay_s=0.5)
    flow = flow_services.create(alice, "Fan-out", graph)
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(  # a first request to a cold server on a busy machine can be slow
        f"{celery_server.url}/api/flows/{flow.pk}/runs", json={}, headers=headers, timeout=60
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "queued" and answer.json()["notice"] is None
    run_id = answer.json()["id"]
    received: list[dict] = []
    with connect(
        f"{celery_server.ws_url}/ws/runs/{run_id}/",
        additional_headers=headers,
        origin=celery_server.url,
        open_timeout=10,
    ) as socket:
        while not received or received[-1]["type"] != "run_finished":
            received += json.loads(socket.recv(timeout=30))["events"]
    assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
    run = Run.objects.get(pk=run_id)
    assert run.status == Run.Status.SUCCEEDED
    assert received == sound_log(run)


def test_a_re_run_from_a_node_on_workers_calls_only_that_node_and_what_follows(cluster):
    cluster.workers(1, pool="threads", size=4)
    first = finished(cluster.start(flows.chain([0.1, 0.1, 0.1])))
    assert first.status == Run.Status.SUCCEEDED, first.error
    calls_before = len(cluster.calls())
    alice = first.started_by
    # Handed to the broker once stored (services.create_from_node).
    second = create_from_node(first, alice, "s2", ignore_cache=True)
    second = finished(second)
    assert second.status == Run.Status.SUCCEEDED, second.error
    assert [c.split(" #")[0] for c in cluster.calls()[calls_before:]] == ["step s2", "step s3"]
    reused = [e["node"] for e in sound_log(second) if e.get("reused")]
    assert reused == ["topic", "s1"]
