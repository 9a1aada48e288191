"""Read-only pages behind a share link (``/s/<token>/``), for people without an account.

Each view starts from ``sharing.link_for_token``: a revoked, expired or unknown token is a
404 on every URL here, events included. A link to a flow shows its current version and
its runs; a link to a run shows that run alone. Nothing here can change anything, follow a
run over the websocket, or reach another flow or run. With ``hide_io`` the inputs, outputs,
streamed text and node details are left out of the pages and the events alike.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from graphs.replan import final_states
from webapp.core.canvas import canvas_payload
from webapp.core.format import pretty
from webapp.flows.models import ShareLink
from webapp.flows.sharing import service as sharing
from webapp.runs import eventlog
from webapp.runs.models import Run, RunEvent
from webapp.runs.replay import GAP_CAP_S, replay_check
from webapp.runs.views import graph_steps, seconds_between

MAX_EVENTS = 5000
RUNS_SHOWN = 100


def _headers(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: keep it out of search engines and other sites' logs.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _flow_canvas(link: ShareLink) -> dict[str, Any]:
    """What canvas/editor.js reads from #editor-data: the flow's current version, read-only."""
    version = link.flow.current()
    key = f"share-{link.pk}"
    return canvas_payload(
        version.graph, key=key, name=link.flow.name, version=version.number, public=True
    )


@never_cache
@require_GET
def public_share(request: HttpRequest, token: str) -> HttpResponse:
    link = sharing.link_for_token(token)
    if link.run_id is not None:
        return _headers(redirect("public_run", token, link.run_id))
    runs = sharing.runs_for_link(link).order_by("-created")[:RUNS_SHOWN]
    context = {
        "link": link,
        "token": token,
        "flow": link.flow,
        "version": link.flow.version,
        "runs": [(run, seconds_between(run.started_at, run.finished_at)) for run in runs],
        "runs_shown": RUNS_SHOWN,
        "canvas_data": _flow_canvas(link),
    }
    return _headers(render(request, "public/flow.html", context))


def _run_canvas(run: Run, link: ShareLink) -> dict[str, Any]:
    """The graph the run ran, drawn read-only, as on the run page."""
    key = f"share-{link.pk}-run-{run.pk}"
    return canvas_payload(
        run.graph, key=key, name=run.flow.name, version=run.flow_version.number, public=True
    )


def _final_states(run: Run) -> dict[str, str]:
    # Streamed text never changes a node's state and is most of the log: left in the DB.
    streamed = ("node_delta", "node_thinking")
    payloads = RunEvent.objects.filter(run=run).exclude(type__in=streamed).order_by("seq")
    return final_states(payloads.values_list("payload", flat=True).iterator())


@never_cache
@require_GET
def public_run(request: HttpRequest, token: str, run_id: int) -> HttpResponse:
    link = sharing.link_for_token(token)
    run = sharing.run_for_link(link, run_id)
    states = _final_states(run)
    steps = [{**step, "state": states.get(step["id"], "idle")} for step in graph_steps(run.graph)]
    hide_io = link.hide_io
    context = {
        "link": link,
        "token": token,
        "run": run,
        "flow": run.flow,
        "version": run.flow_version,
        "hide_io": hide_io,
        "error": sharing.public_error(link, run.error),
        "steps": steps,
        "canvas_data": _run_canvas(run, link),
        "events_url": reverse("public_run_events", args=[token, run.pk]),
        "inputs": [] if hide_io else [(k, pretty(v)) for k, v in run.inputs.items()],
        "outputs": []
        if hide_io
        else [(k, pretty(v), isinstance(v, str)) for k, v in run.outputs.items()],
        "duration_s": seconds_between(run.started_at, run.finished_at),
        "server_now": timezone.now().timestamp(),
        # The run page's replay bar (templates/runs/_replay.html), fed from events_url.
        "replay": replay_check(run, run.graph),
        "gap_cap_s": GAP_CAP_S,
    }
    return _headers(render(request, "public/run.html", context))


def _number(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


@never_cache
@require_GET
def public_run_events(request: HttpRequest, token: str, run_id: int) -> HttpResponse:
    """The run's recorded events after ``after`` (at most ``limit``), as /api/runs/<id>/events
    gives them, with the link's hide_io applied."""
    link = sharing.link_for_token(token)
    run = sharing.run_for_link(link, run_id)
    try:
        after = _number(request, "after", 0, 0, 2**31)
        limit = _number(request, "limit", MAX_EVENTS, 1, MAX_EVENTS)
    except ValueError as exc:
        return _headers(JsonResponse({"detail": str(exc)}, status=400))
    body = "[" + ", ".join(_public_events(link, run.pk, after, limit)) + "]"
    return _headers(HttpResponse(body, content_type="application/json"))


def _public_events(link: ShareLink, run_id: int, after: int, limit: int) -> list[str]:
    """The events as the link's visitors get them (sharing.public_event), as JSON texts.

    What the link does not change goes out as the database holds it, as the API sends it,
    rather than decoded and encoded again: with inputs and outputs shown, that is every
    event but those that can name another run.
    """
    if link.hide_io:
        events = eventlog.events(run_id, after, limit)
        return [json.dumps(sharing.public_event(link, event)) for event in events]
    rows = eventlog.events_json_marked(run_id, after, limit, sharing.NAMING_OTHER_RUNS)
    return [
        json.dumps(sharing.public_event(link, json.loads(text))) if marked else text
        for text, marked in rows
    ]
