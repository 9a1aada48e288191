"""The celery driver when things go wrong: workers killed or frozen mid-call, tasks delivered
twice, a cancel that must reach other machines, Redis going away. Real ``celery worker``
processes, real PostgreSQL and Redis, the fake Messages API as the model (its request log
says which node called it how often).

Leases are 2 s here (tests/scaleout/conftest.py, ``Cluster``), so a lost worker's node is
taken over within about 3 s by another worker's sweeper.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.contrib.auth import get_user_model

from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from tests.services import HOST, Process, Worker, answers, free_port, wait_for_port
from tests.support.wait import wait_for
from webapp.accounts.models import ApiToken
from webapp.execution import coordinator
from webapp.execution.distributed import QUEUED_NOTICE, CeleryDriver
from webapp.execution.tasks import begin_run, run_node
from webapp.execution.worker import Holder
from webapp.flows import services as flow_services
from webapp.runs.models import CacheEntry, NodeTask, Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

TAKEN_OVER = "taken over elsewhere while it ran: nothing written"
NOT_CLAIMED = "not claimed: a second delivery, a stale epoch or a stopped run"


# Helpers ------------------------------------------------------------------------------


def prompts(cluster) -> Counter[str]:
    """How often each node called the model, by the start of its prompt ("step s2")."""
    return Counter(call.split(" #")[0] for call in cluster.calls())


def task(run: Run, node: str) -> NodeTask:
    return NodeTask.objects.get(run=run, node=node, item=NodeTask.NODE)


def calling(cluster, run: Run, *nodes: str, prefix: str = "step") -> dict[str, NodeTask]:
    """The nodes' tasks once each is running and its model call has reached the server."""

    def ready() -> dict[str, NodeTask] | None:
        calls = cluster.calls()
        tasks = {node: task(run, node) for node in nodes if task_exists(run, node)}
        if len(tasks) == len(nodes) and all(
            t.status == NodeTask.Status.RUNNING
            and any(call.startswith(f"{prefix} {t.node} ") for call in calls)
            for t in tasks.values()
        ):
            return tasks
        return None

    return wait_for(ready, message=f"{nodes} to be calling the model")


def task_exists(run: Run, node: str) -> bool:
    return NodeTask.objects.filter(run=run, node=node, item=NodeTask.NODE).exists()


def by_host(workers: list[Worker]) -> dict[str, Worker]:
    return {worker.hostname: worker for worker in workers}


def takeovers(events: list[dict]) -> list[str]:
    return sorted(e["node"] for e in events if e["type"] == "node_retrying" and e.get("takeover"))


def rows(run: Run) -> dict[str, list]:
    """Everything a worker could write about a run, to compare before and after."""
    return {
        "events": list(RunEvent.objects.filter(run=run).values_list("seq", "payload")),
        "cache": list(CacheEntry.objects.order_by("pk").values()),
        "tasks": list(NodeTask.objects.filter(run=run).order_by("pk").values()),
        "run": list(Run.objects.filter(pk=run.pk).values()),
    }


# Where no worker is to lose its node, a lease long enough that none is lost to a machine
# that other test sessions keep busy.
STEADY = {"SWITCHYARD_NODE_LEASE_S": "10"}


def warm_up(cluster, branches: int) -> None:
    """A small run first, so that each worker has made its first model call: the model SDK
    builds its client and loads its modules then, holding the node's event loop (and so
    its heartbeats) meanwhile, which on a busy machine can outlast a 2 s lease."""
    run = finished(cluster.start(flows.fan_out(branches=branches, delay_s=0.2)))
    assert run.status == Run.Status.SUCCEEDED, run.error
    cluster.model_server.reset()


def log_line(worker: Worker, task: NodeTask, epoch: int, outcome: str) -> bool:
    return f"task {task.pk} epoch {epoch}: {outcome}" in worker.log()


# Workers lost mid-call -----------------------------------------------------------------


