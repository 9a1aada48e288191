"""``/api/flows``: export a flow's document, import one as a new flow or a new version.

Viewers may export; editors import a new version; anyone imports a new flow into their own
space or a team where they edit. Importing a version names the version it builds on and
gets 409 when someone saved since, exactly as saves do.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import WithJsonSchema

from graphs.errors import FlowInvalid
from webapp.api_schema import (
    FLOW_DOCUMENT_SCHEMA,
    MAX_INT64,
    BodyIn,
    FlowDocumentOut,
    Id,
    VersionNumber,
)
from webapp.auth_api import api_auth
from webapp.flows import access, services
from webapp.flows.api import (
    FlowCreatedOut,
    InvalidOut,
    Message,
    Name,
    SavedOut,
    StaleOut,
    invalid,
    stale_base,
    warnings_json,
)
from webapp.flows.transfer import service as transfer
from webapp.flows.versions import service as versions
from webapp.problems import responses

# The same tag as the versions' operations: the API documents them together.
router = Router(auth=api_auth, tags=["versions"])

# Documented as the flow document or its JSON text; the engine checks it (400 names the
# node or edge at fault).
DocumentIn = Annotated[
    Any,
    WithJsonSchema({"anyOf": [FLOW_DOCUMENT_SCHEMA, {"type": "string"}]}),
    Field(description="The flow document: a JSON object, or its JSON text (a file's content)."),
]


class ExportQuery(Schema):
    version: VersionNumber | None = Field(None, description="Default: the newest version.")


class ImportIn(BodyIn):
    document: DocumentIn
    name: Name | None = Field(None, description="Default: the document's graph.name.")
    team: Id | None = Field(None, description="A team where you edit; default: your space.")


class ImportVersionIn(BodyIn):
    document: DocumentIn
    base_version: int = Field(..., ge=1, le=MAX_INT64, description="The version you last saw.")
    message: Message | None = None


@router.get("/{flow_id}/export", response={200: FlowDocumentOut, **responses(404)})
def flow_export(request: HttpRequest, flow_id: Id, query: Query[ExportQuery]) -> Any:
    """The version's flow document, as a download (``Content-Disposition``)."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    version = versions.get(flow, query.version or flow.version)
    return transfer.export_response(flow, version)


@router.post("/import", response={201: FlowCreatedOut, 400: InvalidOut, **responses(403, 404)})
def flow_import(request: HttpRequest, payload: ImportIn) -> Any:
    """A new flow from a document, checked by the engine and never run."""
    team = transfer.team_for_import(request.auth, payload.team)
    try:
        flow = transfer.import_flow(request.auth, payload.document, payload.name, team=team)
    except FlowInvalid as exc:
        raise invalid(exc, "the document was not imported") from None
    warnings = warnings_json(payload.document)
    problems = flow.current().problems  # an unfinished flow is imported all the same
    return Status(
        201, {"id": flow.id, "version": flow.version, "problems": problems, "warnings": warnings}
    )


@router.post(
    "/{flow_id}/import",
    response={201: SavedOut, 400: InvalidOut, **responses(403, 404), 409: StaleOut},
)
def flow_import_version(request: HttpRequest, flow_id: Id, payload: ImportVersionIn) -> Any:
    """A new version of the flow from a document, on top of `base_version`."""
    flow = access.flow_for_editor(request.auth, flow_id)
    try:
        number = transfer.import_version(
            flow, request.auth, payload.document, payload.base_version, payload.message or ""
        )
    except FlowInvalid as exc:
        raise invalid(exc, "the document was not imported") from None
    except services.StaleVersion as exc:
        raise stale_base(payload.base_version, exc) from None
    problems = versions.get(flow, number).problems
    return Status(
        201,
        {"version": number, "problems": problems, "warnings": warnings_json(payload.document)},
    )
