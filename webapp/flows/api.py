"""``/api/flows``: create, read, list and save flows, and start runs of them.

A stranger gets 404 exactly like a missing id. Saves never overwrite: each names the
version it was based on and is refused with 409 when someone saved since.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import StringConstraints

from graphs.errors import FlowInvalid
from webapp.auth_api import api_auth
from webapp.flows import access, services
from webapp.runs import drivers
from webapp.runs.services import create_run
from webapp.teams.models import Role
from webapp.teams.services import team_for

router = Router(auth=api_auth, tags=["flows"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class FlowIn(Schema):
    name: Name
    # Any JSON: the engine explains what is wrong with a document better than a schema can.
    graph: Any
    team: int | None = Field(
        None, description="Create it in this team (you edit or own it); else in your space."
    )


class FlowSaveIn(Schema):
    graph: Any
    base_version: int | None = Field(None, description="The version the editor loaded.")
    name: Name | None = None
    message: Message = Field("", description="Optional: what this version changes.")


class RunIn(Schema):
    inputs: dict[str, Any] = {}
    ignore_cache: bool = Field(
        False, description="Run every node, even those with a cached output (and refresh it)."
    )


class FlowCreatedOut(Schema):
    id: int
    version: int


class FlowOut(Schema):
    id: int
    name: str
    version: int
    graph: dict[str, Any]


class FlowSummaryOut(Schema):
    id: int
    name: str
    version: int
    updated: dt.datetime


class SavedOut(Schema):
    version: int


class RunCreatedOut(Schema):
    id: int
    status: str = "queued"
    # Set when the run cannot start yet, and says why (the task queue is unreachable).
    notice: str | None = None


class ProblemOut(Schema):
    message: str
    node: str | None
    edge: list[str | int] | None
    text: str


class InvalidOut(Schema):
    detail: str
    problems: list[ProblemOut]


class DetailOut(Schema):
    detail: str


class StaleOut(Schema):
    detail: str
    current_version: int


def invalid(exc: FlowInvalid, detail: str = "invalid flow") -> Status:
    problems = [
        {
            "message": p.message,
            "node": p.node,
            "edge": list(p.edge) if p.edge is not None else None,
            "text": str(p),
        }
        for p in exc.problems
    ]
    return Status(400, {"detail": detail, "problems": problems})


@router.get("", response=list[FlowSummaryOut])
def flow_list(request: HttpRequest) -> Any:
    return access.visible_flows(request.auth).only("id", "name", "version", "updated")


@router.post("", response={201: FlowCreatedOut, 400: InvalidOut, 403: DetailOut, 404: DetailOut})
def flow_create(request: HttpRequest, payload: FlowIn) -> Any:
    team = None
    if payload.team is not None:
        team = team_for(request.auth, payload.team, Role.EDITOR).team
    try:
        flow = services.create(request.auth, payload.name, payload.graph, team=team)
    except FlowInvalid as exc:
        return invalid(exc)
    return Status(201, {"id": flow.id, "version": flow.version})


@router.get("/{flow_id}", response={200: FlowOut, 404: DetailOut})
def flow_detail(request: HttpRequest, flow_id: int) -> Any:
    flow = access.flow_for_viewer(request.auth, flow_id)
    version = flow.current()
    return {"id": flow.id, "name": flow.name, "version": version.number, "graph": version.graph}


@router.put(
    "/{flow_id}",
    response={200: SavedOut, 400: InvalidOut | DetailOut, 404: DetailOut, 409: StaleOut},
)
def flow_save(request: HttpRequest, flow_id: int, payload: FlowSaveIn) -> Any:
    flow = access.flow_for_editor(request.auth, flow_id)
    if payload.base_version is None:
        # Without it we cannot tell whether someone saved in between, and guessing
        # "latest" would silently overwrite their work.
        return Status(
            400,
            {
                "detail": "base_version is required: send the version this graph was based on "
                f"(the current version is {flow.version})"
            },
        )
    try:
        number = services.save(
            flow,
            request.auth,
            payload.graph,
            payload.base_version,
            name=payload.name,
            message=payload.message,
        )
    except FlowInvalid as exc:
        return invalid(exc)
    except services.StaleVersion as exc:
        return Status(
            409,
            {
                "detail": f"version {payload.base_version} is stale: the flow is now at "
                f"version {exc.current}; reload it and save again",
                "current_version": exc.current,
            },
        )
    return {"version": number}


@router.post("/{flow_id}/runs", response={201: RunCreatedOut, 400: InvalidOut, 404: DetailOut})
async def run_create(request: HttpRequest, flow_id: int, payload: RunIn) -> Any:
    flow = await sync_to_async(access.flow_for_editor)(request.auth, flow_id)
    try:
        run = await sync_to_async(create_run)(
            flow, request.auth, payload.inputs, ignore_cache=payload.ignore_cache
        )
    except FlowInvalid as exc:
        return invalid(exc, "the run cannot start")
    # The driver schedules the run in the server's own event loop, in a fresh context.
    notice = await drivers.start_run(run.id)
    return Status(201, {"id": run.id, "status": run.status, "notice": notice})
