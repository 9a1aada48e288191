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


def _page(request: HttpRequest, form: McpServerForm | None = None, status: int = 200):
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
    context = {"form": form or McpServerForm(teams=teams), "rows": rows}
    return render(request, "mcpservers/list.html", context, status=status)


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
    messages.success(
        request, f"Registered the MCP server “{server.name}”; refresh it to list its tools."
    )
    return redirect("mcp_server_list")


@login_required
@require_POST
def mcp_server_refresh(request: HttpRequest, server_id: int) -> HttpResponse:
    server = service.refresh(service.for_use(request.user, server_id))
    if server.refresh_error and not server.tools:
        messages.error(
            request, f"Could not list the tools of “{server.name}”: {server.refresh_error}"
        )
    elif server.refresh_error:
        messages.warning(request, f"“{server.name}”: {server.refresh_error}")
    else:
        messages.success(request, f"“{server.name}” lists {len(server.tools)} tools.")
    return redirect("mcp_server_list")


@login_required
@require_POST
def mcp_server_delete(request: HttpRequest, server_id: int) -> HttpResponse:
    server = service.for_change(request.user, server_id)
    server.delete()
    messages.success(request, f"Deleted the MCP server “{server.name}”.")
    return redirect("mcp_server_list")
