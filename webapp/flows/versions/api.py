"""``/api/flows/{id}/versions``: a flow's versions (list, get, diff, restore).

Viewers may read; editors restore. A restore names the version it builds on and gets 409
when someone saved since, exactly as saves do. Export and import: ``flows/transfer/api.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from graphs.errors import FlowInvalid
from webapp.api_schema import (
    MAX_INT64,
    BodyIn,
    FlowDocumentOut,
    GraphDiffOut,
    Id,
    PageQuery,
    VersionNumber,
    page_model,
    paginate,
)
from webapp.auth_api import api_auth
from webapp.flows import access, services
from webapp.flows.api import (
    PROBLEMS_HELP,
    FlowProblemOut,
    InvalidOut,
    SavedOut,
    StaleOut,
    invalid,
    stale_base,
    warnings_json,
)
from webapp.flows.models import Flow, FlowVersion, Publication
from webapp.flows.versions import service as versions
from webapp.problems import responses

router = Router(auth=api_auth, tags=["versions"])


class VersionOut(Schema):
    number: int
    author: str | None
    created: dt.datetime
    message: str
    current: bool
    published: bool = Field(description="Runs from outside the editor run this version.")
    problems: list[FlowProblemOut] = Field([], description=PROBLEMS_HELP)


class VersionDetailOut(VersionOut):
    graph: FlowDocumentOut


VersionPageOut = page_model("VersionPageOut", VersionOut)


class DiffQuery(Schema):
    a: VersionNumber = Field(..., description="The version to compare from.")
    b: VersionNumber = Field(..., description="The version to compare to.")


class DiffOut(GraphDiffOut):
    a: int
    b: int


class RestoreIn(BodyIn):
    base_version: int = Field(..., ge=1, le=MAX_INT64, description="The version you last saw.")


def version_out(version: FlowVersion, flow: Flow, graph: bool = False) -> dict[str, Any]:
    out = {
        "number": version.number,
        "author": version.author.username if version.author else None,
        "created": version.created,
        "message": version.message,
        "current": version.number == flow.version,
        "published": version.pk == flow.published_id,
        "problems": version.problems,
    }
    if graph:
        out["graph"] = version.graph
    return out


@router.get("/{flow_id}/versions", response={200: VersionPageOut, **responses(404)})
def version_list(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """The flow's versions, newest first."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    return paginate(
        request, versions.history(flow), page, lambda version: version_out(version, flow)
    )


# exclude_unset: a key change has no "before" when added, no "after" when removed.
@router.get(
    "/{flow_id}/versions/diff", response={200: DiffOut, **responses(404)}, exclude_unset=True
)
def version_diff(request: HttpRequest, flow_id: Id, query: Query[DiffQuery]) -> Any:
    """What changed from version a to version b: nodes and edges added, removed, changed
    (with each changed key's before and after); moves are listed apart."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    _, _, changes = versions.diff(flow, query.a, query.b)
    return {"a": query.a, "b": query.b, **changes.as_dict()}


@router.get("/{flow_id}/versions/{number}", response={200: VersionDetailOut, **responses(404)})
def version_detail(request: HttpRequest, flow_id: Id, number: VersionNumber) -> Any:
    """One version: who saved it, when and why, and its document."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    return version_out(versions.get(flow, number), flow, graph=True)


@router.post(
    "/{flow_id}/versions/{number}/restore",
    response={201: SavedOut, 400: InvalidOut, **responses(403, 404), 409: StaleOut},
)
def version_restore(
    request: HttpRequest, flow_id: Id, number: VersionNumber, payload: RestoreIn
) -> Any:
    """Save version `number`'s graph again as a new version (message "restored vN")."""
    flow = access.flow_for_editor(request.auth, flow_id)
    try:
        saved = versions.restore(flow, request.auth, number, payload.base_version)
    except FlowInvalid as exc:
        raise invalid(exc, f"version {number} no longer passes the engine's checks") from None
    except services.StaleVersion as exc:
        raise stale_base(payload.base_version, exc) from None
    restored = versions.get(flow, saved)
    warnings = warnings_json(restored.graph)
    return Status(201, {"version": saved, "problems": restored.problems, "warnings": warnings})


class PublishIn(BodyIn):
    version: VersionNumber = Field(..., description="The version to publish.")


class PublishedOut(Schema):
    version: int | None = Field(description="The published version; null: none is.")


class PublicationOut(Schema):
    version: int | None = Field(description="What was published; null: it was unpublished.")
    by: str | None
    at: dt.datetime


PublicationPageOut = page_model("PublicationPageOut", PublicationOut)


@router.put(
    "/{flow_id}/published",
    response={200: PublishedOut, 400: InvalidOut, **responses(403, 404)},
)
def flow_publish(request: HttpRequest, flow_id: Id, payload: PublishIn) -> Any:
    """Publish a version (editors): runs from outside the editor (the API when it names no
    version) run it from now on. Saving never changes what is published."""
    flow = access.flow_for_editor(request.auth, flow_id)
    try:
        version = versions.publish(flow, request.auth, payload.version)
    except FlowInvalid as exc:
        msg = f"version {payload.version} cannot run, so it cannot be published"
        raise invalid(exc, msg) from None
    return {"version": version.number}


@router.delete("/{flow_id}/published", response={204: None, **responses(403, 404)})
def flow_unpublish(request: HttpRequest, flow_id: Id) -> Any:
    """Unpublish (editors): runs from outside run the newest version again."""
    flow = access.flow_for_editor(request.auth, flow_id)
    versions.unpublish(flow, request.auth)
    return Status(204, None)


@router.get("/{flow_id}/publications", response={200: PublicationPageOut, **responses(404)})
def flow_publications(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """Who published or unpublished which version when, newest first."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    return paginate(request, versions.publications(flow), page, publication_out)


def publication_out(publication: Publication) -> dict[str, Any]:
    version = publication.version
    return {
        "version": version.number if version is not None else None,
        "by": publication.by.username if publication.by else None,
        "at": publication.at,
    }
