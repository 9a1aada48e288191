"""What a node visit recorded before it ran again: how an agent resumes mid-loop.

A node visit may run more than once: after a wait it asked to be run again for (an
agent's tool approval), after a worker running it died (a takeover), in a retry, or in
a run that resumes a failed one (``Run.kind`` resume in the web app). A host lends the
run a ``VisitHistory`` (``RunOptions.history``); a node reads through its context
(``NodeContext.prior``) the events its visit recorded so far, and goes on from there
rather than start over. Which events count is the node's business (an agent reads its
``agent_turn``, ``agent_tool`` and ``node_resumed`` events).

>>> import asyncio
>>> history = EventHistory([
...     {"seq": 1, "type": "run_started"},
...     {"seq": 2, "type": "agent_turn", "node": "a", "iteration": 1, "turn": 1},
...     {"seq": 3, "type": "agent_turn", "node": "b", "iteration": 1, "turn": 1},
...     {"seq": 4, "type": "agent_turn", "node": "a", "iteration": 2, "turn": 1},
... ])
>>> [e["seq"] for e in asyncio.run(history.events("a", 1))]
[2]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

Event = dict[str, Any]

# The events a visit's history is made of (what hosts need to keep and read back).
VISIT_KINDS = ("agent_turn", "agent_tool", "node_resumed", "batch_sent")
# Set (True) on an event a host read from another run's log (the run a resumed run
# continues), which the node then carries into its own run's log; its ``source`` names
# that run. An event already carried has a ``source`` but not this.
ELSEWHERE = "elsewhere"


class VisitHistory(Protocol):
    """The recorded events of a run's node visits, read back by the nodes that made them."""

    async def events(self, node: str, iteration: int) -> list[Event]:
        """The visit's recorded events (of ``VISIT_KINDS``), in log order. An event read
        from another run's log has ``ELSEWHERE`` set and names the run in ``source``."""
        ...


class EventHistory:
    """A history over events held in memory (a list a sink appends to, say)."""

    def __init__(self, events: Iterable[Mapping[str, Any]]):
        self._events = events

    async def events(self, node: str, iteration: int) -> list[Event]:
        return [
            dict(event)
            for event in self._events
            if event.get("type") in VISIT_KINDS
            and event.get("node") == node
            and (event.get("iteration") or 1) == iteration
        ]


class NoHistory:
    """No visit recorded anything: every node starts afresh."""

    async def events(self, node: str, iteration: int) -> list[Event]:
        return []


NO_HISTORY = NoHistory()
