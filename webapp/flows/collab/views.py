"""What the editor shows when a teammate saves while you have unsaved changes.

The banner (who saved which version, and the three ways on), the difference between
your unsaved document and their version, and "save mine as a copy". None of these can
change the flow itself: the copy is a new flow, and your next save of this flow still
names the version you started from, so it is refused (409) until you load theirs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from graphs.diff import diff_graphs
from graphs.errors import FlowInvalid
from webapp.flows import services
from webapp.flows.access import flow_for_editor, flow_for_viewer
from webapp.flows.versions import service as versions
from webapp.flows.versions.views import diff_rows

MAX_NAME_CHARS = 200  # Flow.name


def _posted_doc(request: HttpRequest) -> dict[str, Any] | None:
    """The editor's unsaved document, posted as JSON in the ``doc`` field."""
    try:
        doc = json.loads(request.POST.get("doc", ""))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@login_required
@require_GET
def collab_saved(request: HttpRequest, flow_id: int, number: int) -> HttpResponse:
    """The banner for "someone saved version `number` while you were editing"."""
    flow = flow_for_viewer(request.user, flow_id)
    version = versions.get(flow, number)
    context = {
        "flow": flow,
        "version": version,
        "by_me": version.author_id == request.user.pk,
    }
    return render(request, "flows/_collab_banner.html", context)


@login_required
@require_POST
def collab_diff(request: HttpRequest, flow_id: int) -> HttpResponse:
    """From their saved version (``version``) to your unsaved document (``doc``)."""
    flow = flow_for_viewer(request.user, flow_id)
    doc = _posted_doc(request)
    number = request.POST.get("version", "")
    if doc is None or not number.isdigit():
        return HttpResponseBadRequest("doc (a flow document) and version are required")
    theirs = versions.get(flow, int(number))
    changes = diff_graphs(theirs.graph, doc)
    context = {
        "flow": flow,
        "theirs": theirs,
        "changes": changes,
        "rows": diff_rows(changes),
    }
    return render(request, "flows/_collab_diff.html", context)


@login_required
@require_POST
def collab_copy(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Your unsaved document as a new flow in your personal space (the flow is untouched)."""
    flow = flow_for_editor(request.user, flow_id)
    doc = _posted_doc(request)
    base = request.POST.get("version", "")
    if doc is None:
        return HttpResponseBadRequest("doc (a flow document) is required")
    # The name in the document is the one this tab shows (perhaps renamed, unsaved).
    name = f"{versions.document_name(doc) or flow.name} (my copy)"[:MAX_NAME_CHARS]
    graph = copy.deepcopy(doc)
    attrs = graph.get("graph")
    graph["graph"] = {**(attrs if isinstance(attrs, dict) else {}), "name": name}
    edited = f" v{base}" if base.isdigit() else ""
    message = f"my changes to “{flow.name}”{edited}, kept as a copy"[:500]
    context: dict[str, Any] = {"flow": flow}
    try:
        context["copy"] = services.create(request.user, name, graph, message=message)
    except FlowInvalid as exc:
        context["problems"] = [str(problem) for problem in exc.problems]
    return render(request, "flows/_collab_copied.html", context)
