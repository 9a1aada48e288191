"""``/api/credentials``: your credentials and your teams' (names and kinds; never values).

The value is write-only: sent once in ``POST``, encrypted, and never in any answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints

from graphs.credentials import MAX_VALUE_CHARS, NAME
from webapp.api_schema import BodyIn, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.credentials import service
from webapp.credentials.models import Credential
from webapp.problems import ProblemError, responses

router = Router(auth=api_auth, tags=["credentials"])


class CredentialIn(BodyIn):
    name: Annotated[str, StringConstraints(pattern=NAME.pattern)] = Field(
        description="How flows name it (the http node's auth): a letter or _, then letters, "
        "digits, _ or -, at most 100 characters; unique among yours, or the team's."
    )
    kind: Literal["api_key", "bearer", "basic", "headers", "anthropic_key"]
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALUE_CHARS)] = Field(
        description="The secret: a token or key; user:password for basic; Name: value lines "
        "for headers. Write-only: no answer ever includes it."
    )
    team: Id | None = Field(None, description="A team you own; else the credential is yours.")
    header: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="api_key only: the header it is sent in (default X-API-Key)."
    )


class CredentialOut(Schema):
    id: int
    name: str
    kind: str
    header: str | None = Field(description="api_key only: the header it is sent in.")
    team: int | None
    team_name: str | None
    can_change: bool = Field(description="Whether you may delete it (its owner).")
    created: dt.datetime


CredentialPageOut = page_model("CredentialPageOut", CredentialOut)


def credential_out(credential: Credential, can_change: bool) -> dict[str, Any]:
    return {
        "id": credential.pk,
        "name": credential.name,
        "kind": credential.kind,
        "header": credential.header if credential.kind == "api_key" else None,
        "team": credential.team_id,
        "team_name": credential.team.name if credential.team else None,
        "can_change": can_change,
        "created": credential.created,
    }


@router.get("", response=CredentialPageOut)
def credential_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """The credentials you may use: yours, and those of the teams you edit in."""
    owned = {team.pk for team in service.owner_teams(request.auth)}

    def out(credential: Credential) -> dict[str, Any]:
        mine = credential.team_id is None or credential.team_id in owned
        return credential_out(credential, mine)

    return paginate(request, service.usable(request.auth), page, out)


@router.post("", response={201: CredentialOut, **responses(400, 403, 404)})
def credential_create(request: HttpRequest, payload: CredentialIn) -> Any:
    """Store a credential, yours or a team's (its owners only). The value is encrypted and
    never shown again."""
    try:
        credential = service.create(
            request.auth,
            payload.name,
            payload.kind,
            payload.value,
            team_id=payload.team,
            header=payload.header,
        )
    except service.CredentialRefused as exc:
        raise ProblemError(
            400, "refused", str(exc), errors=[{"path": f"body.{exc.field}", "message": str(exc)}]
        ) from None
    return Status(201, credential_out(credential, True))


@router.delete("/{credential_id}", response={204: None, **responses(403, 404)})
def credential_delete(request: HttpRequest, credential_id: Id) -> Any:
    """Delete a credential (yours, or a team's you own); flows naming it fail to run."""
    service.for_change(request.auth, credential_id).delete()
    return Status(204, None)
