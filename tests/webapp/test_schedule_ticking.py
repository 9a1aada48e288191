"""Ticking schedules (webapp.schedules.service.tick) on the real database, with the clock
passed in. Bob (an editor of alice's team flow) made the schedules, so runs start as him.
The race between processes is tests/scaleout/test_schedule_race.py."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.webapp.test_publish import greeting
from webapp.flows import services
from webapp.flows.versions import service as versions
from webapp.runs.models import Run
from webapp.schedules import service
from webapp.schedules.models import Schedule, Tick
from webapp.teams.models import Membership

T0 = dt.datetime(2026, 3, 2, 10, 0, 30, tzinfo=dt.UTC)  # a Monday, just after 10:00
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Greet", greeting("Hello"), team=team)


def schedule(flow, bob, **fields) -> Schedule:
    made = service.create(
        flow,
        bob,
        cron=fields.pop("cron", "0 * * * *"),
        timezone=fields.pop("timezone", "UTC"),
        inputs=fields.pop("inputs", {"who": "world"}),
        overlap=fields.pop("overlap", "allow"),
        enabled=True,
        now=fields.pop("now", T0),
    )
    assert not fields
    return made


def at(hours: float, seconds: int = 5) -> dt.datetime:
    """``hours`` after 10:00 on T0's day, a few seconds late as a ticker would be."""
    return T0.replace(second=0) + dt.timedelta(hours=hours, seconds=seconds)


def ticks(sched: Schedule) -> list[tuple[str, int]]:
    return [(t.outcome, t.missed) for t in Tick.objects.filter(schedule=sched).order_by("tick")]


def test_a_tick_starts_one_run_of_the_published_version_as_the_schedules_maker(flow, alice, bob):
    services.save(flow, alice, greeting("Hi"), 1)
    versions.publish(flow, alice, 1)
    schedule(flow, bob)
    assert service.tick(at(0.5)).as_dict()["started"] == 0  # nothing due before 11:00
    report = service.tick(at(1))
    assert report.started == 1
    run = Run.objects.get()
    assert (run.trigger, run.started_by, run.flow_version.number) == ("schedule", bob, 1)
    assert run.inputs == {"who": "world"}
    record = Tick.objects.get()
    assert (record.tick, record.run, record.outcome) == (at(1, 0), run, "started")


def test_ticking_again_at_the_same_moment_starts_nothing_more(flow, bob):
    schedule(flow, bob)
    for _ in range(3):
        service.tick(at(1))
    service.tick(at(1, 40))
    assert Run.objects.count() == 1
    assert Tick.objects.count() == 1


def test_each_fire_time_gets_its_tick(flow, bob):
    sched = schedule(flow, bob)
    for hour in (1, 2, 3):
        service.tick(at(hour))
    assert ticks(sched) == [("started", 0)] * 3
    assert Run.objects.filter(trigger="schedule").count() == 3


def test_after_downtime_one_catch_up_run_says_how_many_ticks_were_missed(flow, bob):
    sched = schedule(flow, bob)
    service.tick(at(1))
    # Down from 11:00 to 16:20: 12:00 .. 16:00 are due; one run, for 16:00.
    report = service.tick(at(6, 20 * 60))
    assert report.catch_up == 1
    assert ticks(sched) == [("started", 0), ("catch_up", 4)]
    assert Tick.objects.get(outcome="catch_up").tick == at(6, 0)
    assert Run.objects.count() == 2
    # Back on time afterwards.
    service.tick(at(7))
    assert ticks(sched)[-1] == ("started", 0)


def test_skip_overlap_records_a_skip_while_the_last_run_is_going(flow, bob):
    sched = schedule(flow, bob, overlap="skip")
    service.tick(at(1))
    first = Run.objects.get()
    assert first.status == "queued"  # nothing executes runs in this test: still going
    service.tick(at(2))
    assert ticks(sched) == [("started", 0), ("skipped_overlap", 0)]
    assert Run.objects.count() == 1
    Run.objects.filter(pk=first.pk).update(status="succeeded")
    service.tick(at(3))
    assert ticks(sched)[-1] == ("started", 0)
    assert Run.objects.count() == 2


