"""Runs parked waiting for a person (an ``approval`` node, or an agent's tool call that
needs approval: kind ``tool_approval``), on the in-process driver.

A run whose every running node waits is stored ``waiting`` with its schedule state
(``Run.state``) and holds nothing else: no task, no slot. Answering claims it back
(waiting -> running, one row update, so of two answers only one wins: the other is
refused) and hands it to the driver to resume; cancelling closes its log with the
events the engine itself would write on a stop (``graphs.schedule.Schedule.stop``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from graphs.nodes import agent, approval
from graphs.schedule import RunState, Schedule
from webapp.flows.access import editable_flows
from webapp.runs import eventlog
from webapp.runs.access import run_for_editor
from webapp.runs.models import Run

# The kinds of wait a person answers (the others, should there be any, are not theirs).
ANSWERED_KINDS = ("approval", "tool_approval")


class NotWaiting(RuntimeError):
    """The node does not wait (answered already, or the run is not parked): a 409."""


@dataclass(frozen=True)
class Answer:
    """What resumes a parked run: its node, the visit, the outputs and who answered."""

    run_id: int
    node: str
    iteration: int
    outputs: dict[str, Any]
    by: dict[str, Any]
    # A pause at a breakpoint (webapp.runs.breakpoints): "continue" or "step", and
    # ``outputs`` are then the inputs the node starts on.
    breakpoint: str | None = None


def who(user) -> dict[str, Any]:
    return {"user": user.get_username(), "id": user.pk}


def park(run_id: int, state: dict[str, Any]) -> bool:
    """Store a run the engine returned waiting; False when it ended meanwhile (cancelled)."""
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(
            status=Run.Status.WAITING, state=state
        )
    )


def keep_state(run_id: int, state: dict[str, Any] | None) -> None:
    """A resumed run is over: keep its last state (its waits are all answered)."""
    if state is not None:
        Run.objects.filter(pk=run_id).update(state=state)


def waits_of(run: Run) -> dict[str, dict[str, Any]]:
    """node -> what it waits for, of a parked run."""
    if run.status != Run.Status.WAITING or not run.state:
        return {}
    return dict(run.state.get("waiting", {}))


def claim_answer(
    run_id: int,
    node: str,
    action: str,
    values: dict[str, Any],
    user,
    call: str | None = None,
) -> Answer:
    """Check the answer (AnswerInvalid, naming the field) and take the run out of waiting
    for it (NotWaiting when the node does not wait: answered already, or never).

    An agent waits for its tool calls one at a time, so ``call`` (the tool_use id the
    person saw) makes sure a second answer to a call does not answer the next one.
    """
    with transaction.atomic():
        # Read under the row's lock: two answers at once see one after the other.
        run = Run.objects.select_for_update().get(pk=run_id)
        wait = waits_of(run).get(node)
        if wait is None or wait.get("kind") not in ANSWERED_KINDS:
            raise NotWaiting(f"node {node!r} of run {run_id} does not wait for an answer")
        by = who(user)
        if wait["kind"] == "tool_approval":
            if call and call != wait.get("tool_use_id"):
                raise NotWaiting(
                    f"node {node!r} of run {run_id} no longer waits on tool call {call!r} "
                    "(answered already)"
                )
            outputs = agent.answer_tool(wait, action, values, by=by)
        else:
            outputs = approval.answer(wait, action, values, by=by)
        Run.objects.filter(pk=run_id).update(status=Run.Status.RUNNING)
        iteration = int(run.state["iterations"][node])
    return Answer(run_id, node, iteration, outputs, by)


def cancel_waiting(run_id: int) -> bool:
    """Cancel a parked run: its waiting nodes and the run end cancelled in its log.
    False when it is not waiting (anymore)."""
    from webapp.execution.plans import compiled_run  # the execution layer imports runs

    with transaction.atomic():
        run = (
            Run.objects.select_for_update()
            .select_related("flow_version")
            .filter(pk=run_id, status=Run.Status.WAITING)
            .first()
        )
        if run is None or not run.state:
            return False
        schedule = Schedule(compiled_run(run).plan, RunState.from_json(run.state))
        step = schedule.stop("cancelled", None)
        events = [{"type": type_, **fields} for type_, fields in step.events]
        eventlog.append(run_id, events, limited=False)
        Run.objects.filter(pk=run_id).update(state=schedule.state.to_json())
    return True


def pending_for(user) -> list[dict[str, Any]]:
    """The approvals waiting in runs of flows the user may edit, oldest run first."""
    runs = (
        Run.objects.filter(status=Run.Status.WAITING, flow__in=editable_flows(user))
        .select_related("flow")
        .order_by("created")
    )
    pending = []
    for run in runs:
        for node, wait in sorted(waits_of(run).items()):
            if wait.get("kind") not in ANSWERED_KINDS:
                continue
            entry = {
                "run": run.pk,
                "flow": run.flow_id,
                "flow_name": run.flow.name,
                "node": node,
                "kind": wait["kind"],
                "message": wait.get("message", ""),
                "fields": wait.get("fields", []),
                "actions": wait.get("actions", []),
            }
            if wait["kind"] == "tool_approval":
                entry.update(
                    tool=wait.get("tool", ""),
                    input=wait.get("input", {}),
                    call=wait.get("tool_use_id", ""),
                )
            pending.append(entry)
    return pending


def answer(
    user,
    run_id: int,
    node: str,
    action: str,
    values: dict[str, Any],
    call: str | None = None,
) -> None:
    """Answer a waiting approval (or an agent's tool call: ``call``, see claim_answer) as
    ``user`` (an editor of the run's flow: 403 for its viewers, 404 for everyone else) and
    resume the run on its driver.

    Raises AnswerInvalid (naming the field) or NotWaiting.
    """
    from webapp import execution  # the driver imports this module

    run = run_for_editor(user, run_id)
    execution.driver().resume(
        run.pk, lambda: claim_answer(run.pk, node, action, values, user, call)
    )
