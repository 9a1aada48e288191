from __future__ import annotations

import copy
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from graphs.errors import FlowInvalid
from webapp.flows import access, services
from webapp.flows.models import Flow, FlowShare, FlowVersion
from webapp.flows.sharing import service as sharing
from webapp.teams import services as team_services
from webapp.teams.models import Role

NEW_FLOW_NAME = "Untitled flow"


@login_required
@vary_on_headers("HX-Request")
def flow_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    editable = access.editable_flows(request.user).filter(pk=OuterRef("pk"))
    owned = access.owned_flows(request.user).filter(pk=OuterRef("pk"))
    # The current version's description, shown under the name.
    description = FlowVersion.objects.filter(
        flow=OuterRef("pk"), number=OuterRef("version")
    ).values("graph__graph__description")[:1]
    flows = (
        access.visible_flows(request.user)
        .select_related("owner", "team")
        .annotate(
            run_count=Count("runs"),
            can_edit=Exists(editable),
            can_own=Exists(owned),
            description=Subquery(description),
        )
        .order_by("-updated", "-pk")
    )
    if q:
        flows = flows.filter(name__icontains=q)
    flows = list(flows)
    context = {"flows": flows, "spaces": spaces(request.user, flows, keep_empty=not q), "q": q}
    # The search box asks for the list alone; a history restore wants the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    if not partial:
        # Shares waiting for an answer: not among the flows until accepted.
        context["pending_shares"] = sharing.pending_shares(request.user)
    return render(request, "flows/_list.html" if partial else "flows/list.html", context)


def spaces(user, flows: list[Flow], keep_empty: bool = True) -> list[dict[str, Any]]:
    """The flows grouped by where they live: the user's personal space, each of their
    teams, then flows other people shared with them. Each flow gets the user's `role`."""
    roles = team_services.roles_in(user)
    personal: dict[str, Any] = {
        "title": "Personal",
        "team": None,
        "role": Role.OWNER,
        "can_create": True,
        "flows": [],
    }
    teams = {
        team.pk: {
            "title": team.name,
            "team": team,
            "role": roles[team.pk],
            "can_create": Role.rank(roles[team.pk]) >= Role.rank(Role.EDITOR),
            "flows": [],
        }
        for team in team_services.member_teams(user)
    }
    shared: dict[str, Any] = {
        "title": "Shared with me",
        "team": None,
        "role": None,
        "can_create": False,
        "flows": [],
    }
    # A flow shared with one of the user's teams shows in that team's section (as its
    # members see it), not under "Shared with me".
    shared_with_team = dict(
        FlowShare.objects.filter(team_id__in=teams, flow_id__in=[f.pk for f in flows])
        .order_by("pk")
        .values_list("flow_id", "team_id")
    )
    for flow in flows:
        flow.role = Role.OWNER if flow.can_own else Role.EDITOR if flow.can_edit else Role.VIEWER
        if flow.team_id in teams:
            teams[flow.team_id]["flows"].append(flow)
        elif flow.team_id is None and flow.owner_id == user.pk:
            personal["flows"].append(flow)
        elif flow.pk in shared_with_team:
            flow.shared_with_team = True
            teams[shared_with_team[flow.pk]]["flows"].append(flow)
        else:
            shared["flows"].append(flow)
    groups = [personal, *teams.values(), shared]
    return [g for g in groups if g["flows"] or (keep_empty and g is not shared)]


@login_required
@require_POST
def flow_new(request: HttpRequest) -> HttpResponse:
    # ?team=<id>: in that team, for its editors and owners; else in the personal space.
    team = None
    team_id = request.GET.get("team") or request.POST.get("team")
    if team_id:
        if not team_id.isdigit():
            raise Http404("No such team.")
        team = team_services.team_for(request.user, int(team_id), Role.EDITOR).team
    flow = services.create(
        request.user,
        NEW_FLOW_NAME,
        services.starter_graph(NEW_FLOW_NAME),
        message="new",
        team=team,
    )
    return redirect("flow_editor", flow.pk)


@login_required
@require_POST
def flow_duplicate(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = access.flow_for_editor(request.user, flow_id)
    version = flow.current()
    name = f"Copy of {flow.name}"[:200]
    graph = copy.deepcopy(version.graph)
    # Keep the document's own name in step with the flow's, as the examples do.
    graph.setdefault("graph", {})["name"] = name
    message = f"copied from “{flow.name}” v{version.number}"[:500]
    try:
        copied = services.create(request.user, name, graph, message=message)
    except FlowInvalid as exc:
        # Only when the engine's rules tightened after the original was saved.
        messages.error(request, f"“{flow.name}” can't be copied: {exc}")
        return redirect("flow_list")
    messages.success(request, f"Created “{copied.name}”.")
    return redirect("flow_list")


@login_required
def flow_delete(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = access.flow_for_owner(request.user, flow_id)
    if request.method == "POST":
        name = flow.name
        flow.delete()
        messages.success(request, f"Deleted “{name}”.")
        return redirect("flow_list")
    context = {"flow": flow, "run_count": flow.runs.count()}
    return render(request, "flows/delete.html", context)
