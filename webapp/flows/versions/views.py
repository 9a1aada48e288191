"""The history page of a flow, one version drawn read-only, the diff of two versions, and
restoring a version (as a new one). Viewers see all of it; only editors restore."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from graphs.diff import GraphDiff, KeyChange
from graphs.errors import FlowInvalid
from webapp.core.canvas import canvas_payload
from webapp.flows import services
from webapp.flows.access import can_edit_flow, flow_for_editor, flow_for_viewer
from webapp.flows.models import Flow
from webapp.flows.versions import service as versions

PUBLICATIONS_SHOWN = 10
VERSIONS_PER_PAGE = 50
# A changed value longer than this is cut on the diff list (the canvas and export have it all).
MAX_VALUE_CHARS = 4_000


def read_only_canvas(flow: Flow, doc: dict[str, Any], key: str, number: int) -> dict[str, Any]:
    """`doc` drawn read-only; clicking a node shows its configuration, read-only."""
    node_form_url = reverse("flow_node_form", args=[flow.pk])
    return canvas_payload(doc, key=key, name=flow.name, version=number, node_form_url=node_form_url)


@login_required
@require_GET
def version_list(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    page = Paginator(versions.history(flow), VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "flow": flow,
        "page": page,
        "can_edit": can_edit_flow(request.user, flow.pk),
        # The pair the diff picker starts with: the newest version and the one before.
        "pick_a": max(flow.version - 1, 1),
        "pick_b": flow.version,
        "publications": versions.publications(flow)[:PUBLICATIONS_SHOWN],
    }
    return render(request, "flows/versions.html", context)


@login_required
@require_GET
def version_detail(request: HttpRequest, flow_id: int, number: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    version = versions.get(flow, number)
    context = {
        "flow": flow,
        "version": version,
        "here": f"v{number}",
        "can_edit": can_edit_flow(request.user, flow.pk),
        "canvas_data": read_only_canvas(flow, version.graph, f"version-{flow.pk}-{number}", number),
    }
    return render(request, "flows/versions_detail.html", context)


@login_required
@require_GET
def version_diff(request: HttpRequest, flow_id: int) -> HttpResponse:
    """``?a=&b=``: what changed from version a to version b (by default, the newest
    version against the one before)."""
    flow = flow_for_viewer(request.user, flow_id)
    try:
        b = int(request.GET.get("b") or flow.version)
        a = int(request.GET.get("a") or max(b - 1, 1))
    except ValueError:
        return HttpResponseBadRequest("a and b are version numbers")
    before, after, changes = versions.diff(flow, a, b)
    drawn = versions.diff_canvas(before.graph, after.graph, changes)
    context = {
        "flow": flow,
        "a": before,
        "b": after,
        "changes": changes,
        "rows": diff_rows(changes),
        "here": f"v{a} → v{b}",
        "can_edit": can_edit_flow(request.user, flow.pk),
        "canvas_data": read_only_canvas(flow, drawn["doc"], f"diff-{flow.pk}-{a}-{b}", b),
        "marks": drawn["marks"],
    }
    return render(request, "flows/versions_diff.html", context)


def diff_rows(changes: GraphDiff) -> dict[str, list[dict[str, Any]]]:
    """The diff as the page lists it: values shown as text, long ones cut."""
    changed = [
        {
            "id": node.id,
            "type": node.type,
            "label": node.label,
            "keys": [key_row(change) for change in node.changes],
        }
        for node in changes.changed
    ]
    return {"changed": changed, "flow": [key_row(change) for change in changes.graph]}


def key_row(change: KeyChange) -> dict[str, Any]:
    """One changed key; ``before`` is None when it was added, ``after`` when removed."""
    return {
        "key": change.key,
        "kind": change.kind,
        "before": shown(change.before) if change.kind != "added" else None,
        "after": shown(change.after) if change.kind != "removed" else None,
    }


def shown(value: Any) -> str:
    """A config value as text: strings as they are, anything else as JSON.

    >>> shown("Hi {{ q }}"), shown(3), shown(None), shown({"a": [1, 2]})
    ('Hi {{ q }}', '3', 'null', '{"a": [1, 2]}')
    >>> len(shown("x" * 10_000)) <= MAX_VALUE_CHARS + 40
    True
    """
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]}… ({len(text) - MAX_VALUE_CHARS:,} more characters)"
    return text


@login_required
@require_POST
def version_restore(request: HttpRequest, flow_id: int, number: int) -> HttpResponse:
    """Save version `number` again as the newest, unless someone saved since the page
    that asked was loaded (``base_version``): then nothing changes and they are told."""
    flow = flow_for_editor(request.user, flow_id)
    history_url = reverse("flow_versions", args=[flow.pk])
    try:
        base = int(request.POST.get("base_version", ""))
    except ValueError:
        return HttpResponseBadRequest("base_version is required")
    try:
        saved = versions.restore(flow, request.user, number, base)
    except services.StaleVersion as exc:
        messages.error(
            request,
            f"Not restored: someone saved version {exc.current} since you loaded this page. "
            "Check the history and try again.",
        )
        return redirect(history_url)
    except FlowInvalid as exc:
        messages.error(request, f"Version {number} can't be restored: {exc}")
        return redirect(history_url)
    messages.success(request, f"Restored version {number} as version {saved}.")
    return redirect(history_url)


@login_required
@require_POST
def version_publish(request: HttpRequest, flow_id: int, number: int) -> HttpResponse:
    """Make version `number` the one runs from outside the editor run."""
    flow = flow_for_editor(request.user, flow_id)
    try:
        versions.publish(flow, request.user, number)
    except FlowInvalid as exc:
        messages.error(request, f"Version {number} can't be published: {exc}")
    else:
        messages.success(
            request, f"Published version {number}: API runs use it until you publish another."
        )
    return redirect(reverse("flow_versions", args=[flow.pk]))


@login_required
@require_POST
def version_unpublish(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    if versions.unpublish(flow, request.user):
        messages.success(request, "Unpublished: API runs use the newest version again.")
    return redirect(reverse("flow_versions", args=[flow.pk]))


@login_required
@require_GET
def version_meta(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Who saved the newest version and when: the editor's header asks again after a save."""
    flow = flow_for_viewer(request.user, flow_id)
    return render(
        request, "flows/_version_meta.html", {"flow": flow, "latest": versions.latest(flow)}
    )
