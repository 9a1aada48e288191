"""Schedule ticks with processes racing, on PostgreSQL with the celery driver: each tick
gets one run however many tick it at the same instant.

Two ways in: threads with their own database connections, released together by a barrier,
each ticking the same clock (and, underneath, racing inserts of one Tick with no row
lock to queue them, where the UNIQUE (schedule, tick) alone decides); and real
``manage.py tick_schedules`` processes started together. The clock is passed in, never
slept on.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.scaleout.conftest import finished
from tests.support.wait import wait_for
from webapp.flows import services
from webapp.runs.models import Run
from webapp.schedules import service, timing
from webapp.schedules.models import Schedule, Tick

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 2, 10, 0, 30, tzinfo=dt.UTC)


def minute(n: int) -> dt.datetime:
    """n minutes after 10:00, two seconds late, as a ticker would be."""
    return T0.replace(second=2) + dt.timedelta(minutes=n)


def make_schedules(count: int) -> list[Schedule]:
    alice = get_user_model().objects.create_user("alice", "alice@example.com")
    flow = services.create(alice, "Race", services.starter_graph("Race"))
    return [
        service.create(
            flow,
            alice,
            cron="* * * * *",
            timezone="Europe/Paris",
            inputs={"input": f"schedule {i}"},
            overlap="allow",
            enabled=True,
            now=T0,
        )
        for i in range(count)
    ]


def assert_one_run_per_tick(schedules: list[Schedule], minutes: range) -> None:
    for schedule in schedules:
        records = list(Tick.objects.filter(schedule=schedule).order_by("tick"))
        assert [r.tick for r in records] == [minute(n).replace(second=0) for n in minutes]
        assert {r.outcome for r in records} == {"started"}
        assert len({r.run_id for r in records}) == len(records)
    runs = Run.objects.filter(trigger="schedule")
    assert runs.count() == len(schedules) * len(minutes)


def test_eight_threads_ticking_the_same_instants_start_one_run_per_tick(transactional_db):
    schedules = make_schedules(3)
    barrier = threading.Barrier(8)
    reports: list[dict[str, int]] = []

    def ticker() -> None:
        try:
            for n in range(1, 6):
                barrier.wait()
                reports.append(service.tick(minute(n)).as_dict())
        finally:
            connection.close()

    threads = [threading.Thread(target=ticker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reports) == 40
    assert sum(r["started"] for r in reports) == 15  # 3 schedules x 5 minutes
    assert sum(r["failed"] + r["catch_up"] + r["skipped_overlap"] for r in reports) == 0
    assert_one_run_per_tick(schedules, range(1, 6))
    assert connection.vendor == "postgresql"


def test_without_the_row_lock_the_unique_insert_alone_lets_one_tick_win(transactional_db):
    (schedule,) = make_schedules(1)
    due = timing.due_ticks(schedule.cron, schedule.timezone, schedule.since, minute(1))[0]
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def fire() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                outcomes.append(service._fire(Schedule.objects.get(pk=schedule.pk), due))
        except IntegrityError:
            outcomes.append("lost")
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(outcomes) == {"started": 1, "lost": 5}
    assert Tick.objects.count() == 1
    assert Run.objects.count() == 1


def test_two_tick_schedules_processes_started_together_start_one_run_per_tick(
    transactional_db, service_env
):
    schedules = make_schedules(2)
    # Each process ticks minutes 1, 2, 3, then 30 (after an outage), as fast as it can:
    # the two race for every tick of both schedules.
    times = [minute(n) for n in (1, 2, 3, 30)]
    command = [sys.executable, "manage.py", "tick_schedules"]
    for now in times:
        command += ["--now", now.isoformat()]
    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=service_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["started"] for r in reports) == 6, reports  # 2 schedules x 3 minutes
    assert sum(r["catch_up"] for r in reports) == 2, reports  # one each for 4..30
    assert sum(r["failed"] + r["skipped_overlap"] for r in reports) == 0, reports
    for schedule in schedules:
        records = list(Tick.objects.filter(schedule=schedule).order_by("tick"))
        assert [(r.outcome, r.missed) for r in records] == [("started", 0)] * 3 + [("catch_up", 26)]
        assert [r.tick for r in records] == [t.replace(second=0) for t in times]
        assert len({r.run_id for r in records}) == 4
    assert Run.objects.filter(trigger="schedule").count() == 8


def test_two_workers_ticking_on_their_own_start_and_execute_one_run_per_tick(cluster):
    # Due at once (the minute just begun, daily), and not again for a day.
    now = timezone.now().replace(second=0, microsecond=0)
    (schedule,) = make_schedules(1)
    Schedule.objects.filter(pk=schedule.pk).update(
        cron=f"{now.minute} {now.hour} * * *", timezone="UTC", since=now - dt.timedelta(seconds=1)
    )
    cluster.workers(2, pool="threads", size=2, SWITCHYARD_SCHEDULE_TICK_S="1")
    record = wait_for(
        lambda: Tick.objects.filter(schedule=schedule, run__isnull=False).first(),
        90,
        message="a worker to tick the schedule",
    )
    run = finished(record.run)
    assert (record.outcome, run.trigger, run.status) == ("started", "schedule", "succeeded")
    # Both workers ticked every second while the run went on: the tick is still the only one.
    assert Tick.objects.filter(schedule=schedule).count() == 1
    assert Run.objects.filter(trigger="schedule").count() == 1
