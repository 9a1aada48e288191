"""MCP servers: who may use, register, refresh and delete them, and the ones a run may call.

Permissions are the credentials' (``webapp.credentials.service``):

- A personal server is its owner's alone.
- A team's: its editors and owners use it (see it, refresh its tools, pick its tools in
  their agents); only its owners register and delete them. Viewers see none; strangers get
  404, as for anything of a team they are not in.

A run may call its flow's team's servers, or, for a personal flow, those of whoever started
it (the rule that lends credentials), with the credentials of the same owner.

A server's URL is checked when it is registered (scheme, no user:password, and a numeric
address against the deployment's allow-list); a name's addresses are checked on every
request (``graphs.tools.mcp``), where DNS could answer differently.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from graphs import net
from graphs.credentials import HTTP_KINDS, NAME, NAME_HELP
from graphs.settings import tool_settings_from_env
from graphs.tools import mcp
from graphs.tools.base import ToolError, ToolSettings
from webapp.credentials.models import Credential
from webapp.credentials.service import run_credentials
from webapp.mcpservers.models import McpServer
from webapp.teams.models import Membership, Role
from webapp.teams.services import team_for

# What one server's stored listing may take (the JSON of its tools); past it, the tools
# that do not fit are left out and the refresh says so.
MAX_STORED_CHARS = 200_000


class ServerRefused(ValueError):
    """Why a server cannot be registered as asked, naming the field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def tool_settings() -> ToolSettings:
    # Read afresh: registering and refreshing are rare, and the allow-list is the server's.
    return tool_settings_from_env()


def usable(user) -> QuerySet[McpServer]:
    """The servers `user` may use: their own, and their teams' where they edit."""
    teams = Membership.objects.filter(user=user, role__in=Role.at_least(Role.EDITOR))
    return (
        McpServer.objects.filter(Q(owner=user) | Q(team__in=teams.values("team_id")))
        .select_related("team")
        .order_by("team__name", "name", "pk")
    )


def create(
    user, name: str, url: str, auth: str | None = None, team_id: int | None = None
) -> McpServer:
    """Register a server: personal, or the team's (its owners only: Http404 for strangers,
    PermissionDenied for its other members). Its tools are listed by ``refresh``."""
    team = team_for(user, team_id, Role.OWNER).team if team_id is not None else None
    if not mcp.SERVER_NAME.fullmatch(name or ""):
        raise ServerRefused("name", f"the name must be {mcp.SERVER_NAME_HELP}")
    url = (url or "").strip()
    try:
        net.check_url(url, allow=tool_settings().http_allow)
    except net.NetError as exc:
        raise ServerRefused("url", f"the URL cannot be used: {exc}") from None
    auth = (auth or "").strip()
    if auth:
        problem = _auth_problem(auth, team.pk if team else None, user.pk)
        if problem:
            raise ServerRefused("auth", problem)
    server = McpServer(
        owner=None if team else user,
        team=team,
        name=name,
        url=url,
        auth=auth,
        created_by=user,
    )
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError:
        where = f"team {team.name}" if team else "you"
        raise ServerRefused("name", f"{where} already have an MCP server named {name}") from None
    return server


def _auth_problem(auth: str, team_id: int | None, user_id: int) -> str | None:
    if not NAME.fullmatch(auth):
        return f"auth names a credential: {NAME_HELP}"
    found = Credential.objects.filter(name=auth)
    found = found.filter(team_id=team_id) if team_id else found.filter(owner_id=user_id)
    kind = found.values_list("kind", flat=True).first()
    whose = "the team's" if team_id else "your"
    if kind is None:
        return f"there is no credential named {auth} among {whose} credentials"
    if kind not in HTTP_KINDS:
        return f"credential {auth} is a {kind} credential; an MCP server takes one of " + (
            ", ".join(HTTP_KINDS)
        )
    return None


def _get(server_id: int) -> McpServer:
    server = McpServer.objects.select_related("team").filter(pk=server_id).first()
    if server is None:
        raise Http404("No such MCP server.")
    return server


