"""``/api/flows/{id}/webhooks``: a flow's hooks (editors make, change, rotate and delete
them; viewers see none of them, since a hook's URL is half of what starts a run).

The signing secret is in the answer that makes or rotates a hook, and never again.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints

from webapp.api_schema import BodyIn, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.flows import access
from webapp.flows.models import Flow, Webhook, WebhookDelivery
from webapp.flows.webhooks import service
from webapp.flows.webhooks.receive import hook_url
from webapp.problems import ProblemError, responses

router = Router(auth=api_auth, tags=["webhooks"])

HookName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
InputMap = dict[
    Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")],
    Annotated[str, StringConstraints(min_length=1, max_length=200)],
]
PerMinute = Annotated[int, Field(ge=1, le=service.MAX_PER_MINUTE)]


class HookIn(BodyIn):
    name: HookName
    input_map: InputMap = Field({}, description="Renames: {flow input: field of the body}.")
    per_minute: PerMinute = Field(60, description="Deliveries a minute before 429.")


class HookPatchIn(BodyIn):
    name: HookName | None = None
    enabled: bool | None = None
    input_map: InputMap | None = None
    per_minute: PerMinute | None = None


class HookOut(Schema):
    id: int
    name: str
    url: str = Field(description="Where callers POST signed deliveries.")
    enabled: bool
    input_map: dict[str, str]
    per_minute: int
    created_by: str
    created: dt.datetime
    rotated: dt.datetime | None


class HookSecretOut(HookOut):
    secret: str = Field(description="The signing secret: shown in this answer only.")


class DeliveryOut(Schema):
    at: dt.datetime
    status: int
    detail: str
    run: int | None


HookPageOut = page_model("HookPageOut", HookOut)
DeliveryPageOut = page_model("DeliveryPageOut", DeliveryOut)


def hook_out(request: HttpRequest, hook: Webhook, secret: bool = False) -> dict[str, Any]:
    out = {
        "id": hook.pk,
        "name": hook.name,
        "url": hook_url(request, hook),
        "enabled": hook.enabled,
        "input_map": hook.input_map,
        "per_minute": hook.per_minute,
        "created_by": hook.created_by.username,
        "created": hook.created,
        "rotated": hook.rotated,
    }
    if secret:
        out["secret"] = hook.secret
    return out


def hook_of(flow: Flow, hook_id: int) -> Webhook:
    hook = flow.webhooks.select_related("created_by").filter(pk=hook_id).first()
    if hook is None:
        raise ProblemError(404, "not_found", "the flow has no such hook")
    return hook


@router.get("/{flow_id}/webhooks", response={200: HookPageOut, **responses(403, 404)})
def hook_list(request: HttpRequest, flow_id: Id, page: Query[PageQuery]) -> Any:
    """The flow's hooks (editors), oldest first; no secrets."""
    flow = access.flow_for_editor(request.auth, flow_id)
    hooks = flow.webhooks.select_related("created_by")
    return paginate(request, hooks, page, lambda hook: hook_out(request, hook))


@router.post("/{flow_id}/webhooks", response={201: HookSecretOut, **responses(403, 404)})
def hook_create(request: HttpRequest, flow_id: Id, payload: HookIn) -> Any:
    """Make a hook (editors): its URL, and its signing secret, shown in this answer only.
    Its runs are started as you, of the published version (else the newest)."""
    flow = access.flow_for_editor(request.auth, flow_id)
    hook = service.create(flow, request.auth, payload.name, payload.input_map, payload.per_minute)
    return Status(201, hook_out(request, hook, secret=True))


@router.patch("/{flow_id}/webhooks/{hook_id}", response={200: HookOut, **responses(403, 404)})
def hook_update(request: HttpRequest, flow_id: Id, hook_id: Id, payload: HookPatchIn) -> Any:
    """Rename, enable or disable a hook, or change its input map or rate (editors)."""
    hook = hook_of(access.flow_for_editor(request.auth, flow_id), hook_id)
    changes = payload.model_dump(exclude_none=True)
    for name, value in changes.items():
        setattr(hook, name, value)
    hook.save(update_fields=list(changes) or None)
    return hook_out(request, hook)


@router.post(
    "/{flow_id}/webhooks/{hook_id}/rotate",
    response={200: HookSecretOut, **responses(403, 404)},
)
def hook_rotate(request: HttpRequest, flow_id: Id, hook_id: Id) -> Any:
    """A new signing secret (editors), shown in this answer only; the old one stops working."""
    hook = hook_of(access.flow_for_editor(request.auth, flow_id), hook_id)
    return hook_out(request, service.rotate(hook), secret=True)


@router.delete("/{flow_id}/webhooks/{hook_id}", response={204: None, **responses(403, 404)})
def hook_delete(request: HttpRequest, flow_id: Id, hook_id: Id) -> Any:
    """Delete a hook (editors): its URL answers 404 from now on."""
    hook_of(access.flow_for_editor(request.auth, flow_id), hook_id).delete()
    return Status(204, None)


@router.get(
    "/{flow_id}/webhooks/{hook_id}/deliveries",
    response={200: DeliveryPageOut, **responses(403, 404)},
)
def hook_deliveries(request: HttpRequest, flow_id: Id, hook_id: Id, page: Query[PageQuery]) -> Any:
    """The hook's latest deliveries, newest first: when, the answer's status, why it was
    refused, and the run it started."""
    hook = hook_of(access.flow_for_editor(request.auth, flow_id), hook_id)
    return paginate(request, hook.deliveries.all(), page, delivery_out)


def delivery_out(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "at": delivery.at,
        "status": delivery.status,
        "detail": delivery.detail,
        "run": delivery.run_id,
    }
