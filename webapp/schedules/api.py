"""``/api/flows/{id}/schedules``: run a flow on a cron expression, and what each tick did.

Viewers read schedules and their ticks; editors create, change and delete them;
strangers get 404 as for a missing flow. A bad cron expression, time zone or set of
inputs is a 400 whose ``errors`` name the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import Http404, HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from graphs.errors import FlowInvalid
from webapp.api_schema import BodyIn, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.flows import access
from webapp.flows.api import InvalidOut, invalid
from webapp.flows.models import Flow
from webapp.problems import ProblemError, responses
from webapp.schedules import service, timing
from webapp.schedules.models import Schedule, Tick

router = Router(auth=api_auth, tags=["schedules"])

Overlap = Literal["skip", "allow"]
CRON_HELP = (
    "Five fields: minute hour day-of-month month day-of-week (`*/15 9-17 * * MON-FRI`), "
    "read in `timezone`."
)
OVERLAP_HELP = "skip: no run for a tick while the schedule's last run is still going; allow: run."


class ScheduleIn(BodyIn):
    cron: str = Field(..., max_length=200, description=CRON_HELP)
    timezone: str = Field("UTC", max_length=64, description="An IANA time zone (Europe/Paris).")
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The flow's inputs, by name; checked now and at each tick.",
    )
    overlap: Overlap = Field("skip", description=OVERLAP_HELP)
    enabled: bool = True


class ScheduleChangeIn(BodyIn):
    """Only the fields given change (null: unchanged). Enabling it, or changing when it
    fires, starts ticking afresh: the time it was off is not caught up on."""

    cron: str | None = Field(None, max_length=200, description=CRON_HELP)
    timezone: str | None = Field(None, max_length=64)
    inputs: dict[str, Any] | None = None
    overlap: Overlap | None = None
    enabled: bool | None = None


class ScheduleOut(Schema):
    id: int
    flow: int
    cron: str
    timezone: str
    inputs: dict[str, Any]
    overlap: str
    enabled: bool
    created_by: str | None
    created: dt.datetime
    next_fires: list[dt.datetime] = Field(
        description="The next five fire times (UTC); empty while disabled."
    )


class TickOut(Schema):
    tick: dt.datetime = Field(description="The fire time this record is for.")
    outcome: Literal["started", "skipped_overlap", "catch_up", "failed"]
    run: int | None
    run_url: str | None
    missed: int = Field(
        description="A catch-up stands for this many earlier ticks, missed while nothing "
        f"ticked, that got no run ({timing.MAX_COUNTED}: at least that many)."
    )
    reason: str = Field(description="Why it failed to start; empty otherwise.")
    recorded: dt.datetime


SchedulePageOut = page_model("SchedulePageOut", ScheduleOut)
TickPageOut = page_model("TickPageOut", TickOut)


def schedule_out(schedule: Schedule, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "id": schedule.pk,
        "flow": schedule.flow_id,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "inputs": schedule.inputs,
        "overlap": schedule.overlap,
        "enabled": schedule.enabled,
        "created_by": schedule.created_by.username if schedule.created_by else None,
        "created": schedule.created,
        "next_fires": service.next_fires(schedule, now or timezone.now()),
    }


def tick_out(tick: Tick) -> dict[str, Any]:
    return {
        "tick": tick.tick,
        "outcome": tick.outcome,
        "run": tick.run_id,
        "run_url": f"/api/runs/{tick.run_id}" if tick.run_id else None,
        "missed": tick.missed,
        "reason": tick.reason,
        "recorded": tick.recorded,
    }


def schedule_of(flow: Flow, schedule_id: int) -> Schedule:
    schedule = (
        Schedule.objects.select_related("created_by").filter(flow=flow, pk=schedule_id).first()
    )
    if schedule is None:
        raise Http404("No such schedule.")
    return schedule


def refused(exc: Exception) -> ProblemError:
    """A 400 naming the field at fault."""
    if isinstance(exc, timing.BadSchedule):
        field, message = exc.field, exc.message
    else:
        field, message = "inputs", str(exc)
    return ProblemError(
        400,
        "invalid_schedule",
        f"{field}: {message}",
        errors=[{"path": f"body.{field}", "message": message}],
    )


@router.get("/{flow_id}/schedules", response={200: SchedulePageOut, **responses(404)})
def schedule_list(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """The flow's schedules, oldest first, each with its next five fire times."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    now = timezone.now()
    rows = flow.schedules.select_related("created_by").order_by("id")
    return paginate(request, rows, page, lambda s: schedule_out(s, now))


