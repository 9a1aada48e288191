"""``/api/flows``: a flow's versions (list, get, diff, restore), export and import.

Viewers may read and export; editors restore and import a new version; anyone imports a
new flow into their own space or a team where they edit. Restores and imports name the
version they build on and get 409 when someone saved since, exactly as saves do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from graphs.errors import FlowInvalid
from webapp.auth_api import api_auth
from webapp.flows import access, services, transfer, versions
from webapp.flows.api import (
    DetailOut,
    FlowCreatedOut,
    InvalidOut,
    Message,
    Name,
    SavedOut,
    StaleOut,
    invalid,
)
from webapp.flows.models import FlowVersion

router = Router(auth=api_auth, tags=["versions"])

Document = Field(
    ...,
    description="The flow document: a JSON object, or its JSON text (say, a file's content).",
)


class VersionOut(Schema):
    number: int
    author: str | None
    created: dt.datetime
    message: str
    current: bool


class VersionDetailOut(VersionOut):
    graph: dict[str, Any]


class VersionPage(Schema):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class DiffQuery(Schema):
    a: int = Field(..., description="The version to compare from.")
    b: int = Field(..., description="The version to compare to.")


class DiffOut(Schema):
    a: int
    b: int
    is_empty: bool
    summary: str
    graph: list[dict[str, Any]]
    nodes: dict[str, list[dict[str, Any]]]
    edges: dict[str, list[dict[str, Any]]]


class ExportQuery(Schema):
    version: int | None = Field(None, description="Default: the newest version.")


class RestoreIn(Schema):
    base_version: int = Field(..., description="The version the caller last saw.")


class ImportIn(Schema):
    document: Any = Document
    name: Name | None = Field(None, description="Default: the document's graph.name.")
    team: int | None = Field(None, description="A team where you edit; default: your space.")


class ImportVersionIn(Schema):
    document: Any = Document
    base_version: int = Field(..., description="The version the caller last saw.")
    message: Message | None = None


def version_out(version: FlowVersion, current: int, graph: bool = False) -> dict[str, Any]:
    out = {
        "number": version.number,
        "author": version.author.username if version.author else None,
        "created": version.created,
        "message": version.message,
        "current": version.number == current,
    }
    if graph:
        out["graph"] = version.graph
    return out


def stale(base_version: int, exc: services.StaleVersion) -> Status:
    return Status(
        409,
        {
            "detail": f"version {base_version} is stale: the flow is now at version "
            f"{exc.current}; nothing was stored",
            "current_version": exc.current,
        },
    )


@router.get("/{flow_id}/versions", response={200: list[VersionOut], 404: DetailOut})
def version_list(request: HttpRequest, flow_id: int, page: Query[VersionPage]) -> Any:
    """The flow's versions, newest first."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    chosen = versions.history(flow)[page.offset : page.offset + page.limit]
    return [version_out(version, flow.version) for version in chosen]


@router.get("/{flow_id}/versions/diff", response={200: DiffOut, 404: DetailOut})
def version_diff(request: HttpRequest, flow_id: int, query: Query[DiffQuery]) -> Any:
    """What changed from version a to version b: nodes and edges added, removed, changed
    (with each changed key's before and after); moves are listed apart."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    _, _, changes = versions.diff(flow, query.a, query.b)
    return {"a": query.a, "b": query.b, **changes.as_dict()}


@router.get("/{flow_id}/versions/{number}", response={200: VersionDetailOut, 404: DetailOut})
def version_detail(request: HttpRequest, flow_id: int, number: int) -> Any:
    flow = access.flow_for_viewer(request.auth, flow_id)
    return version_out(versions.get(flow, number), flow.version, graph=True)


@router.post(
    "/{flow_id}/versions/{number}/restore",
    response={201: SavedOut, 400: InvalidOut, 403: DetailOut, 404: DetailOut, 409: StaleOut},
)
def version_restore(request: HttpRequest, flow_id: int, number: int, payload: RestoreIn) -> Any:
    """Save version `number`'s graph again as a new version (message "restored vN")."""
    flow = access.flow_for_editor(request.auth, flow_id)
    try:
        saved = versions.restore(flow, request.auth, number, payload.base_version)
    except FlowInvalid as exc:
        return invalid(exc, f"version {number} no longer passes the engine's checks")
    except services.StaleVersion as exc:
        return stale(payload.base_version, exc)
    return Status(201, {"version": saved})


@router.get("/{flow_id}/export", response={200: dict[str, Any], 404: DetailOut})
def flow_export(request: HttpRequest, flow_id: int, query: Query[ExportQuery]) -> Any:
    """The version's flow document, as a download (``Content-Disposition``)."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    version = versions.get(flow, query.version or flow.version)
    return transfer.export_response(flow, version)


@router.post(
    "/import", response={201: FlowCreatedOut, 400: InvalidOut, 403: DetailOut, 404: DetailOut}
)
def flow_import(request: HttpRequest, payload: ImportIn) -> Any:
    """A new flow from a document, checked by the engine and never run."""
    team = transfer.team_for_import(request.auth, payload.team)
    try:
        flow = transfer.import_flow(request.auth, payload.document, payload.name, team=team)
    except FlowInvalid as exc:
        return invalid(exc, "the document was not imported")
    return Status(201, {"id": flow.id, "version": flow.version})


@router.post(
    "/{flow_id}/import",
    response={201: SavedOut, 400: InvalidOut, 403: DetailOut, 404: DetailOut, 409: StaleOut},
)
def flow_import_version(request: HttpRequest, flow_id: int, payload: ImportVersionIn) -> Any:
    """A new version of the flow from a document, on top of `base_version`."""
    flow = access.flow_for_editor(request.auth, flow_id)
    try:
        number = transfer.import_version(
            flow, request.auth, payload.document, payload.base_version, payload.message or ""
        )
    except FlowInvalid as exc:
        return invalid(exc, "the document was not imported")
    except services.StaleVersion as exc:
        return stale(payload.base_version, exc)
    return Status(201, {"version": number})
