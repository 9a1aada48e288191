from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from graphs.errors import FlowInvalid
from webapp.flows import access, services

NEW_FLOW_NAME = "Untitled flow"


@login_required
@vary_on_headers("HX-Request")
def flow_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    editable = access.editable_flows(request.user).filter(pk=OuterRef("pk"))
    flows = (
        access.visible_flows(request.user)
        .select_related("owner")
        .annotate(run_count=Count("runs"), can_edit=Exists(editable))
        .order_by("-updated", "-pk")
    )
    if q:
        flows = flows.filter(name__icontains=q)
    context = {"flows": flows, "q": q}
    # The search box asks for the list alone; a history restore wants the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    return render(request, "flows/_list.html" if partial else "flows/list.html", context)


@login_required
@require_POST
def flow_new(request: HttpRequest) -> HttpResponse:
    flow = services.create(
        request.user, NEW_FLOW_NAME, services.starter_graph(NEW_FLOW_NAME), message="new"
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
    flow = access.flow_for_editor(request.user, flow_id)
    if request.method == "POST":
        name = flow.name
        flow.delete()
        messages.success(request, f"Deleted “{name}”.")
        return redirect("flow_list")
    context = {"flow": flow, "run_count": flow.runs.count()}
    return render(request, "flows/delete.html", context)
