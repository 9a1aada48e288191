"""The template gallery's pages: the list, and "Use this template"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.flows.gallery.service import templates, use_template


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    listed = templates()
    groups = [
        ("Orchestration patterns", [t for t in listed if t["kind"] == "pattern"]),
        ("Node types", [t for t in listed if t["kind"] == "node"]),
        ("More", [t for t in listed if t["kind"] == "more"]),
    ]
    return render(request, "flows/gallery.html", {"groups": [g for g in groups if g[1]]})


@login_required
@require_POST
def use(request: HttpRequest, name: str) -> HttpResponse:
    flow = use_template(request.user, name)
    if flow is None:
        raise Http404("No such template.")
    messages.success(request, f"Created “{flow.name}” from its template.")
    return redirect("flow_editor", flow.pk)
