"""The run page's approvals: what a parked run waits on, and a form per wait for those
who may answer it (its approvers, else the flow's editors). Answering posts (htmx) to the
same service as the API (webapp.runs.approvals.answer); the page's live view then shows the
run going on."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from graphs.nodes import approval
from webapp.runs import approvals
from webapp.runs.access import run_for_viewer
from webapp.runs.models import Run, RunEvent

FIELD_PREFIX = "f_"
# Where a form posted from shows one wait (runs/_approval_item.html) rather than the run
# page's whole section: the inbox and the run page's node card.
ITEM_PLACES = ("inbox", "node")
# The event (on the page's body) that makes the header's approvals count ask again.
APPROVALS_CHANGED = "switchyard-approvals-changed"


def shown_wait(user, run: Run, node: str, wait: dict[str, Any]) -> dict[str, Any]:
    """A wait as its form shows it, with whether ``user`` may answer it."""
    return {
        "node": node,
        **wait,
        **_shown_input(wait),
        "may_answer": approvals.may_answer(user, run, wait),
    }


def approvals_context(user, run: Run) -> dict[str, Any]:
    waits = [
        shown_wait(user, run, node, wait)
        for node, wait in sorted(approvals.waits_of(run).items())
        if wait.get("kind") in approvals.ANSWERED_KINDS
    ]
    # The engine's node_waiting is broadcast before the driver stores the run waiting:
    # a page asking in between asks again shortly.
    parking = (
        not waits
        and run.status == Run.Status.RUNNING
        and RunEvent.objects.filter(run=run, seq=run.last_seq, type="node_waiting").exists()
    )
    return {
        "run": run,
        "waits": waits,
        "parking": parking,
        "can_answer": any(wait["may_answer"] for wait in waits),
    }


def _shown_input(wait: dict[str, Any]) -> dict[str, Any]:
    """An agent's tool call's arguments as the page shows them (indented JSON)."""
    if wait.get("kind") != "tool_approval":
        return {}
    return {"input_json": json.dumps(wait.get("input"), indent=2, ensure_ascii=False)}


@login_required
def run_approvals(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    return render(request, "runs/_approvals.html", approvals_context(request.user, run))


@login_required
def run_approve(request: HttpRequest, run_id: int, node_id: str) -> HttpResponse:
    """Answer one wait (POST: action, and the form's fields as f_<name>)."""
    if request.method != "POST":
        return run_approvals(request, run_id)
    run_for_viewer(request.user, run_id)  # 404 before anything for those who cannot see it
    values = {
        key.removeprefix(FIELD_PREFIX): value
        for key, value in request.POST.items()
        if key.startswith(FIELD_PREFIX)
    }
    error, answered = "", ""
    try:
        action = request.POST.get("action", "")
        call = request.POST.get("call") or None
        approvals.answer(request.user, run_id, node_id, action, values, call)
        answered = request.POST.get("action", "")
    except approval.AnswerInvalid as exc:
        error = str(exc)
    except approvals.NotWaiting as exc:
        error = str(exc)
    run = Run.objects.get(pk=run_id)
    place = request.POST.get("place", "")
    if place in ITEM_PLACES:
        # The inbox and the node card show this one wait: what the answer left of it.
        wait = approvals.waits_of(run).get(node_id) if not answered else None
        context = {
            "run_id": run.pk,
            "wait": shown_wait(request.user, run, node_id, wait) if wait else {"node": node_id},
            "place": place,
            "error": error,
            "error_node": node_id,
            "answered": answered,
        }
        response = render(request, "runs/_approval_item.html", context)
    else:
        context = approvals_context(request.user, run)
        context.update(error=error, error_node=node_id, answered=answered, answered_node=node_id)
        response = render(request, "runs/_approvals.html", context)
    if answered:
        # The header's count (runs/_approvals_badge.html) asks again at once.
        response["HX-Trigger"] = APPROVALS_CHANGED
    return response
