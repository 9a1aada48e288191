"""``/api/mcp-servers``: the MCP servers you may use (yours, and your teams' where you edit),
registering and deleting them (a team's: its owners), and refreshing their tools.

A server's ``auth`` is a credential's name (``/api/credentials``), never a value.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints

from graphs.credentials import NAME
from graphs.net import MAX_URL_CHARS
from graphs.tools import mcp
from webapp.api_schema import BodyIn, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.credentials.service import owner_teams
from webapp.mcpservers import service
from webapp.mcpservers.models import McpServer
from webapp.problems import ProblemError, responses

router = Router(auth=api_auth, tags=["mcp-servers"])


class McpServerIn(BodyIn):
    name: Annotated[str, StringConstraints(pattern=mcp.SERVER_NAME.pattern)] = Field(
        description="How agents name its tools (mcp:<name>/<tool>): a letter or _, then "
        "letters, digits, _ or -, at most 40 characters; unique among yours, or the team's."
    )
    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)] = Field(
        description="Its Streamable HTTP endpoint, http(s)://. Private and local addresses are "
        "refused unless the deployment allow-lists them (SWITCHYARD_HTTP_ALLOW_HOSTS)."
    )
    auth: Annotated[str, StringConstraints(pattern=NAME.pattern)] | None = Field(
        None,
        description="The name of a credential (bearer, api_key, basic or headers) of the same "
        "owner, added to every request's headers.",
    )
    team: Id | None = Field(None, description="A team you own; else the server is yours.")


class McpToolOut(Schema):
    name: str = Field(description="As agents pick it: mcp:<server>/<tool>.")
    tool: str = Field(description="The server's own name for it.")
    description: str
    input_schema: dict[str, Any]


class McpServerOut(Schema):
    id: int
    name: str
    url: str
    auth: str | None = Field(description="The credential it uses, by name.")
    team: int | None
    team_name: str | None
    tools: list[McpToolOut] = Field(description="What its last refresh listed.")
    refreshed: dt.datetime | None
    refresh_error: str | None = Field(description="Why the last refresh failed, if it did.")
    can_change: bool = Field(description="Whether you may delete it (its owner).")
    created: dt.datetime


McpServerPageOut = page_model("McpServerPageOut", McpServerOut)


def server_out(server: McpServer, can_change: bool) -> dict[str, Any]:
    tools = [
        {
            "name": mcp.tool_name(server.name, str(t.get("name", ""))),
            "tool": str(t.get("name", "")),
            "description": str(t.get("description") or ""),
            "input_schema": t.get("input_schema") or {"type": "object"},
        }
        for t in server.tools
        if isinstance(t, dict)
    ]
    return {
        "id": server.pk,
        "name": server.name,
        "url": server.url,
        "auth": server.auth or None,
        "team": server.team_id,
        "team_name": server.team.name if server.team else None,
        "tools": tools,
        "refreshed": server.refreshed,
        "refresh_error": server.refresh_error or None,
        "can_change": can_change,
        "created": server.created,
    }


def _can_change(user, server: McpServer) -> bool:
    return server.team_id is None or server.team_id in {t.pk for t in owner_teams(user)}


@router.get("", response=McpServerPageOut)
def mcp_server_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """The MCP servers you may use: yours, and those of the teams you edit in."""
    owned = {team.pk for team in owner_teams(request.auth)}

    def out(server: McpServer) -> dict[str, Any]:
        return server_out(server, server.team_id is None or server.team_id in owned)

    return paginate(request, service.usable(request.auth), page, out)


@router.post("", response={201: McpServerOut, **responses(400, 403, 404)})
def mcp_server_create(request: HttpRequest, payload: McpServerIn) -> Any:
    """Register an MCP server, yours or a team's (its owners only). Its tools are listed
    by a refresh."""
    try:
        server = service.create(
            request.auth, payload.name, payload.url, payload.auth, team_id=payload.team
        )
    except service.ServerRefused as exc:
        raise ProblemError(
            400, "refused", str(exc), errors=[{"path": f"body.{exc.field}", "message": str(exc)}]
        ) from None
    return Status(201, server_out(server, True))


@router.delete("/{server_id}", response={204: None, **responses(403, 404)})
def mcp_server_delete(request: HttpRequest, server_id: Id) -> Any:
    """Delete an MCP server (yours, or a team's you own); agents naming its tools fail."""
    service.for_change(request.auth, server_id).delete()
    return Status(204, None)


@router.post("/{server_id}/refresh", response={200: McpServerOut, **responses(403, 404)})
def mcp_server_refresh(request: HttpRequest, server_id: Id) -> Any:
    """List the server's tools now. A failure (unreachable, refused, timed out) is kept in
    ``refresh_error`` with the tools listed before."""
    server = service.refresh(service.for_use(request.auth, server_id))
    return Status(200, server_out(server, _can_change(request.auth, server)))