def test_a_worker_killed_mid_call_is_replaced_and_only_its_node_runs_again(cluster):
    workers = cluster.workers(2)
    warm_up(cluster, branches=2)
    run = cluster.start(flows.chain([0.2, 3.0, 0.2]))
    s2 = calling(cluster, run, "s2")["s2"]
    victim = by_host(workers)[s2.worker]
    victim.kill()

    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    # s1 and s3 called the model once each; s2 again, since its first call never ended.
    assert prompts(cluster) == {"step s1": 1, "step s2": 2, "step s3": 1}
    assert run.cache_hits == 0  # nothing was answered from the cache instead
    events = sound_log(run)
    assert takeovers(events) == ["s2"]
    retry = next(e for e in events if e["type"] == "node_retrying")
    assert victim.hostname in retry["error"]
    s2.refresh_from_db()
    assert (s2.status, s2.epoch) == ("done", 2)
    assert s2.worker not in ("", victim.hostname)
    others = NodeTask.objects.filter(run=run).exclude(node="s2")
    assert set(others.values_list("epoch", flat=True)) == {1}


def test_a_crash_during_a_fan_out_runs_only_the_branches_that_had_not_finished(cluster):
    # One worker runs every branch at once; b1-b3 answer fast, b4 and b5 are still calling
    # when it is killed. A second worker, started only then, must finish the run.
    (first,) = cluster.workers(1, pool="threads", size=5)
    warm_up(cluster, branches=1)
    run = cluster.start(flows.fan_out(delay_s=0.1, branch_delays=[0.1, 0.1, 0.1, 4.0, 4.0]))
    calling(cluster, run, "b4", "b5", prefix="branch")

    def fast_ones_done() -> bool:
        done = NodeTask.objects.filter(run=run, node__in=["b1", "b2", "b3"], status="done")
        return done.count() == 3

    wait_for(fast_ones_done, message="b1-b3 to finish")
    assert set(
        NodeTask.objects.filter(run=run, node__in=["b4", "b5"]).values_list("status", flat=True)
    ) == {"running"}
    first.kill()
    (second,) = cluster.workers(1, pool="threads", size=5, **STEADY)

    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert prompts(cluster) == {
        "branch b1 on scale-out": 1,
        "branch b2 on scale-out": 1,
        "branch b3 on scale-out": 1,
        "branch b4 on scale-out": 2,
        "branch b5 on scale-out": 2,
        "final": 1,
    }
    assert run.cache_hits == 0
    events = sound_log(run)
    assert takeovers(events) == ["b4", "b5"]
    branches = {t.node: t for t in NodeTask.objects.filter(run=run, node__startswith="b")}
    assert {n: (t.epoch, t.worker) for n, t in branches.items()} == {
        "b1": (1, first.hostname),
        "b2": (1, first.hostname),
        "b3": (1, first.hostname),
        "b4": (2, second.hostname),
        "b5": (2, second.hostname),
    }
    # Every branch's output reached the final call, the re-run ones included.
    final_prompt = next(
        r["messages"][-1]["content"]
        for r in cluster.model_server.message_requests
        if str(r["messages"][-1]["content"]).startswith("final")
    )
    for name in ("b1", "b2", "b3", "b4", "b5"):
        assert f"fake reply: branch {name} on scale-out" in final_prompt


