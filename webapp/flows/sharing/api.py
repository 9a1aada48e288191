"""``/api/flows/{id}/shares``, ``/transfer`` and ``/share-links``: who can reach a flow.

All of it is the flow owner's: strangers get 404 (as for a missing flow), viewers and
editors 403. A new link's token is in the creating response only; only its hash is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from webapp.api_schema import BodyIn, Days, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.flows import access
from webapp.flows.models import Flow, FlowShare, ShareLink
from webapp.flows.sharing import service as sharing
from webapp.problems import ProblemError, responses
from webapp.runs.models import Run

router = Router(auth=api_auth, tags=["sharing"])

ShareRole = Literal["viewer", "editor"]


class ShareIn(BodyIn):
    user: str | None = Field(None, description="A username or e-mail.")
    team: Id | None = Field(None, description="The id of a team you are in.")
    role: ShareRole = "viewer"


class ShareRoleIn(BodyIn):
    role: ShareRole


class ShareOut(Schema):
    id: int
    user: str | None = Field(
        description="A person: the username or e-mail it was shared with; their username "
        "once they accept."
    )
    team: int | None
    team_name: str | None
    role: str
    accepted: bool = Field(
        description="False while the person has not accepted (it gives nothing until then); "
        "a team's share needs no acceptance."
    )
    created: dt.datetime


class TransferIn(BodyIn):
    user: str | None = Field(None, description="To this person's personal space.")
    team: Id | None = Field(None, description="Into this team (you edit or own it).")


class FlowPlaceOut(Schema):
    id: int
    owner: str
    team: int | None
    role: str | None = Field(description="The caller's role on the flow now.")


class LinkIn(BodyIn):
    run: Id | None = Field(None, description="Share this run of the flow only.")
    expires_in_days: Days | None = Field(None, description="Null: until revoked.")
    hide_io: bool = Field(False, description="Hide run inputs, outputs and streamed text.")


class LinkOut(Schema):
    id: int
    hint: str = Field(description="The token's first characters, to recognise it.")
    run: int | None
    hide_io: bool
    created: dt.datetime
    expires: dt.datetime | None
    expired: bool


class LinkCreatedOut(LinkOut):
    token: str = Field(description="Shown once: only its hash is stored.")
    url: str = Field(description="The link's page (relative), shown once.")


SharePageOut = page_model("SharePageOut", ShareOut)
LinkPageOut = page_model("LinkPageOut", LinkOut)


def share_out(share: FlowShare) -> dict[str, Any]:
    return {
        "id": share.pk,
        # Until accepted, what the owner typed: never the account it found, if any.
        "user": None if share.team_id else share.shown_name,
        "team": share.team_id,
        "team_name": share.team.name if share.team_id else None,
        "role": share.role,
        "accepted": not share.pending,
        "created": share.created,
    }


def link_out(link: ShareLink) -> dict[str, Any]:
    return {
        "id": link.pk,
        "hint": link.hint,
        "run": link.run_id,
        "hide_io": link.hide_io,
        "created": link.created,
        "expires": link.expires,
        "expired": not sharing.is_live(link),
    }


def owned(request: HttpRequest, flow_id: int) -> Flow:
    return access.flow_for_owner(request.auth, flow_id)


def either_user_or_team(payload: ShareIn | TransferIn) -> None:
    if (payload.user is None) == (payload.team is None):
        raise ProblemError(400, "user_or_team", "give either user or team")


@router.get("/{flow_id}/shares", response={200: SharePageOut, **responses(403, 404)})
def share_list(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """Who the flow is shared with, and in which role (owners)."""
    return paginate(request, list(sharing.shares(owned(request, flow_id))), page, share_out)


@router.post("/{flow_id}/shares", response={201: ShareOut, **responses(400, 403, 404)})
def share_create(request: HttpRequest, flow_id: Id, payload: ShareIn) -> Any:
    """Share with a person or a team; sharing again with them changes the role.

    A person's share waits for them to accept it (``/api/shares/pending``), and is made
    alike whether or not the name or e-mail has an account.
    """
    flow = owned(request, flow_id)
    either_user_or_team(payload)
    try:
        if payload.team is not None:
            share = sharing.share_with_team(flow, request.auth, payload.team, payload.role)
        else:
            share = sharing.share_with_user(flow, request.auth, payload.user, payload.role)
    except sharing.ShareError as exc:
        raise ProblemError(400, "share_refused", str(exc)) from None
    return Status(201, share_out(share))


@router.patch("/{flow_id}/shares/{share_id}", response={200: ShareOut, **responses(403, 404)})
def share_update(request: HttpRequest, flow_id: Id, share_id: Id, payload: ShareRoleIn) -> Any:
    """Change a share's role (owners)."""
    share = sharing.share_of(owned(request, flow_id), share_id)
    return share_out(sharing.change_share(share, payload.role))


@router.delete("/{flow_id}/shares/{share_id}", response={204: None, **responses(403, 404)})
def share_delete(request: HttpRequest, flow_id: Id, share_id: Id) -> Any:
    """Stop sharing with that person or team (owners)."""
    sharing.remove_share(sharing.share_of(owned(request, flow_id), share_id))
    return Status(204, None)


@router.post("/{flow_id}/transfer", response={200: FlowPlaceOut, **responses(400, 403, 404)})
def flow_transfer(request: HttpRequest, flow_id: Id, payload: TransferIn) -> Any:
    """Move the flow to a person's personal space, or into a team where you edit.

    A team's flow goes only to one of its members. You keep access only through a team
    or a share.
    """
    flow = owned(request, flow_id)
    either_user_or_team(payload)
    try:
        if payload.team is not None:
            sharing.transfer_to_team(flow, request.auth, payload.team)
        else:
            sharing.transfer_to_user(flow, request.auth, payload.user)
    except sharing.ShareError as exc:
        raise ProblemError(400, "transfer_refused", str(exc)) from None
    return {
        "id": flow.pk,
        "owner": flow.owner.username,
        "team": flow.team_id,
        "role": access.role_on_flow(request.auth, flow),
    }


@router.get("/{flow_id}/share-links", response={200: LinkPageOut, **responses(403, 404)})
def link_list(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """The links not revoked, expired ones included (``expired: true``; owners)."""
    return paginate(request, list(sharing.links(owned(request, flow_id))), page, link_out)


@router.post("/{flow_id}/share-links", response={201: LinkCreatedOut, **responses(400, 403, 404)})
def link_create(request: HttpRequest, flow_id: Id, payload: LinkIn) -> Any:
    """Make a public read-only link to the flow, or to one of its runs (owners)."""
    flow = owned(request, flow_id)
    run = None
    if payload.run is not None:
        run = Run.objects.filter(pk=payload.run, flow=flow).first()
        if run is None:
            raise ProblemError(
                400, "not_this_flows_run", f"run {payload.run} is not one of this flow's runs"
            )
    link, raw = sharing.create_link(
        flow, request.auth, run=run, days=payload.expires_in_days, hide_io=payload.hide_io
    )
    url = reverse("public_share", args=[raw])
    return Status(201, {**link_out(link), "token": raw, "url": url})


@router.delete("/{flow_id}/share-links/{link_id}", response={204: None, **responses(403, 404)})
def link_revoke(request: HttpRequest, flow_id: Id, link_id: Id) -> Any:
    """Revoke a link: it stops working at once (owners)."""
    sharing.revoke_link(sharing.link_of(owned(request, flow_id), link_id))
    return Status(204, None)