@router.post(
    "/{flow_id}/schedules", response={201: ScheduleOut, 400: InvalidOut, **responses(403, 404)}
)
def schedule_create(request: HttpRequest, flow_id: Id, payload: ScheduleIn) -> Any:
    """Run the flow on a cron expression (editors). Runs start as you, on the flow's
    published version (else its newest), with `trigger` "schedule"; each tick runs once
    however many processes tick, and ticks missed while nothing ticked give one catch-up
    run, not a burst."""
    flow = access.flow_for_editor(request.auth, flow_id)
    try:
        schedule = service.create(
            flow,
            request.auth,
            cron=payload.cron,
            timezone=payload.timezone,
            inputs=payload.inputs,
            overlap=payload.overlap,
            enabled=payload.enabled,
            now=timezone.now(),
        )
    except (timing.BadSchedule, service.BadInputs) as exc:
        raise refused(exc) from None
    except FlowInvalid as exc:
        raise invalid(exc, "the flow cannot run, so it cannot be scheduled") from None
    return Status(201, schedule_out(schedule))


@router.get("/{flow_id}/schedules/{schedule_id}", response={200: ScheduleOut, **responses(404)})
def schedule_detail(request: HttpRequest, flow_id: Id, schedule_id: Id) -> Any:
    """One schedule, with its next five fire times."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    return schedule_out(schedule_of(flow, schedule_id))


@router.patch(
    "/{flow_id}/schedules/{schedule_id}",
    response={200: ScheduleOut, 400: InvalidOut, **responses(403, 404)},
)
def schedule_update(
    request: HttpRequest, flow_id: Id, schedule_id: Id, payload: ScheduleChangeIn
) -> Any:
    """Enable, disable or change a schedule (editors)."""
    flow = access.flow_for_editor(request.auth, flow_id)
    schedule = schedule_of(flow, schedule_id)
    changes = payload.model_dump(exclude_none=True)
    try:
        service.update(schedule, changes, now=timezone.now())
    except (timing.BadSchedule, service.BadInputs) as exc:
        raise refused(exc) from None
    except FlowInvalid as exc:
        raise invalid(exc, "the flow cannot run, so its inputs cannot be checked") from None
    return schedule_out(schedule)


@router.delete("/{flow_id}/schedules/{schedule_id}", response={204: None, **responses(403, 404)})
def schedule_delete(request: HttpRequest, flow_id: Id, schedule_id: Id) -> Any:
    """Delete a schedule and its tick history (editors); the runs it started stay."""
    flow = access.flow_for_editor(request.auth, flow_id)
    schedule_of(flow, schedule_id).delete()
    return Status(204, None)


@router.get(
    "/{flow_id}/schedules/{schedule_id}/ticks", response={200: TickPageOut, **responses(404)}
)
def schedule_ticks(
    request: HttpRequest, flow_id: Id, schedule_id: Id, page: Query[PageQuery]
) -> Any:
    """What each tick did, newest first: started (with its run), catch-up (one run for the
    ticks missed while nothing ticked), skipped because the last run was still going, or
    failed to start (with the reason)."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    schedule = schedule_of(flow, schedule_id)
    return paginate(request, service.history(schedule), page, tick_out)