def test_a_nodes_closing_event_is_recorded_with_its_outcome_never_before(transactional_db):
    """node_finished is written in the same transaction as the node's outcome
    (coordinator.finish). Written earlier, by the heartbeat's flush while the node still
    stores its output in the cache, a worker lost before ``finish`` would leave the node
    finished in the log, and its re-run elsewhere would finish it a second time."""
    alice = get_user_model().objects.create_user("alice")
    flow = flow_services.create(alice, "Chain", flows.chain([0.1]))
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)
    s1 = NodeTask.objects.create(run=run, node="s1", iteration=1, inputs={})
    assert coordinator.claim(s1.pk, s1.epoch, "here") is not None
    holder = Holder(s1.pk, s1.epoch)

    async def node() -> str:
        # What graphs.runner.NodeRunner.run does: report the node finished, then store its
        # output in the cache (a database round trip) before it returns its outcome.
        holder.sink({"ts": time.time(), "type": "node_started", "node": "s1", "iteration": 1})
        holder.sink(
            {"ts": time.time(), "type": "node_finished", "node": "s1", "iteration": 1,
             "output": {"text": "done"}, "duration_s": 0.1}
        )  # fmt: skip
        await asyncio.sleep(0.5)  # the cache store
        return "finished"

    assert asyncio.run(holder.hold(node())) == "finished"
    recorded = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    # Up to here the task may still be lost and run again elsewhere: nothing may close it.
    assert "node_finished" not in recorded, recorded
    assert [e["type"] for e in holder.take()][-1:] == ["node_finished"]


# Deliveries twice ----------------------------------------------------------------------


def test_a_node_task_delivered_again_after_its_run_finished_is_a_no_op(cluster):
    (worker,) = cluster.workers(1, **STEADY)
    run = finished(cluster.start(flows.chain([0.1, 0.1])))
    assert run.status == Run.Status.SUCCEEDED, run.error
    calls = prompts(cluster)
    before = rows(run)
    tasks = list(NodeTask.objects.filter(run=run))
    assert len(tasks) == 4

    for t in tasks:
        run_node.apply_async((t.pk, t.epoch))
    again = begin_run.apply_async((run.pk,))  # the run's first message, too
    for t in tasks:
        wait_for(
            lambda t=t: log_line(worker, t, t.epoch, NOT_CLAIMED), message=f"task {t.pk} again"
        )
    wait_for(lambda: f"begin_run[{again.id}] succeeded" in worker.log(), message="begin_run again")

    assert rows(run) == before
    assert prompts(cluster) == calls == {"step s1": 1, "step s2": 1}


def test_a_node_task_delivered_twice_while_it_runs_runs_once(cluster):
    # Two workers: the copy goes to the idle one, while the first still runs the node.
    workers = cluster.workers(2, **STEADY)
    run = cluster.start(flows.chain([3.0]))
    s1 = calling(cluster, run, "s1")["s1"]
    run_node.apply_async((s1.pk, s1.epoch))

    def refused() -> bool:
        return any(log_line(w, s1, 1, NOT_CLAIMED) for w in workers)

    wait_for(refused, message="the second delivery to be refused")
    s1.refresh_from_db()
    assert (s1.status, s1.epoch) == ("running", 1)  # the first delivery still holds it

    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert prompts(cluster) == {"step s1": 1}
    events = sound_log(run)
    assert [e["type"] for e in events].count("node_started") == 3  # topic, s1, out
    assert takeovers(events) == []
    s1.refresh_from_db()
    assert (s1.status, s1.epoch) == ("done", 1)


# A frozen worker ------------------------------------------------------------------------


def test_a_frozen_worker_is_taken_over_and_writes_nothing_when_it_wakes(cluster):
    workers = cluster.workers(2)
    warm_up(cluster, branches=2)
    run = cluster.start(flows.chain([0.2, 3.0, 0.2]))
    s2 = calling(cluster, run, "s2")["s2"]
    frozen = by_host(workers)[s2.worker]
    frozen.freeze()

    run = finished(run)  # while the first worker is still frozen
    assert frozen.state() == "T"
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert prompts(cluster) == {"step s1": 1, "step s2": 2, "step s3": 1}
    before = rows(run)
    # s1, s2 (stored by the second worker) and s3
    assert CacheEntry.objects.filter(run=run).count() == 3

    frozen.thaw()
    # It carries on where it stopped, learns that its lease was taken, and gives up.
    wait_for(lambda: log_line(frozen, s2, 1, TAKEN_OVER), message="the thawed worker to give up")
    time.sleep(2)  # time for any stray write to land
    assert rows(run) == before
    assert prompts(cluster) == {"step s1": 1, "step s2": 2, "step s3": 1}
    events = sound_log(run)
    assert takeovers(events) == ["s2"]


