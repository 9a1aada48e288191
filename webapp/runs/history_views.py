"""Run history: every run the user may see (`/runs/`), or one flow's (`/flows/<id>/runs/`).

Filters and the page are plain query parameters, so each view is a link that works
without JavaScript; with htmx, a change swaps the rows and pushes the URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from webapp.flows.access import flow_for_viewer, visible_flows
from webapp.flows.models import Flow
from webapp.runs.access import visible_runs
from webapp.runs.models import Run
from webapp.runs.pricing import format_usd

PAGE_SIZE = 50
# What a row shows, and nothing more: a run's inputs, outputs and graph can be large.
ROW_FIELDS = (
    "id",
    "flow",
    "flow__name",
    "status",
    "created",
    "started_at",
    "finished_at",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "saved_usd",
    "cache_hits",
    "provider_saved_usd",
    "kind",
    "trigger",
    "parent",
    "from_node",
    "parent_node",
    "started_by",
    "started_by__username",
)
STATUSES = [status for status, _ in Run.Status.choices]


def filtered_runs(user, *, status: str = "", flow: int | None = None) -> QuerySet[Run]:
    """The user's visible runs, newest first, narrowed by status and flow; rows only."""
    runs = visible_runs(user)
    if status:
        runs = runs.filter(status=status)
    if flow is not None:
        runs = runs.filter(flow_id=flow)
    return (
        runs.select_related("flow", "started_by")
        .annotate(version_number=F("flow_version__number"))
        .only(*ROW_FIELDS)
        .order_by("-created", "-id")
    )


def history_page(runs: QuerySet[Run], number: Any) -> Page:
    """One page of runs; a page number out of range or not a number gives the nearest page."""
    return Paginator(runs, PAGE_SIZE).get_page(number)


def run_seconds(run: Run) -> float | None:
    """How long the run took; runs recorded before durations were stored use their times."""
    if run.duration_s is not None:
        return run.duration_s
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def parse_filters(request: HttpRequest) -> tuple[str, int | None]:
    """(status, flow id) from the query string; anything unknown means no filter."""
    status = request.GET.get("status", "")
    if status not in STATUSES:
        status = ""
    flow = request.GET.get("flow", "")
    return status, int(flow) if flow.isdigit() else None


def query_string(**params: Any) -> str:
    """The query string of a history URL, without empty parameters."""
    return urlencode({k: v for k, v in params.items() if v not in ("", None, 1)})


@login_required
@vary_on_headers("HX-Request")
def run_history(request: HttpRequest) -> HttpResponse:
    status, flow_id = parse_filters(request)
    flows = list(visible_flows(request.user).only("id", "name").order_by("name", "id"))
    if flow_id is not None and not any(flow.pk == flow_id for flow in flows):
        flow_id = None  # not theirs, or gone: the same as no filter, and no hint which
    runs = filtered_runs(request.user, status=status, flow=flow_id)
    return _render(request, runs, status=status, flow_id=flow_id, flows=flows, flow=None)


@login_required
@vary_on_headers("HX-Request")
def flow_runs(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    status, _ = parse_filters(request)
    runs = filtered_runs(request.user, status=status, flow=flow.pk)
    return _render(request, runs, status=status, flow_id=None, flows=None, flow=flow)


def _render(
    request: HttpRequest,
    runs: QuerySet[Run],
    *,
    status: str,
    flow_id: int | None,
    flows: list[Flow] | None,
    flow: Flow | None,
) -> HttpResponse:
    page = history_page(runs, request.GET.get("page"))
    rows = list(page.object_list)
    for run in rows:
        run.seconds = run_seconds(run)
        run.cost_text = format_usd(run.cost_usd) if run.finished else ""
        run.saved_text = format_usd(run.saved_usd) if run.saved_usd else ""
        saved = run.provider_saved_usd
        run.provider_saved_text = (
            ("-" if saved < 0 else "") + format_usd(abs(saved)) if saved else ""
        )
    base = request.path
    filters = query_string(status=status, flow=flow_id)

    def page_url(number: int) -> str:
        query = query_string(status=status, flow=flow_id, page=number)
        return f"{base}?{query}" if query else base

    context = {
        "flow": flow,
        "flows": flows,
        "status": status,
        "flow_id": flow_id,
        "statuses": STATUSES,
        "page": page,
        "rows": rows,
        "base_url": base,
        "filtered": bool(filters),
        "previous_url": page_url(page.previous_page_number()) if page.has_previous() else "",
        "next_url": page_url(page.next_page_number()) if page.has_next() else "",
        "first_url": page_url(1),
        "last_url": page_url(page.paginator.num_pages),
    }
    # A filter change asks for the rows alone; a history restore wants the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "runs/_history_rows.html" if partial else "runs/history.html"
    return render(request, template, context)
