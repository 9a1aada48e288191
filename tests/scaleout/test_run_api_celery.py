"""The run API on the celery driver: ``wait`` and the event stream follow runs that
``celery worker`` processes execute, through Redis and PostgreSQL, as they do in-process."""

from __future__ import annotations

import json

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.scaleout.conftest import sound_log
from tests.scaleout.test_live_view import streaming_fan_out
from webapp.accounts.models import ApiToken
from webapp.flows import services as flow_services
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def read_stream(client: httpx.Client, run_id: int, after: int = 0) -> list[dict]:
    events = []
    headers = {"Last-Event-ID": str(after)} if after else {}
    with client.stream("GET", f"/api/runs/{run_id}/stream", headers=headers) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_wait_and_the_stream_follow_a_run_the_workers_execute(cluster, celery_server):
    cluster.workers(2)
    alice = get_user_model().objects.create_user("alice")
    flow = flow_services.create(alice, "Live", streaming_fan_out(chunk_delay=0.05))
    headers = {"Authorization": f"Bearer {ApiToken.issue(alice, 't')[1]}"}
    with httpx.Client(base_url=celery_server.url, headers=headers, timeout=90) as client:
        started = client.post(f"/api/flows/{flow.pk}/runs", json={"inputs": {"topic": "a"}})
        assert started.status_code == 201
        live = read_stream(client, started.json()["id"])

        waited = client.post(
            f"/api/flows/{flow.pk}/runs", json={"inputs": {"topic": "b"}, "wait": 60}
        )
        assert waited.status_code == 200, waited.text
        assert waited.json()["status"] == "succeeded"
        assert waited.json()["outputs"]["answer"]
        resumed = read_stream(client, waited.json()["id"], after=5)

    run = Run.objects.get(pk=started.json()["id"])
    assert live == sound_log(run)
    assert live[-1]["type"] == "run_finished"
    assert sum(e["type"] == "node_delta" for e in live) > 3
    assert [e["seq"] for e in resumed] == [
        e["seq"] for e in sound_log(Run.objects.get(pk=waited.json()["id"]))
    ][5:]
