"""What a run's node visits recorded, read back from its event log (``graphs.history``):
how an agent that runs again (a tool approval answered, a takeover, a resumed run) goes
on from its recorded turns instead of paying for them again.

A run that resumes a failed one (``Run.Kind.RESUME``) reads its parent's log for a visit
it has recorded nothing of yet: those events come marked with their ``source`` ("run 7"),
and the agent carries them into this run's own log, so a resume of this run finds them
here.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from graphs.history import ELSEWHERE, VISIT_KINDS
from webapp.runs.models import Run, RunEvent


class RunHistory:
    """The visit history of run ``run_id``, falling back on ``parent_id``'s log."""

    def __init__(self, run_id: int, parent_id: int | None = None):
        self.run_id = run_id
        self.parent_id = parent_id

    @classmethod
    def of(cls, run: Run) -> RunHistory:
        parent = run.parent_id if run.kind == Run.Kind.RESUME else None
        return cls(run.pk, parent)

    async def events(self, node: str, iteration: int) -> list[dict[str, Any]]:
        return await database_sync_to_async(self.read)(node, iteration)

    def read(self, node: str, iteration: int) -> list[dict[str, Any]]:
        own = visit_events(self.run_id, node, iteration)
        if own or self.parent_id is None:
            return own
        # An answer given in the parent was to a wait of the parent's: asked again here.
        source = f"run {self.parent_id}"
        return [
            {**event, "source": event.get("source") or source, ELSEWHERE: True}
            for event in visit_events(self.parent_id, node, iteration)
            if event["type"] != "node_resumed"
        ]


def visit_events(run_id: int, node: str, iteration: int) -> list[dict[str, Any]]:
    rows = (
        RunEvent.objects.filter(run_id=run_id, type__in=VISIT_KINDS)
        .of_node(node)
        .filter(payload__iteration=iteration)
        .order_by("seq")
    )
    return list(rows.values_list("payload", flat=True))
