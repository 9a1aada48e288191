"""Breakpoints: a run started from the editor pauses before the nodes its user marked
(graphs.schedule "Breakpoints"), parked like a run waiting for an approval
(webapp.runs.approvals), until that user or another editor of the flow answers.

Breakpoints belong to the editor's session, never to the flow document: the editor's run
form sends them (webapp.runs.breakpoint_views), each run stores its own
(``Run.breakpoints``), and only a run started from the editor applies them
(``applied``), so no API, webhook or scheduled run ever pauses on one.

An answer is Continue (run on to the next breakpoint), Step (run this node, then pause
before the next node that becomes ready) or Stop (cancel the run). Continue and Step send
the node's inputs, each port's value as JSON text, edited or not; the engine records
what the node got (``node_resumed``, then its ``node_started``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from graphs.document import IDENTIFIER
from graphs.schedule import BREAKPOINT
from webapp.runs.access import run_for_editor
from webapp.runs.models import Run
from webapp.runs.waits import Answer, NotWaiting, waits_of, who

ACTIONS = ("continue", "step", "stop")
# More would not be a debugging session but a misuse; the form never sends that many.
MAX_BREAKPOINTS = 200


class BadAnswer(ValueError):
    """An answer that cannot be used: an unknown action, or a port's value that is not
    JSON (the message names the port). A 400; the run stays paused."""


def clean(value: Any) -> list[str]:
    """The breakpoints the editor sent, as a sorted list of node ids; ValueError naming
    what is wrong (not a list, not identifiers, too many)."""
    if not isinstance(value, list):
        raise ValueError("breakpoints must be a list of node ids")
    if len(value) > MAX_BREAKPOINTS:
        raise ValueError(f"at most {MAX_BREAKPOINTS} breakpoints")
    for item in value:
        if not isinstance(item, str) or not IDENTIFIER.fullmatch(item):
            raise ValueError(f"breakpoints: {str(item)[:40]!r} is not a node id")
    return sorted(set(value))


def applied(run: Run) -> frozenset[str]:
    """The nodes this run pauses before: its own, and only when started from the editor."""
    if run.trigger != Run.Trigger.EDITOR or not run.breakpoints:
        return frozenset()
    return frozenset(node for node in run.breakpoints if isinstance(node, str))


def paused_of(run: Run) -> list[dict[str, Any]]:
    """What a parked run is paused at: per node its inputs, each as JSON text to edit."""
    paused = []
    for node, wait in sorted(waits_of(run).items()):
        if wait.get("kind") != BREAKPOINT:
            continue
        inputs = wait.get("inputs") or {}
        ports = [
            {"port": port, "text": json.dumps(value, indent=2, ensure_ascii=False)}
            for port, value in sorted(inputs.items())
        ]
        paused.append({"node": node, "ports": ports})
    return paused


def parse_inputs(texts: Mapping[str, str], ports: Iterable[str]) -> dict[str, Any]:
    """Each port's JSON text as its value; BadAnswer naming the first port that is not JSON
    or that the node does not have.

    >>> parse_inputs({"x": '"hi"', "n": "2"}, ["x", "n"])
    {'x': 'hi', 'n': 2}
    >>> parse_inputs({"x": "hi"}, ["x"])
    Traceback (most recent call last):
    ...
    webapp.runs.breakpoints.BadAnswer: port 'x': not valid JSON (Expecting value at line 1 \
column 1); a text needs its quotes, "like this"
    """
    known = set(ports)
    values = {}
    for port, text in texts.items():
        if port not in known:
            raise BadAnswer(f"port {port!r}: the node has no such input")
        try:
            values[port] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadAnswer(
                f"port {port!r}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                f'{exc.colno}); a text needs its quotes, "like this"'
            ) from None
    return values


def claim(run_id: int, node: str, action: str, texts: Mapping[str, str], user) -> Answer:
    """Check the answer and take the run out of waiting for it, under its row's lock, so
    that of two answers to the same pause only the first wins (NotWaiting for the other)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        wait = waits_of(run).get(node)
        if wait is None or wait.get("kind") != BREAKPOINT:
            raise NotWaiting(f"node {node!r} of run {run_id} is not paused at a breakpoint")
        paused = wait.get("inputs") or {}
        # Ports the form left out keep the value they paused with.
        inputs = {**paused, **parse_inputs(texts, paused)}
        Run.objects.filter(pk=run_id).update(status=Run.Status.RUNNING)
        iteration = int(run.state["iterations"][node])
    return Answer(run_id, node, iteration, inputs, who(user), breakpoint=action)


def answer(user, run_id: int, node: str, action: str, texts: Mapping[str, str]) -> None:
    """Answer a pause as ``user`` (an editor of the run's flow: 403 for its viewers, 404
    for everyone else): Continue or Step resumes the run on its driver, Stop cancels it.

    Raises BadAnswer (400) or NotWaiting (409: answered already, or never paused there).
    """
    from webapp import execution  # the driver imports the runs' modules

    run = run_for_editor(user, run_id)
    if action not in ACTIONS:
        raise BadAnswer(f"no action {action!r}: the actions are {', '.join(ACTIONS)}")
    if action == "stop":
        wait = waits_of(run).get(node)
        if wait is None or wait.get("kind") != BREAKPOINT:
            raise NotWaiting(f"node {node!r} of run {run_id} is not paused at a breakpoint")
        execution.cancel(run.pk)
        return
    execution.driver().resume(run.pk, lambda: claim(run.pk, node, action, texts, user))
