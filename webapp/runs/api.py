"""``/api/runs``: a run's state, its recorded events, and cancelling it.

Runs are started from their flow (``POST /api/flows/{flow_id}/runs``). A stranger gets
404 exactly like a missing id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from webapp.auth_api import api_auth
from webapp.flows.api import DetailOut
from webapp.runs import drivers
from webapp.runs.access import run_for_editor, run_for_viewer
from webapp.runs.models import Run
from webapp.runs.services import recorded_events

router = Router(auth=api_auth, tags=["runs"])

MAX_EVENTS = 5000


class UsageOut(Schema):
    input_tokens: int
    output_tokens: int


class RunOut(Schema):
    id: int
    flow: int
    flow_version: int
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    usage: UsageOut


class EventsQuery(Schema):
    after: int = Field(0, ge=0, description="Only events with a larger seq.")
    limit: int = Field(MAX_EVENTS, ge=1, le=MAX_EVENTS)


class StatusOut(Schema):
    status: str


@router.get("/{run_id}", response={200: RunOut, 404: DetailOut})
def run_detail(request: HttpRequest, run_id: int) -> Any:
    run = run_for_viewer(request.auth, run_id)
    return {
        "id": run.id,
        "flow": run.flow_id,
        "flow_version": run.flow_version.number,
        "status": run.status,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "usage": run.usage,
    }


@router.get("/{run_id}/events", response={200: list[dict[str, Any]], 404: DetailOut})
def run_events(request: HttpRequest, run_id: int, query: Query[EventsQuery]) -> Any:
    run = run_for_viewer(request.auth, run_id)
    return recorded_events(run, query.after, query.limit)


@router.post("/{run_id}/cancel", response={202: StatusOut, 404: DetailOut})
async def run_cancel(request: HttpRequest, run_id: int) -> Any:
    run = await sync_to_async(run_for_editor)(request.auth, run_id)
    # Awaited here: the driver reaches the run through the server's own event loop.
    await drivers.cancel_run(run.id)
    status = await Run.objects.values_list("status", flat=True).aget(pk=run.id)
    return Status(202, {"status": status})
