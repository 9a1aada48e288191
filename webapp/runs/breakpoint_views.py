"""The editor's runs with breakpoints (webapp.runs.breakpoints): starting one, showing
where it is paused, and answering the pause.

Starting one is the editor's own endpoint, not the API's: a session's JSON POST, like the
run form's other requests. ``POST /api/flows/{id}/runs`` knows nothing of breakpoints, so
no API, webhook or scheduled run can pause on one.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from graphs.errors import FlowInvalid
from webapp import execution, problems
from webapp.flows.access import can_edit_flow, flow_for_editor
from webapp.flows.api import invalid
from webapp.runs import answers, breakpoints, budgets, uploads
from webapp.runs.access import run_for_editor, run_for_viewer
from webapp.runs.approvals import NotWaiting
from webapp.runs.files import FileRefused
from webapp.runs.limits import RunRefused
from webapp.runs.models import Run, RunEvent
from webapp.runs.services import create_run

INPUT_PREFIX = "in_"


@login_required
@require_POST
def editor_run(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Start a run of the flow's current version from the editor (JSON: ``inputs``,
    ``ignore_cache``, ``breakpoints``, ``budget_usd``, ``latency``; or multipart, that JSON
    as the field ``body`` and the files as parts, webapp.runs.uploads): 201 with what the
    API's 201 says."""
    flow = flow_for_editor(request.user, flow_id)
    # Files as parts: the body is then the JSON of the field "body".
    sent = uploads.sent_files(request) if uploads.is_upload(request) else None
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return problems.response(400, "bad_request", "the body is not JSON")
    if not isinstance(body, dict):
        return problems.response(400, "bad_request", "the body must be a JSON object")
    inputs, ignore_cache = body.get("inputs", {}), body.get("ignore_cache", False)
    latency = body.get("latency", "stream")
    if latency not in ("stream", "batch"):
        return problems.response(400, "bad_request", 'latency must be "stream" or "batch"')
    if not isinstance(inputs, dict) or not isinstance(ignore_cache, bool):
        return problems.response(
            400, "bad_request", "inputs must be an object and ignore_cache true or false"
        )
    try:
        wanted = breakpoints.clean(body.get("breakpoints", []))
    except ValueError as exc:
        return problems.response(400, "bad_request", str(exc))
    if wanted and not getattr(execution.driver(), "pauses_runs", False):
        return problems.response(
            409, "breakpoints_unsupported", "this server's runs cannot pause at breakpoints yet"
        )
    version = flow.current()
    # Marks on nodes since deleted (the editor keeps them per browser) pause nothing.
    ids = {node.get("id") for node in version.graph.get("nodes", []) if isinstance(node, dict)}
    try:
        run = create_run(
            flow,
            request.user,
            inputs,
            version=version,
            trigger=Run.Trigger.EDITOR,
            ignore_cache=ignore_cache,
            breakpoints=[node for node in wanted if node in ids],
            budget_usd=body.get("budget_usd"),
            files=body.get("files") or None,
            sent_files=sent,
            latency=latency,
        )
    except FileRefused as exc:
        return problems.response(400, "file_refused", str(exc))
    except budgets.BudgetInvalid as exc:
        return problems.response(400, "budget_invalid", str(exc))
    except FlowInvalid as exc:
        return invalid(exc, "the run cannot start").response()
    except RunRefused as exc:
        return exc.response()
    return JsonResponse(answers.started(run), status=201)


def pauses_context(user, run: Run) -> dict[str, Any]:
    paused = breakpoints.paused_of(run)
    # The engine's node_waiting is broadcast before the driver stores the run waiting:
    # a view asking in between asks again shortly (static/js/runs/view.js).
    parking = (
        not paused
        and run.status == Run.Status.RUNNING
        and RunEvent.objects.filter(run=run, seq=run.last_seq, type="node_waiting").exists()
    )
    return {
        "run": run,
        "paused": paused,
        "parking": parking,
        "can_answer": can_edit_flow(user, run.flow_id),
    }


@login_required
def run_breakpoints(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    return render(request, "runs/_breakpoints.html", pauses_context(request.user, run))


@login_required
@require_POST
def run_breakpoint(request: HttpRequest, run_id: int, node_id: str) -> HttpResponse:
    """Answer a pause (form: ``action`` continue, step or stop; each input port's JSON as
    in_<port>): the pauses as they now are; 400 naming what is wrong, 409 when the node
    is not paused (answered already), 403 for viewers, 404 for the rest."""
    run_for_editor(request.user, run_id)
    texts = {
        key.removeprefix(INPUT_PREFIX): value
        for key, value in request.POST.items()
        if key.startswith(INPUT_PREFIX)
    }
    action = request.POST.get("action", "")
    error, status = "", 200
    try:
        breakpoints.answer(request.user, run_id, node_id, action, texts)
    except breakpoints.BadAnswer as exc:
        error, status = str(exc), 400
    except NotWaiting as exc:
        error, status = str(exc), 409
    run = Run.objects.get(pk=run_id)
    context = pauses_context(request.user, run)
    context.update(error=error, error_node=node_id, answered="" if error else action)
    if error:
        for pause in context["paused"]:  # what was sent stays in the form, to correct it
            if pause["node"] == node_id:
                for port in pause["ports"]:
                    port["text"] = texts.get(port["port"], port["text"])
    return render(request, "runs/_breakpoints.html", context, status=status)
