"""The celery driver's parked runs: resuming a run that waits for a person.

A run parks in the coordinator step that leaves every running node waiting
(``Step.save`` stores it ``waiting`` with its state): the waiting node's task closed with
its outcome, so the run holds no task, no lease and no slot, and a worker dying
meanwhile changes nothing. ``resume`` claims it back (an answer: approvals.claim_answer;
a timeout: approvals.claim_timeout) and applies ``Schedule.resume`` in the same
transaction, under the run row's lock: a claim is never left without its step (the run
would stay running with nothing to run it), and the events number on from the log's last
(the step's Appender). The tasks the step makes go to the broker once it commits.

The same goes for the other parked runs: a pause at a breakpoint (the claim
breakpoints.claim, the step ``Schedule.go_on``) and a run paused for its budget (the
claim budget_raise.claim_raise, the step ``Schedule.resume_budget``). A node resumed to
run again (an agent after its tool approval, a node paused for its budget) is queued
again in its own task row, in a new epoch (coordinator.Step.tasks_for).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from graphs.schedule import Schedule, StepRefused, StepResult
from webapp.execution import coordinator
from webapp.runs.approvals import Answer, NotWaiting
from webapp.runs.budget_raise import BudgetRaise


def resume(run_id: int, claim: Callable[[], Answer | BudgetRaise]) -> None:
    """Claim the parked run ``run_id`` (``claim`` may refuse: NotWaiting, AnswerInvalid,
    PermissionDenied; nothing changes then) and move its schedule on with the answer."""
    coordinator.compile_first(run_id)  # never compile under the row's lock
    with transaction.atomic():
        answer = claim()
        step = coordinator.Step.locked(run_id)
        schedule = step.load()
        try:
            resumed = _step(schedule, answer)
        except StepRefused as exc:  # the state moved on without the row saying so
            raise NotWaiting(str(exc)) from exc
        step.apply(resumed)
        dispatch = step.save()
    dispatch.send()


def _step(schedule: Schedule, answer: Answer | BudgetRaise) -> StepResult:
    if isinstance(answer, BudgetRaise):
        return schedule.resume_budget(answer.budget_usd, answer.by)
    if answer.breakpoint is not None:
        # breakpoints.claim checked the ports already.
        return schedule.go_on(
            answer.node,
            answer.iteration,
            answer.outputs,
            answer.by,
            step=answer.breakpoint == "step",
        )
    return schedule.resume(answer.node, answer.iteration, answer.outputs, answer.by)
