"""A parked run's waits and what resumes it: the part every kind of wait shares (an
approval, an agent's tool call, a breakpoint, a message batch), below the modules for each
kind (webapp.runs.approvals, breakpoints, batches), so that they need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.runs.models import Run


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


def waits_of(run: Run) -> dict[str, dict[str, Any]]:
    """node -> what it waits for, of a parked run."""
    if run.status != Run.Status.WAITING or not run.state:
        return {}
    return dict(run.state.get("waiting", {}))


def claim_for(run: Run, node: str, outputs: dict[str, Any], by: dict[str, Any]) -> Answer:
    """Take ``run`` (locked, checked to wait on ``node``) out of waiting, answered with
    ``outputs`` by ``by``: what every claim of a wait ends with."""
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, wait_deadline=None)
    iteration = int(run.state["iterations"][node])
    return Answer(run.pk, node, iteration, outputs, by)