# Cancel ----------------------------------------------------------------------------------


def test_a_cancel_stops_branches_on_two_workers_at_their_next_heartbeat(cluster):
    workers = cluster.workers(2, pool="threads", size=2, **STEADY)
    # The model answers in two minutes: only nodes that heard the cancel stop before that.
    run = cluster.start(flows.fan_out(branches=4, delay_s=120))
    branches = calling(cluster, run, "b1", "b2", "b3", "b4", prefix="branch")
    # Two task threads per worker: the four branches run on both.
    assert {t.worker for t in branches.values()} == {w.hostname for w in workers}
    # The web process has compiled the flow long before anyone presses cancel.
    coordinator.compile_first(run.pk)

    def all_stopped() -> bool:
        run.refresh_from_db()
        open_tasks = NodeTask.objects.filter(run=run).exclude(status=NodeTask.Status.DONE)
        return run.status == Run.Status.CANCELLED and not open_tasks.exists()

    assert coordinator.cancel(run.pk) is True
    # Heartbeats come every 0.2 s (conftest.Cluster): a quarter of the model's two minutes
    # leaves a loaded machine all the room it needs, and still fails a node that waits for
    # its answer.
    wait_for(all_stopped, timeout=30, interval=0.01, message="the run to stop")

    events = sound_log(run)
    failed = {e["node"]: e for e in events if e["type"] == "node_failed"}
    assert set(failed) == {"b1", "b2", "b3", "b4"}
    assert all(e["cancelled"] is True and e["error"] == "cancelled" for e in failed.values())
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"
    assert prompts(cluster)["final"] == 0
    assert set(NodeTask.objects.filter(run=run).values_list("node", flat=True)) == {
        "topic", "b1", "b2", "b3", "b4",
    }  # fmt: skip


# Maps --------------------------------------------------------------------------------------


def test_a_maps_items_spread_over_workers_and_come_back_in_order(cluster):
    workers = cluster.workers(2, pool="threads", size=2, **STEADY)
    run = finished(cluster.start(flows.mapped(["a", "b", "c", "d"], delay_s=1.0)))
    assert run.status == Run.Status.SUCCEEDED, run.error
    results = run.outputs["results"]
    assert [r["result"] if isinstance(r, dict) else r for r in results] == [
        f"fake reply: item {item} #fake:delay=1.0" for item in "abcd"
    ]
    items = NodeTask.objects.filter(run=run, item__gte=0).order_by("item")
    assert list(items.values_list("item", flat=True)) == [0, 1, 2, 3]
    assert set(items.values_list("status", flat=True)) == {"done"}
    assert {t.worker for t in items} == {w.hostname for w in workers}
    assert sorted(prompts(cluster)) == ["item a", "item b", "item c", "item d"]
    events = sound_log(run)
    # Items run on other workers: the map's log gets each one's start and end, in its visit.
    ended = [
        (e["item"], e["status"])
        for e in events
        if e["type"] == "node_item" and e["event"] == "run_finished"
    ]
    assert sorted(ended) == [(i, "succeeded") for i in range(4)]


# Redis down ----------------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of this test's own, on a free port, that the test can stop (as a
    crash: SIGKILL, nothing saved) and start again, empty, on the same port."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        command = [
            "redis-server",
            "--bind", HOST,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        self.process = Process(command, {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}, log_path)

    def start(self) -> None:
        self.process.start()
        wait_for_port(self.port, "private Redis")

    def stop(self) -> None:
        self.process.kill()
        wait_for(lambda: not answers(self.port), timeout=10, message="Redis to stop")


