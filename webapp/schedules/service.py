"""Creating and changing schedules, and ticking them.

``tick(now)`` is all a ticker calls, with the clock as a parameter. For each enabled
schedule it locks the schedule's row, asks ``timing.due_ticks`` what is due since the
last recorded tick, and inserts that Tick; the insert's UNIQUE (schedule, tick) makes a
second process that got there at the same instant fail, and it moves on. The run is
created in the same transaction as its Tick, so a Tick that says "started" always has
its run, and the driver is handed the run once both are committed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from graphs.errors import FlowInvalid
from webapp.execution.plans import compiled_version
from webapp.flows import access
from webapp.flows.models import Flow
from webapp.runs import services as runs
from webapp.runs.limits import RunRefused
from webapp.runs.models import Run
from webapp.schedules import timing
from webapp.schedules.models import Schedule, Tick

log = logging.getLogger(__name__)


class BadInputs(ValueError):
    """The schedule's inputs do not fit the flow's inputs (the message says how)."""


def check_inputs(flow: Flow, inputs: Any) -> dict[str, Any]:
    """The inputs, if the version the schedule would run now accepts them."""
    if not isinstance(inputs, dict):
        raise BadInputs("must be a JSON object: {input name: value}")
    compiled = compiled_version(runs.version_for_outside(flow))
    try:
        compiled.resolve_inputs(inputs)
    except FlowInvalid as exc:
        raise BadInputs("; ".join(p.message for p in exc.problems)) from None
    return inputs


def create(
    flow: Flow,
    user,
    *,
    cron: str,
    timezone: str,
    inputs: dict[str, Any],
    overlap: str,
    enabled: bool,
    now: dt.datetime,
) -> Schedule:
    """A new schedule; BadSchedule or BadInputs (nothing stored) when it cannot work."""
    cron = timing.parse_cron(cron)
    timing.parse_zone(timezone)
    return Schedule.objects.create(
        flow=flow,
        cron=cron,
        timezone=timezone,
        inputs=check_inputs(flow, inputs),
        overlap=overlap,
        enabled=enabled,
        created_by=user,
        since=now,
    )


def update(schedule: Schedule, changes: dict[str, Any], *, now: dt.datetime) -> Schedule:
    """Apply ``changes`` (any of cron, timezone, inputs, overlap, enabled).

    Enabling, or changing when it fires, restarts ticking from ``now``: the time it was off
    or on another timing is not caught up on."""
    restart = False
    if "cron" in changes:
        cron = timing.parse_cron(changes["cron"])
        restart |= cron != schedule.cron
        schedule.cron = cron
    if "timezone" in changes:
        timing.parse_zone(changes["timezone"])
        restart |= changes["timezone"] != schedule.timezone
        schedule.timezone = changes["timezone"]
    if "inputs" in changes:
        schedule.inputs = check_inputs(schedule.flow, changes["inputs"])
    if "overlap" in changes:
        schedule.overlap = changes["overlap"]
    if "enabled" in changes:
        restart |= changes["enabled"] and not schedule.enabled
        schedule.enabled = changes["enabled"]
    if restart:
        schedule.since = now
    schedule.save()
    return schedule


def next_fires(schedule: Schedule, now: dt.datetime, count: int = 5) -> list[dt.datetime]:
    """When the schedule fires next (empty while it is disabled)."""
    if not schedule.enabled:
        return []
    return timing.next_fires(schedule.cron, schedule.timezone, now, count)


def history(schedule: Schedule):
    return schedule.ticks.select_related("run").order_by("-tick", "-id")


# Ticking ----------------------------------------------------------------------------


@dataclass
class TickReport:
    """What one call of ``tick`` did, by outcome (``lost``: another process had the tick)."""

    started: int = 0
    catch_up: int = 0
    skipped_overlap: int = 0
    failed: int = 0
    lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def tick(now: dt.datetime) -> TickReport:
    """Record and start every enabled schedule's due tick at ``now``."""
    report = TickReport()
    for schedule_id in Schedule.objects.filter(enabled=True).values_list("pk", flat=True):
        try:
            outcome = tick_one(schedule_id, now)
        except Exception:
            # One broken schedule must not stop the others from ticking.
            log.exception("schedule %s: tick failed", schedule_id)
            continue
        if outcome is not None:
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def tick_one(schedule_id: int, now: dt.datetime) -> str | None:
    """Deal with schedule ``schedule_id``'s due tick; what happened, or None if nothing
    was due."""
    try:
        with transaction.atomic():
            # The row lock queues tickers of one schedule behind each other, so the second
            # sees the first's Tick and finds nothing due; the UNIQUE insert below is what
            # guarantees it where locks do not (SQLite).
            schedule = (
                Schedule.objects.select_for_update(of=("self",))
                .select_related("flow", "created_by")
                .filter(pk=schedule_id, enabled=True)
                .first()
            )
            if schedule is None:
                return None
            last = schedule.ticks.aggregate(last=Max("tick"))["last"]
            since = max(last, schedule.since) if last is not None else schedule.since
            due = timing.due_ticks(schedule.cron, schedule.timezone, since, now)
            if not due:
                return None
            return _fire(schedule, due[0])
    except IntegrityError:
        return "lost"


def _fire(schedule: Schedule, due: timing.Due) -> str:
    record = Tick(schedule=schedule, tick=due.at, missed=due.missed)
    # Inserted first, on its own savepoint: if another process holds this tick, nothing
    # below runs (the IntegrityError ends the whole transaction).
    record.outcome = Tick.Outcome.FAILED
    with transaction.atomic():
        record.save()
    ok = Tick.Outcome.CATCH_UP if due.catch_up else Tick.Outcome.STARTED
    reason = ""
    if schedule.overlap == Schedule.Overlap.SKIP and _last_run_going(schedule, record):
        record.outcome = Tick.Outcome.SKIPPED_OVERLAP
    else:
        try:
            record.run = _start(schedule)
            record.outcome = ok
        except (FlowInvalid, ValueError, RunRefused, PermissionError) as exc:
            record.outcome = Tick.Outcome.FAILED
            reason = str(exc)
    record.reason = reason[:500]
    record.save(update_fields=["run", "outcome", "reason"])
    return {
        Tick.Outcome.STARTED: "started",
        Tick.Outcome.CATCH_UP: "catch_up",
        Tick.Outcome.SKIPPED_OVERLAP: "skipped_overlap",
    }.get(record.outcome, "failed")


def _last_run_going(schedule: Schedule, record: Tick) -> bool:
    last = (
        Tick.objects.filter(schedule=schedule, run__isnull=False)
        .exclude(pk=record.pk)
        .order_by("-tick")
        .values_list("run__status", flat=True)
        .first()
    )
    return last in Run.IN_FLIGHT


def _start(schedule: Schedule) -> Run:
    user = schedule.created_by
    flow = schedule.flow
    if user is None or not user.is_active:
        raise PermissionError("the schedule's creator no longer has an account")
    if not access.can_edit_flow(user, flow.pk):
        raise PermissionError(
            f"{user.username}, who made the schedule, may no longer run this flow"
        )
    # Checked again now: the published version may have changed since the schedule was made.
    inputs = check_inputs(flow, schedule.inputs)
    return runs.create_run(
        flow,
        user,
        inputs,
        version=runs.version_for_outside(flow),
        trigger=Run.Trigger.SCHEDULE,
    )
