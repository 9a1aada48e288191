"""``/api/flows/{id}/chat-links``: a flow's chat links (editors make, change and delete
them; viewers and strangers get 403 and 404, as for webhooks). A link's token and embed
snippet are in every answer: they are meant for other sites' pages.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints

from webapp.api_schema import BodyIn, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.chat import service
from webapp.chat.models import ChatLink
from webapp.flows import access
from webapp.flows.models import Flow
from webapp.problems import ProblemError, responses
from webapp.runs.services import version_for_outside

router = Router(auth=api_auth, tags=["chat"])

LinkName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
PerMinute = Annotated[int, Field(ge=1, le=service.MAX_PER_MINUTE)]


class ChatLinkIn(BodyIn):
    name: LinkName
    allowed_origins: list[str] = Field(
        [], description="Origins (scheme://host[:port]) that may embed the chat."
    )
    per_minute: PerMinute = Field(60, description="Messages a minute over all visitors.")
    per_visitor_minute: PerMinute = Field(10, description="Messages a minute for one visitor.")


class ChatLinkPatchIn(BodyIn):
    name: LinkName | None = None
    enabled: bool | None = None
    allowed_origins: list[str] | None = None
    per_minute: PerMinute | None = None
    per_visitor_minute: PerMinute | None = None


class ChatLinkOut(Schema):
    id: int
    name: str
    token: str
    url: str = Field(description="The chat page.")
    embed: str = Field(description="The script tag that puts the chat on another page.")
    enabled: bool
    allowed_origins: list[str]
    per_minute: int
    per_visitor_minute: int
    created_by: str
    created: dt.datetime


ChatLinkPageOut = page_model("ChatLinkPageOut", ChatLinkOut)


def link_urls(request: HttpRequest, link: ChatLink) -> dict[str, str]:
    url = request.build_absolute_uri(f"/c/{link.token}/")
    script = request.build_absolute_uri("/c/embed.js")
    return {"url": url, "embed": f'<script src="{script}" data-chat="{link.token}" async></script>'}


def link_out(request: HttpRequest, link: ChatLink) -> dict[str, Any]:
    return {
        "id": link.pk,
        "name": link.name,
        "token": link.token,
        **link_urls(request, link),
        "enabled": link.enabled,
        "allowed_origins": link.allowed_origins,
        "per_minute": link.per_minute,
        "per_visitor_minute": link.per_visitor_minute,
        "created_by": link.created_by.username,
        "created": link.created,
    }


def link_of(flow: Flow, link_id: int) -> ChatLink:
    link = flow.chat_links.select_related("created_by").filter(pk=link_id).first()
    if link is None:
        raise ProblemError(404, "not_found", "the flow has no such chat link")
    return link


def origins(raw: list[str]) -> list[str]:
    try:
        return service.check_origins(raw)
    except ValueError as exc:
        raise ProblemError(400, "bad_origin", str(exc)) from None


@router.get("/{flow_id}/chat-links", response={200: ChatLinkPageOut, **responses(403, 404)})
def chat_link_list(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """The flow's chat links (editors), oldest first."""
    flow = access.flow_for_editor(request.auth, flow_id)
    links = flow.chat_links.select_related("created_by")
    return paginate(request, links, page, lambda link: link_out(request, link))


@router.post("/{flow_id}/chat-links", response={201: ChatLinkOut, **responses(400, 403, 404)})
def chat_link_create(request: HttpRequest, flow_id: Id, payload: ChatLinkIn) -> Any:
    """Make a chat link (editors): a public chat page with the flow's published version
    (else its newest), and its embed snippet. Turns run as you. The flow must be a chat
    flow (an input of kind chat)."""
    flow = access.flow_for_editor(request.auth, flow_id)
    if not service.is_chat_flow(version_for_outside(flow)):
        raise ProblemError(
            400,
            "not_a_chat_flow",
            "the flow's published (else newest) version has no input of kind chat, or no "
            "single reply output",
        )
    link = service.create_link(
        flow,
        request.auth,
        payload.name,
        origins(payload.allowed_origins),
        payload.per_minute,
        payload.per_visitor_minute,
    )
    return Status(201, link_out(request, link))


@router.patch(
    "/{flow_id}/chat-links/{link_id}", response={200: ChatLinkOut, **responses(400, 403, 404)}
)
def chat_link_update(
    request: HttpRequest, flow_id: Id, link_id: Id, payload: ChatLinkPatchIn
) -> Any:
    """Rename, enable or disable a link, or change its origins or rates (editors)."""
    link = link_of(access.flow_for_editor(request.auth, flow_id), link_id)
    changes = payload.model_dump(exclude_none=True)
    if "allowed_origins" in changes:
        changes["allowed_origins"] = origins(changes["allowed_origins"])
    for name, value in changes.items():
        setattr(link, name, value)
    link.save(update_fields=list(changes) or None)
    return link_out(request, link)


@router.delete("/{flow_id}/chat-links/{link_id}", response={204: None, **responses(403, 404)})
def chat_link_delete(request: HttpRequest, flow_id: Id, link_id: Id) -> Any:
    """Delete a link (editors): its page and widget answer 404, its conversations go."""
    link_of(access.flow_for_editor(request.auth, flow_id), link_id).delete()
    return Status(204, None)