def point_at(url: str) -> None:
    """This process's broker, result backend and channel layer: Redis at `url`."""
    from webapp.celery import app
    from webapp.settings import redis_channel_layer

    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(url)}
    channel_layers.backends.clear()
    app.conf.update(broker_url=url, result_backend=url)
    # The app keeps its connection pools and result backend once made: make them afresh.
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
    app._backend_cache = None
    app._local = threading.local()


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[PrivateRedis]:
    """A Redis this test may stop; this process sends to it while the test runs (workers
    get it with ``env(private_redis)``)."""
    server = PrivateRedis(tmp_path / "redis.log")
    server.start()
    point_at(server.url)
    yield server
    point_at(redis_url)
    server.process.stop()


def env(server: PrivateRedis) -> dict[str, str]:
    return {"REDIS_URL": server.url, "CELERY_RESULT_BACKEND": server.url}


def test_a_run_started_while_redis_is_down_is_queued_and_runs_when_it_returns(
    cluster, private_redis, client
):
    cluster.workers(1, pool="threads", size=4, **env(private_redis), **STEADY)
    alice = get_user_model().objects.create_user("alice", password="correct horse battery")
    _, token = ApiToken.issue(alice, "tests")
    flow = flow_services.create(alice, "Chain", flows.chain([0.2]))
    private_redis.stop()

    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)
    # One attempt, refused at once (retry=False): the caller is not kept waiting for Redis,
    # which would hang here until pytest-timeout.
    assert CeleryDriver.send_begin(run.pk) == QUEUED_NOTICE
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED

    answer = client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["status"] == "queued"
    assert body["notice"] == QUEUED_NOTICE and "queue" in body["notice"]
    by_api = Run.objects.get(pk=body["id"])

    # Nothing can reach a worker while Redis is away: no model is called, nothing ends.
    time.sleep(3)
    assert cluster.calls() == []
    for queued in (run, by_api):
        queued.refresh_from_db()
        assert not queued.finished

    private_redis.start()
    for queued in (run, by_api):
        queued = finished(queued)
        assert queued.status == Run.Status.SUCCEEDED, queued.error
        assert queued.outputs["answer"].startswith("fake reply: step s1 #fake:delay=0.2\n")
        sound_log(queued)
    assert prompts(cluster) == {"step s1": 2}


def test_a_run_keeps_its_events_through_redis_going_down_mid_run_and_completes(
    cluster, private_redis
):
    (worker,) = cluster.workers(1, pool="threads", size=4, **env(private_redis), **STEADY)
    run = cluster.start(flows.chain([0.2, 3.0, 0.2]))
    s2 = calling(cluster, run, "s2")["s2"]
    private_redis.stop()

    # s2 finishes with Redis gone: its events are in PostgreSQL all the same.
    def s2_done() -> bool:
        s2.refresh_from_db()
        return s2.status == NodeTask.Status.DONE

    wait_for(s2_done, message="s2 to finish")
    assert s2.epoch == 1
    s3 = wait_for(lambda: NodeTask.objects.filter(run=run, node="s3").first(), message="s3's task")
    assert s3.enqueued_at is None  # the broker could not take it: the sweeper sends it later
    events = sound_log(run)
    assert [e["node"] for e in events if e["type"] == "node_finished"] == ["topic", "s1", "s2"]
    assert "not broadcast" in worker.log()
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.last_seq == events[-1]["seq"]

    private_redis.start()

    # The worker that ran s2 while Redis went away carries on (it is the only one).
    def reconnected_or_gone() -> bool:
        since_lost = worker.log().rpartition("Connection to broker lost")[2]
        return not worker.alive() or "Connected to" in since_lost

    wait_for(reconnected_or_gone, message="the worker to reconnect to Redis")
    assert worker.alive(), f"the worker died when Redis went away:\n{worker.log()[-3000:]}"
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert prompts(cluster) == {"step s1": 1, "step s2": 1, "step s3": 1}
    events = sound_log(run)
    assert takeovers(events) == []
    assert [e["node"] for e in events if e["type"] == "node_finished"] == [
        "topic", "s1", "s2", "s3", "out",
    ]  # fmt: skip
