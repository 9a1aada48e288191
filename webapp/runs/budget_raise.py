"""Raising the budget of a run, which resumes it when it is paused for its budget.

The run's new budget is stored whatever the run is doing; a run parked because a model call
would have exceeded the old one (webapp.runs.budgets) is claimed out of waiting (one row
update under its lock, so of two raises only one resumes it) and handed to its driver,
whose resume runs the paused nodes again (``graphs.schedule.Schedule.resume_budget``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from webapp import execution
from webapp.runs.access import run_for_editor
from webapp.runs.approvals import NotWaiting, who
from webapp.runs.budgets import BudgetInvalid, checked_budget
from webapp.runs.models import Run


@dataclass(frozen=True)
class BudgetRaise:
    """What resumes a run paused for its budget (a driver's resume takes it)."""

    run_id: int
    budget_usd: float
    by: dict[str, Any]


def paused_nodes(run: Run) -> list[str]:
    """The nodes of a parked run that wait for its budget to be raised."""
    if run.status != Run.Status.WAITING or not run.state:
        return []
    waits = run.state.get("waiting", {})
    return sorted(node for node, wait in waits.items() if wait.get("kind") == "budget")


def claim_raise(run_id: int, budget: Decimal, by: dict[str, Any]) -> BudgetRaise:
    """Take a run paused for its budget out of waiting, its budget now ``budget``
    (approvals.NotWaiting when it is not paused for it: resumed already, or never)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if not paused_nodes(run):
            raise NotWaiting(f"run {run_id} is not paused for its budget")
        # Parked, nothing of it is in flight: whatever it still held is stale.
        run.reservations.all().delete()
        Run.objects.filter(pk=run_id).update(status=Run.Status.RUNNING, budget_usd=budget)
    return BudgetRaise(run_id, float(budget), by)


def raise_budget(user, run_id: int, value: Any) -> bool:
    """Set the run's budget as ``user`` (an editor of its flow: 403 for viewers, 404 for
    everyone else); a run paused for its budget resumes on its driver. True when it did.

    Raises BudgetInvalid, or RunFinished when the run has ended or has no budget."""
    run = run_for_editor(user, run_id)
    budget = checked_budget(value)
    if budget is None:
        raise BudgetInvalid("budget_usd is required: the run's new budget in US dollars")
    if run.budget_usd is None:
        # Its calls reserve nothing: a budget set now would hold nothing back.
        raise NoBudget(f"run {run_id} was started without a budget; start it again with budget_usd")
    if run.finished:
        raise RunFinished(f"run {run_id} has ended; its budget can no longer change")
    Run.objects.filter(pk=run_id).exclude(status__in=Run.FINISHED).update(budget_usd=budget)
    run.refresh_from_db(fields=["status", "state"])
    if not paused_nodes(run):
        return False
    try:
        execution.driver().resume(run.pk, lambda: claim_raise(run.pk, budget, who(user)))
    except NotWaiting:
        return False  # resumed by someone else meanwhile: the new budget holds all the same
    return True


class RunFinished(ValueError):
    """The run has ended, or was started without a budget: a 409."""


def resume_if_raised(run_id: int) -> bool:
    """Resume a run that parked for its budget after it was raised (the raise came while
    the run was still running, so it had nothing to resume then). True when it did."""
    run = Run.objects.filter(pk=run_id).only("status", "state", "budget_usd").first()
    if run is None or run.budget_usd is None or not (nodes := paused_nodes(run)):
        return False
    waits = run.state["waiting"]
    if all(Decimal(str(waits[n].get("budget_usd") or 0)) >= run.budget_usd for n in nodes):
        return False
    by = {"user": None, "note": "the budget was raised while the run was pausing"}
    try:
        execution.driver().resume(run_id, lambda: claim_raise(run_id, run.budget_usd, by))
    except NotWaiting:
        return False
    return True


class NoBudget(RunFinished):
    """The run was started without a budget: a 409 of its own."""