def for_change(user, server_id: int) -> McpServer:
    """A server `user` may delete. Http404 for anything they may not know exists;
    PermissionDenied for a team's server when they are a member but not an owner."""
    server = _get(server_id)
    if server.team_id is None:
        if server.owner_id != user.pk:
            raise Http404("No such MCP server.")
        return server
    try:
        team_for(user, server.team_id, Role.OWNER)
    except PermissionDenied:
        raise PermissionDenied("Only the team's owners may delete its MCP servers.") from None
    return server


def for_use(user, server_id: int) -> McpServer:
    """A server `user` may use (and refresh): theirs, or a team's they edit in. Http404 for
    strangers; PermissionDenied for a team's viewers."""
    server = _get(server_id)
    if server.team_id is None:
        if server.owner_id != user.pk:
            raise Http404("No such MCP server.")
        return server
    try:
        team_for(user, server.team_id, Role.EDITOR)
    except PermissionDenied:
        raise PermissionDenied("Only the team's editors may use its MCP servers.") from None
    return server


def engine_server(server: McpServer) -> mcp.McpServer:
    """The engine's view of a row: its tools as last listed."""
    tools = tuple(mcp.McpToolInfo.from_json(t) for t in server.tools if isinstance(t, dict))
    return mcp.McpServer(server.name, server.url, server.auth or None, tools)


def refresh(server: McpServer) -> McpServer:
    """List the server's tools now and keep them (capped); on failure keep the tools listed
    before and record why in ``refresh_error``."""
    lent = run_credentials(server.team_id, server.owner_id)
    try:
        found = async_to_sync(mcp.tools_of)(engine_server(server), tool_settings(), lent)
    except ToolError as exc:
        server.refresh_error = str(exc)[:2000]
    else:
        server.tools, server.refresh_error = capped([t.as_json() for t in found])
    server.refreshed = timezone.now()
    server.save(update_fields=["tools", "refresh_error", "refreshed", "updated"])
    return server


def capped(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """As many tools as fit in ``MAX_STORED_CHARS``, and a note when some did not."""
    kept: list[dict[str, Any]] = []
    size = 0
    for tool in tools:
        size += len(json.dumps(tool))
        if size > MAX_STORED_CHARS:
            note = (
                f"kept {len(kept)} of {len(tools)} tools: a server's listing is capped at "
                f"{MAX_STORED_CHARS} characters"
            )
            return kept, note
        kept.append(tool)
    return kept, ""


def _scope(team_id: int | None, user_id: int | None) -> QuerySet[McpServer]:
    if team_id is not None:
        return McpServer.objects.filter(team_id=team_id)
    if user_id is not None:
        return McpServer.objects.filter(owner_id=user_id, team__isnull=True)
    return McpServer.objects.none()


def run_servers(team_id: int | None, user_id: int | None) -> dict[str, mcp.McpServer]:
    """The servers a run may call: its flow's team's, else its starter's own."""
    return {row.name: engine_server(row) for row in _scope(team_id, user_id)}


def offered_tools(team_id: int | None, user_id: int) -> list[mcp.McpToolInfo]:
    """The MCP tools an agent's tools picker offers an editor of a flow: those of the servers
    a run of it would be lent when they start it, named ``mcp:<server>/<tool>``."""
    return mcp.listing(run_servers(team_id, user_id))


def names_mcp_tools(document: object) -> bool:
    """Whether a flow document (inline flows of map nodes included) has an agent that
    names an ``mcp:`` tool."""
    if isinstance(document, dict):
        config = document.get("config")
        if document.get("type") == "agent" and isinstance(config, dict):
            tools = config.get("tools")
            if isinstance(tools, list) and any(
                isinstance(t, str) and t.startswith(mcp.PREFIX) for t in tools
            ):
                return True
        return any(names_mcp_tools(value) for value in document.values())
    if isinstance(document, list):
        return any(names_mcp_tools(value) for value in document)
    return False
