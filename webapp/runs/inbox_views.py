"""The approvals inbox: every approval waiting for the signed-in user, across flows, each
with its form; and the header's count of them, which every page polls.

Both read ``approvals.pending_for`` alone (whoever may answer is its call), and the forms
post to the run page's own answer path (``approval_views.run_approve``), so a wait is
answered under the same rules from here, the run page and the API.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.runs import approvals
from webapp.runs.models import Run, RunEvent


def waiting_count(user) -> int:
    """How many approvals wait for the user: the header's badge."""
    return len(approvals.pending_for(user))


@login_required
def approval_inbox(request: HttpRequest) -> HttpResponse:
    pending = approvals.pending_for(request.user)
    # The graphs for the nodes' labels: one query for all, not one per run.
    rows = Run.objects.filter(pk__in={p["run"] for p in pending}).select_related("flow_version")
    runs = {run.pk: run for run in rows.defer("state", "inputs", "outputs")}
    since = _waiting_since(list(runs))
    items = []
    for wait in pending:
        run = runs.get(wait["run"])
        if run is None:  # ended between the two reads
            continue
        items.append(
            {
                "wait": wait,
                "label": _label(run, wait["node"]),
                "since": since.get((run.pk, wait["node"])) or run.created,
                "run_started": run.created,
            }
        )
    return render(request, "runs/inbox.html", {"items": items})


@login_required
def approval_badge(request: HttpRequest) -> HttpResponse:
    """The header's link with its count (runs/_approvals_badge.html), polled by every page.
    Signed out meanwhile, the poll lands on the login page, where the badge's hx-select
    finds nothing: the badge goes, and its polling with it."""
    return render(request, "runs/_approvals_badge.html", {"count": waiting_count(request.user)})


def _label(run: Run, node: str) -> str:
    for graph_node in run.graph.get("nodes", []):
        if graph_node.get("id") == node:
            return str(graph_node.get("label") or node)
    return node


def _waiting_since(run_ids: list[int]) -> dict[tuple[int, str], datetime]:
    """(run, node) -> when its latest wait began, from the runs' node_waiting events."""
    since: dict[tuple[int, str], datetime] = {}
    rows = RunEvent.objects.filter(run_id__in=run_ids, type="node_waiting").order_by("seq")
    for run_id, payload in rows.values_list("run_id", "payload"):
        ts = payload.get("ts") if isinstance(payload, dict) else None
        node = payload.get("node") if isinstance(payload, dict) else None
        if isinstance(ts, (int, float)) and isinstance(node, str):
            since[(run_id, node)] = datetime.fromtimestamp(ts, tz=UTC)
    return since
