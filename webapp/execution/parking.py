"""The celery driver's parked runs: resuming a run that waits for a person.

A run parks in the coordinator step that leaves every running node waiting
(``Step.save`` stores it ``waiting`` with its state): the waiting node's task closed with
its outcome, so the run holds no task, no lease and no slot, and a worker dying
meanwhile changes nothing. ``resume`` claims it back (an answer: approvals.claim_answer;
a timeout: approvals.claim_timeout) and applies ``Schedule.resume`` in the same
transaction, under the run row's lock: a claim is never left without its step (the run
would stay running with nothing to run it), and the events number on from the log's last
(the step's Appender). The tasks the step makes go to the broker once it commits.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from graphs.schedule import StepRefused
from webapp.execution import coordinator
from webapp.runs.approvals import Answer, NotWaiting


def resume(run_id: int, claim: Callable[[], Answer]) -> None:
    """Claim the parked run ``run_id`` (``claim`` may refuse: NotWaiting, AnswerInvalid,
    PermissionDenied; nothing changes then) and move its schedule on with the answer."""
    coordinator.compile_first(run_id)  # never compile under the row's lock
    with transaction.atomic():
        answer = claim()
        step = coordinator.Step.locked(run_id)
        schedule = step.load()
        try:
            resumed = schedule.resume(answer.node, answer.iteration, answer.outputs, answer.by)
        except StepRefused as exc:  # the state moved on without the row saying so
            raise NotWaiting(str(exc)) from exc
        step.apply(resumed)
        dispatch = step.save()
    dispatch.send()
