"""The plumbing the celery driver stands on, with real processes: workers that execute tasks
against this session's PostgreSQL database, and events that cross from one process to a
browser's socket on Daphne through Redis."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import connection
from websockets.sync.client import connect

from tests.services import Worker
from webapp.accounts.models import ApiToken
from webapp.execution.tasks import ping
from webapp.flows import services
from webapp.runs.eventlog import batch_message, run_group
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_session_runs_on_its_own_postgresql_database(postgres_url):
    assert connection.vendor == "postgresql"
    name = connection.settings_dict["NAME"]
    assert name.startswith("test_switchyard_") and postgres_url.endswith(f"/{name}")


def test_a_worker_process_runs_a_task_against_the_session_database(celery_worker, celery_app):
    worker = celery_worker()
    answer = ping.delay().get(timeout=30)
    assert answer["hostname"] == worker.hostname
    assert answer["pid"] == worker.pid  # solo pool: the task ran in the worker process
    assert answer["vendor"] == "postgresql"
    assert answer["database"] == connection.settings_dict["NAME"]


def test_workers_can_be_frozen_thawed_and_killed(celery_worker, celery_app):
    first, second = celery_worker.many(2)

    def answering() -> set[str]:
        replies = celery_app.control.ping(timeout=1.0)
        return {host for reply in replies for host in reply}

    assert answering() == {first.hostname, second.hostname}

    first.freeze()
    assert first.state() == "T"
    assert answering() == {second.hostname}
    first.thaw()
    assert first.state() in ("R", "S")
    assert answering() == {first.hostname, second.hostname}

    first.kill()
    assert first.process.returncode == -9 and not first.alive()
    # Redis drops the dead worker's waiting BRPOP when it sees the socket close; a task sent
    # before that would go to the dead connection.
    time.sleep(0.5)
    answers = [result.get(timeout=30) for result in [ping.delay() for _ in range(3)]]
    assert {answer["hostname"] for answer in answers} == {second.hostname}


def test_events_sent_from_another_process_reach_a_socket_on_daphne(celery_server):
    alice = get_user_model().objects.create_user("alice", password="correct horse battery")
    _, token = ApiToken.issue(alice, "tests")
    flow = services.create(alice, "Chain", services.starter_graph("Chain"))
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)
    headers = {"Authorization": f"Bearer {token}"}

    with connect(
        f"{celery_server.ws_url}/ws/runs/{run.pk}/",
        additional_headers=headers,
        origin=celery_server.url,
        open_timeout=10,
    ) as socket:
        # The consumer is in the run's group once the handshake is done. The batch is not
        # written to the database, so only Redis can bring it to the socket.
        batch = [{"seq": 1, "ts": time.time(), "type": "run_started", "inputs": {}}]
        async_to_sync(get_channel_layer().group_send)(run_group(run.pk), batch_message(batch))
        received = json.loads(socket.recv(timeout=10))
    assert received == {"events": batch}


def test_a_worker_without_the_celery_driver_refuses_to_start(service_env, tmp_path):
    env = {**service_env, "SWITCHYARD_RUN_DRIVER": "inprocess"}
    worker = Worker("refused", env, tmp_path / "refused.log", "solo", 1)
    worker.start()
    assert worker.process.wait(timeout=60) == 1
    assert "a worker needs SWITCHYARD_RUN_DRIVER=celery" in worker.log()
