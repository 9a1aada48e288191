"""The MCP servers page: yours and your teams', their tools as last listed, a form to
register one, and refresh and delete buttons where you may."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from graphs.tools import mcp
from webapp.credentials.service import owner_teams
from webapp.mcpservers import service
from webapp.mcpservers.forms import McpServerForm


def _page(
    request: HttpRequest,
    form: McpServerForm | None = None,
    status: int = 200,
    notice: tuple[str, str] | None = None,
):
    teams = owner_teams(request.user)
    owned = {team.pk for team in teams}
    rows = [
        {
            "server": s,
            "tools": [
                {**t, "name": mcp.tool_name(s.name, str(t.get("name")))}
                for t in s.tools
                if isinstance(t, dict)
            ],
            "can_change": s.team_id is None or s.team_id in owned,
        }
        for s in service.usable(request.user)
    ]
    context = {"form": form or McpServerForm(teams=teams), "rows": rows, "notice": notice}
    return render(request, "mcpservers/list.html", context, status=status)


def _done(request: HttpRequest, level: str, text: str) -> HttpResponse:
    """What an action did: htmx swaps only the page's section, so it is said there (the
    site's messages, above it, would never be seen); without htmx, a message and the page."""
    if request.headers.get("HX-Request"):
        return _page(request, notice=(level, text))
    messages.add_message(request, getattr(messages, level.upper()), text)
    return redirect("mcp_server_list")


@login_required
@require_GET
def mcp_server_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def mcp_server_create(request: HttpRequest) -> HttpResponse:
    form = McpServerForm(request.POST, teams=owner_teams(request.user))
    if not form.is_valid():
        return _page(request, form, 200 if request.headers.get("HX-Request") else 400)
    data = form.cleaned_data
    try:
        server = service.create(request.user, data["name"], data["url"], data["auth"], data["team"])
    except service.ServerRefused as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        # 200 for htmx, which swaps only a success: the form with its problems.
        return _page(request, form, 200 if request.headers.get("HX-Request") else 400)
    # Listed at once, as a person registering a server wants to see what it offers; one
    # that does not answer is kept, saying why, to refresh later.
    return _done(request, *_refreshed(service.refresh(server), "Registered. "))


@login_required
@require_POST
def mcp_server_refresh(request: HttpRequest, server_id: int) -> HttpResponse:
    return _done(request, *_refreshed(service.refresh(service.for_use(request.user, server_id))))


def _refreshed(server, lead: str = "") -> tuple[str, str]:
    if server.refresh_error and not server.tools:
        return "error", f"{lead}Could not list the tools of “{server.name}”: {server.refresh_error}"
    if server.refresh_error:
        return "warning", f"{lead}“{server.name}”: {server.refresh_error}"
    return "success", f"{lead}“{server.name}” lists {len(server.tools)} tools."


@login_required
@require_POST
def mcp_server_delete(request: HttpRequest, server_id: int) -> HttpResponse:
    server = service.for_change(request.user, server_id)
    server.delete()
    return _done(request, "success", f"Deleted the MCP server “{server.name}”.")
