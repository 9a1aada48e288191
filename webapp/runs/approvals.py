"""Runs parked waiting for a person (an ``approval`` node, or an agent's tool call that
needs approval: kind ``tool_approval``), on either driver.

A run whose every running node waits is stored ``waiting`` with its schedule state
(``Run.state``) and holds nothing else: no task, no slot. Answering claims it back
(waiting -> running, one row update, so of two answers only one wins: the other is
refused) and hands it to the driver to resume; so does a wait's timeout
(``claim_timeout``, fired by webapp.runs.timeouts). Cancelling closes its log with the
events the engine itself would write on a stop (``graphs.schedule.Schedule.stop``).

Who may answer: the wait's ``approvers`` when it names any (users, ``team:<id>``), among
those who can see the run; else the flow's editors (graphs.nodes.approval.may_answer).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from graphs.nodes import agent, approval
from graphs.schedule import RunState, Schedule
from webapp.flows.access import can_edit_flow, editable_flows, visible_flows
from webapp.runs import eventlog
from webapp.runs.access import run_for_viewer
from webapp.runs.models import Run
from webapp.runs.waits import Answer, NotWaiting, claim_for, waits_of, who
from webapp.teams.models import Membership

# The kinds of wait a person answers (the others, should there be any, are not theirs).
ANSWERED_KINDS = ("approval", "tool_approval")


# Who "answered" a wait nobody answered in time (node_resumed's ``by``).
TIMED_OUT_BY = {"timeout": True}


def wait_deadline(state: dict[str, Any]) -> dt.datetime | None:
    """The earliest deadline of a parked state's waits (Run.wait_deadline), if any."""
    deadlines = [d for w in state.get("waiting", {}).values() if (d := approval.deadline(w))]
    if not deadlines:
        return None
    return dt.datetime.fromtimestamp(min(deadlines), tz=dt.UTC)


def parked_fields(state: dict[str, Any]) -> dict[str, Any]:
    """What a run's row gets as it parks with ``state``."""
    from webapp.runs import batches  # which imports this module

    return {
        "status": Run.Status.WAITING,
        "state": state,
        "wait_deadline": wait_deadline(state),
        "batch_poll_at": batches.first_poll(state),
    }


def park(run_id: int, state: dict[str, Any]) -> bool:
    """Store a run the engine returned waiting; False when it ended meanwhile (cancelled)."""
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(**parked_fields(state))
    )


def keep_state(run_id: int, state: dict[str, Any] | None) -> None:
    """A resumed run is over: keep its last state (its waits are all answered)."""
    if state is not None:
        Run.objects.filter(pk=run_id).update(state=state)


def may_answer(user, run: Run, wait: dict[str, Any]) -> bool:
    """Whether ``user`` (who can see ``run``) may answer its ``wait``."""
    named = bool(wait.get("approvers"))
    return approval.may_answer(
        wait,
        username=user.get_username(),
        teams=team_ids(user) if named else frozenset(),
        editor=not named and can_edit_flow(user, run.flow_id),
    )


def team_ids(user) -> frozenset[int]:
    return frozenset(Membership.objects.filter(user=user).values_list("team_id", flat=True))


def claim_answer(
    run_id: int,
    node: str,
    action: str,
    values: dict[str, Any],
    user,
    call: str | None = None,
) -> Answer:
    """Check the answer (AnswerInvalid, naming the field) and take the run out of waiting
    for it (NotWaiting when the node does not wait: answered already, or never;
    PermissionDenied when ``user`` is not one who may answer it).

    An agent waits for its tool calls one at a time, so ``call`` (the tool_use id the
    person saw) makes sure a second answer to a call does not answer the next one.
    """
    with transaction.atomic():
        # Read under the row's lock: two answers at once see one after the other.
        run = Run.objects.select_for_update().get(pk=run_id)
        wait = waits_of(run).get(node)
        if wait is None or wait.get("kind") not in ANSWERED_KINDS:
            raise NotWaiting(f"node {node!r} of run {run_id} does not wait for an answer")
        if not may_answer(user, run, wait):
            raise PermissionDenied(refusal(wait))
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
        return claim_for(run, node, outputs, by)


def claim_timeout(run_id: int, node: str, now: float) -> Answer:
    """Take the run out of waiting for ``node``'s timeout (Unix time ``now`` is past its
    deadline); NotWaiting when it no longer waits (answered, cancelled, timed out by
    another process), so of two processes firing it only one resumes the run."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        wait = waits_of(run).get(node)
        deadline = approval.deadline(wait) if wait is not None else None
        if wait is None or deadline is None or deadline > now:
            raise NotWaiting(f"node {node!r} of run {run_id} has no wait past its deadline")
        return claim_for(run, node, approval.timed_out(wait), dict(TIMED_OUT_BY))


def refusal(wait: dict[str, Any]) -> str:
    if wait.get("approvers"):
        return "Only the approvers this step names may answer it."
    return "You need the editor role on this run's flow."


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
        parked = run.state
        schedule = Schedule(compiled_run(run).plan, RunState.from_json(run.state))
        step = schedule.stop("cancelled", None)
        events = [{"type": type_, **fields} for type_, fields in step.events]
        eventlog.append(run_id, events, limited=False)
        Run.objects.filter(pk=run_id).update(state=schedule.state.to_json(), batch_poll_at=None)
    # Its message batches too, once the run is cancelled (no lock held through the API).
    from webapp.runs import batches

    batches.cancel(run, parked)
    return True


def pending_for(user) -> list[dict[str, Any]]:
    """The approvals waiting for ``user``'s answer (those they may answer: see the module),
    in runs they can see, oldest run first."""
    runs = list(
        Run.objects.filter(status=Run.Status.WAITING, flow__in=visible_flows(user))
        .select_related("flow")
        .order_by("created")
    )
    if not runs:
        return []
    flows = {run.flow_id for run in runs}
    editable = set(editable_flows(user).filter(pk__in=flows).values_list("pk", flat=True))
    teams, username = team_ids(user), user.get_username()
    pending = []
    for run in runs:
        for node, wait in sorted(waits_of(run).items()):
            if wait.get("kind") not in ANSWERED_KINDS:
                continue
            if not approval.may_answer(
                wait, username=username, teams=teams, editor=run.flow_id in editable
            ):
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
    ``user`` and resume the run on its driver.

    Http404 for who cannot see the run; PermissionDenied for who can but may not answer
    (the claim checks again under the row's lock). Raises AnswerInvalid (naming the field)
    or NotWaiting.
    """
    from webapp import execution  # the driver imports this module

    run = run_for_viewer(user, run_id)
    wait = waits_of(run).get(node)
    if wait is None:
        # Nothing to name approvers: who may not edit learns no more than before.
        if not can_edit_flow(user, run.flow_id):
            raise PermissionDenied(refusal({}))
    elif not may_answer(user, run, wait):
        raise PermissionDenied(refusal(wait))
    execution.driver().resume(
        run.pk, lambda: claim_answer(run.pk, node, action, values, user, call)
    )
