"""The run page's budget: what the run may spend and has spent, whether it is paused for
it, and for the flow's editors a form to raise it, which posts (htmx) to the same service
as the API (webapp.runs.budget_raise) and so resumes a paused run."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.flows.access import can_edit_flow
from webapp.runs import budget_raise, budgets, pricing
from webapp.runs.access import run_for_viewer
from webapp.runs.models import Run, RunEvent


def budget_context(user, run: Run) -> dict[str, Any]:
    paused = budget_raise.paused_nodes(run)
    wait = run.state["waiting"][paused[0]] if paused else {}
    # run_paused goes out before the driver stores the run waiting: ask again shortly.
    parking = (
        not paused
        and run.status == Run.Status.RUNNING
        and RunEvent.objects.filter(run=run, seq__gte=run.last_seq - 1, type="run_paused").exists()
    )
    return {
        "run": run,
        "has_budget": run.budget_usd is not None,
        "budget_text": pricing.format_usd(run.budget_usd) if run.budget_usd is not None else "",
        "spent_text": pricing.format_usd(run.spent_usd),
        "paused_nodes": paused,
        "needed_text": pricing.format_usd(wait.get("needed_usd")) if paused else "",
        "remaining_text": pricing.format_usd(wait.get("remaining_usd")) if paused else "",
        "parking": parking,
        "can_raise": can_edit_flow(user, run.flow_id) and not run.finished,
    }


@login_required
def run_budget(request: HttpRequest, run_id: int) -> HttpResponse:
    """The budget section (GET); POST ``budget_usd`` sets it (editors), resuming a run
    paused for it."""
    run = run_for_viewer(request.user, run_id)  # 404 first for those who cannot see it
    error, resumed = "", False
    if request.method == "POST":
        try:
            resumed = budget_raise.raise_budget(
                request.user, run_id, request.POST.get("budget_usd")
            )
        except (budgets.BudgetInvalid, budget_raise.RunFinished) as exc:
            error = str(exc)
        run = Run.objects.get(pk=run.pk)
    context = budget_context(request.user, run)
    context.update(error=error, resumed=resumed)
    return render(request, "runs/_budget.html", context)