def test_allow_overlap_starts_a_run_whatever_the_last_one_is_doing(flow, bob):
    sched = schedule(flow, bob, overlap="allow")
    service.tick(at(1))
    service.tick(at(2))
    assert ticks(sched) == [("started", 0), ("started", 0)]
    assert list(Run.objects.values_list("status", flat=True)) == ["queued", "queued"]


def test_inputs_are_checked_again_when_the_tick_fires(flow, alice, bob):
    sched = schedule(flow, bob)
    renamed = greeting("Hi")
    renamed["nodes"][0]["config"]["name"] = "name"
    services.save(flow, alice, renamed, 1)  # nothing published: the newest runs
    service.tick(at(1))
    record = Tick.objects.get(schedule=sched)
    assert (record.outcome, record.run) == ("failed", None)
    assert "unknown input 'who'" in record.reason
    assert Run.objects.count() == 0


def test_a_maker_who_lost_the_editor_role_starts_nothing(flow, bob, team):
    sched = schedule(flow, bob)
    Membership.objects.filter(team=team, user=bob).update(role="viewer")
    service.tick(at(1))
    record = Tick.objects.get(schedule=sched)
    assert record.outcome == "failed"
    assert "bob, who made the schedule, may no longer run this flow" in record.reason
    assert Run.objects.count() == 0


@override_settings(MAX_RUNS_IN_FLIGHT=1)
def test_a_tick_refused_by_the_run_limits_is_recorded_as_failed(flow, bob):
    sched = schedule(flow, bob, overlap="allow")
    service.tick(at(1))
    service.tick(at(2))
    assert [t[0] for t in ticks(sched)] == ["started", "failed"]
    assert "MAX_RUNS_IN_FLIGHT=1" in Tick.objects.get(outcome="failed").reason
    assert Run.objects.count() == 1


def test_a_disabled_schedule_does_not_tick_and_enabling_it_does_not_catch_up(flow, bob):
    sched = schedule(flow, bob)
    service.update(sched, {"enabled": False}, now=at(0.5))
    assert service.tick(at(3)).as_dict() == dict.fromkeys(
        ["started", "catch_up", "skipped_overlap", "failed", "lost"], 0
    )
    service.update(sched, {"enabled": True}, now=at(3, 30))
    service.tick(at(3, 40))
    assert Tick.objects.count() == 0
    service.tick(at(4))
    assert ticks(sched) == [("started", 0)]


def test_schedules_follow_their_time_zone(flow, bob):
    # 09:00 in New York is 14:00 UTC in winter.
    schedule(flow, bob, cron="0 9 * * *", timezone="America/New_York")
    service.tick(dt.datetime(2026, 3, 2, 13, 59, tzinfo=dt.UTC))
    assert Tick.objects.count() == 0
    service.tick(dt.datetime(2026, 3, 2, 14, 0, 10, tzinfo=dt.UTC))
    assert Tick.objects.get().tick == dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


def test_one_broken_schedule_does_not_stop_the_others(flow, bob):
    broken = schedule(flow, bob)
    Schedule.objects.filter(pk=broken.pk).update(timezone="Not/AZone")
    good = schedule(flow, bob)
    assert service.tick(at(1)).started == 1
    assert ticks(good) == [("started", 0)]
    assert ticks(broken) == []


def test_the_management_command_ticks_once_at_the_time_given(flow, bob):
    schedule(flow, bob)
    out = StringIO()
    call_command("tick_schedules", "--now", at(1).isoformat(), stdout=out)
    assert json.loads(out.getvalue())["started"] == 1
    assert Run.objects.get().trigger == "schedule"
    out = StringIO()
    call_command("tick_schedules", "--now", at(1).isoformat(), stdout=out)
    assert json.loads(out.getvalue())["started"] == 0


def test_the_management_command_refuses_a_time_without_an_offset(db):
    with pytest.raises(CommandError, match="needs an offset"):
        call_command("tick_schedules", "--now", "2026-03-02T10:00:00")
