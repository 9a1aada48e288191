"""The celery driver end to end: runs executed node by node by real worker processes,
coordinated in PostgreSQL, with the fake Messages API as the model."""

from __future__ import annotations

import json

import httpx
import pytest
from django.contrib.auth import get_user_model
from websockets.sync.client import connect

from graphs.log import fold
from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from tests.support.wait import wait_for
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


def test_a_maps_streamed_items_write_their_own_events_from_the_workers_running_them(cluster):
    """Items run as tasks of their own on other workers; the first item_events of them write
    their inner nodes' events into the run's one log, as the map's node_item events."""
    workers = cluster.workers(2, pool="threads", size=3)
    run = finished(cluster.start(flows.mapped(["a", "b", "c"], delay_s=0.5, item_events=2)))
    assert run.status == Run.Status.SUCCEEDED, run.error
    events = sound_log(run)
    items = [e for e in events if e["type"] == "node_item"]
    assert {e["node"] for e in items} == {"each"} and {e["iteration"] for e in items} == {1}
    assert {e["item"] for e in items} == {0, 1}  # item 2 shows only in the map's progress
    for index, word in ((0, "a"), (1, "b")):
        own = [e for e in items if e["item"] == index]
        kinds = [e["event"] for e in own]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished", kinds
        assert {"node_started", "node_delta", "node_finished"} <= set(kinds)
        # Only the item's own model call, never its input and output nodes.
        assert {e["inner"] for e in own if "inner" in e} == {"call"}
        text = "".join(e["text"] for e in own if e["event"] == "node_delta")
        assert text == f"fake reply: item {word} #fake:delay=0.5"
        [done] = [e for e in own if e["event"] == "node_finished"]
        assert done["usage"]["output_tokens"] > 0
    # Inside the map's visit: after it started, before it finished.
    seqs = {e["type"]: e["seq"] for e in events if e.get("node") == "each" and e["type"] in
            ("node_started", "node_finished")}  # fmt: skip
    assert all(seqs["node_started"] < e["seq"] < seqs["node_finished"] for e in items)
    # The items ran on the workers, and the folds read them as the in-process driver's.
    streamed = NodeTask.objects.filter(run=run, item__in=[0, 1])
    assert {t.worker for t in streamed} <= {w.hostname for w in workers}
    state = fold(events).last_visit("each").items
    assert set(state) == {"0", "1"}
    assert all(item["status"] == "done" and item["node"] == "call" for item in state.values())
    assert state["1"]["text"] == "fake reply: item b #fake:delay=0.5"


def test_items_a_failed_map_stopped_write_nothing_after_the_map_ended(cluster):
    cluster.workers(2, pool="threads", size=3)
    # Item 0 fails only after 1.5 s, so that item 1 has begun by then even on a busy
    # machine (failing at once, it sometimes failed the map before item 1 was claimed).
    graph = flows.mapped(["a #fake:delay=1.5 #fake:status=400", "b #fake:delay=5"], item_events=2)
    inner = graph["nodes"][1]["config"]["flow"]
    inner["nodes"][1]["config"]["prompt"] = "item {{ item }}"  # each item's own directives
    run = finished(cluster.start(graph))
    assert run.status == Run.Status.FAILED
    # Item 1 was stopped mid-call, after its map had failed: let its worker end it.
    item = NodeTask.objects.filter(run=run, item=1, status=NodeTask.Status.DONE)
    stopped = wait_for(lambda: item.first(), 30, message="item 1 to end")
    assert stopped.result["status"] == "cancelled" and stopped.cancel
    events = sound_log(run)
    [failed] = [e for e in events if e["type"] == "node_failed" and e["node"] == "each"]
    assert "item 0 failed" in failed["error"]
    items = [e for e in events if e["type"] == "node_item"]
    assert {e["item"] for e in items} == {0, 1}  # both began while the map ran
    # Its end was not written into a visit, and a log, that had closed.
    assert all(e["seq"] < failed["seq"] for e in items)
    assert events[-1]["type"] == "run_finished"
