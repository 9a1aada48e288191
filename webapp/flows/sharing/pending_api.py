"""``/api/shares``: flows other people shared with the caller, waiting for an answer.

A share with a person gives nothing until they accept it (``sharing.accept_share``);
declining removes it. Anyone else's share, or one already answered, is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from webapp.api_schema import Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.flows.models import FlowShare
from webapp.flows.sharing import service as sharing
from webapp.problems import responses

router = Router(auth=api_auth, tags=["sharing"])


class PendingShareOut(Schema):
    id: int
    flow: int
    flow_name: str
    role: str
    shared_by: str | None = Field(description="Who shared it; null if their account is gone.")
    created: dt.datetime


class AcceptedShareOut(Schema):
    flow: int
    flow_name: str
    role: str = Field(description="The caller's role on the flow through this share.")


PendingSharePageOut = page_model("PendingSharePageOut", PendingShareOut)


def pending_out(share: FlowShare) -> dict[str, Any]:
    return {
        "id": share.pk,
        "flow": share.flow_id,
        "flow_name": share.flow.name,
        "role": share.role,
        "shared_by": share.created_by.username if share.created_by_id else None,
        "created": share.created,
    }


@router.get("/pending", response=PendingSharePageOut)
def pending_share_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """Shares with you waiting for you to accept or decline them, newest first."""
    return paginate(request, sharing.pending_shares(request.auth), page, pending_out)


@router.post("/{share_id}/accept", response={200: AcceptedShareOut, **responses(404)})
def pending_share_accept(request: HttpRequest, share_id: Id) -> Any:
    """Accept: the flow is yours to open, with the share's role."""
    share = sharing.accept_share(request.auth, share_id)
    return {"flow": share.flow_id, "flow_name": share.flow.name, "role": share.role}


@router.post("/{share_id}/decline", response={204: None, **responses(404)})
def pending_share_decline(request: HttpRequest, share_id: Id) -> Any:
    """Decline: the share is gone."""
    sharing.decline_share(request.auth, share_id)
    return Status(204, None)
