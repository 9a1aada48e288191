"""On the embedded default the server process ticks: a real Daphne, sent no request at
all, records a due tick and executes its run in-process."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.services import DaphneServer
from tests.support.wait import wait_for
from tests.webapp.test_publish import greeting
from webapp.flows import services
from webapp.schedules.models import Schedule, Tick


@pytest.fixture
def server(tmp_path, django_db_blocker) -> Iterator[DaphneServer]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        "SWITCHYARD_SCHEDULE_TICK_S": "1",
    }
    server = DaphneServer(env, tmp_path / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")
    yield server
    server.stop()
    assert "Traceback" not in server.process.log(), server.process.log()


def test_the_server_ticks_a_due_schedule_and_runs_it_without_being_asked(server):
    def world() -> int:
        alice = get_user_model().objects.create_user("alice", password="x")
        flow = services.create(alice, "Greet", greeting("Hello"))
        # Daily at the minute that has just begun (UTC): due at once, and not again today.
        minute = timezone.now().replace(second=0, microsecond=0)
        schedule = Schedule.objects.create(
            flow=flow,
            cron=f"{minute.minute} {minute.hour} * * *",
            inputs={"who": "cron"},
            overlap="allow",
            created_by=alice,
            since=minute - dt.timedelta(seconds=1),
        )
        return schedule.pk

    schedule_id = server.orm(world)
    server.start()

    def finished_tick() -> dict | None:
        record = Tick.objects.filter(schedule_id=schedule_id).select_related("run").first()
        if record is None or record.run is None or record.run.status in ("queued", "running"):
            return None
        return {
            "outcome": record.outcome,
            "trigger": record.run.trigger,
            "status": record.run.status,
            "outputs": record.run.outputs,
        }

    done = wait_for(lambda: server.orm(finished_tick), 60, 0.5, "a scheduled run to finish")
    assert done["outcome"] == "started"
    assert (done["trigger"], done["status"]) == ("schedule", "succeeded")
    assert done["outputs"] == {"greeting": "Hello cron"}
    assert server.orm(lambda: Tick.objects.filter(schedule_id=schedule_id).count()) == 1
