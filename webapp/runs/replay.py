"""Whether a recorded run can be replayed in the browser, and if not, exactly why.

The player (static/js/runs/replay.js, folding events with runs/model.js's RunModel)
understands the event types in REPLAYED_EVENTS, written by engines up to
graphs.events.SCHEMA. A run recorded before event schemas existed has no `schema` on its
run_started: it is schema 1.

>>> check_replay("succeeded", {"schema": 1}, [], []).state
'ready'
>>> check_replay("succeeded", {}, ["node_thought"], []).problems[0].kind
'events'
>>> check_replay("succeeded", {"schema": 99}, [], []).state
'unavailable'
>>> check_replay("running", {"schema": 1}, [], []).state
'waiting'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphs.events import SCHEMA
from graphs.nodes import NODE_TYPES
from webapp.runs.models import Run, RunEvent

# Every event type the player folds in, through static/js/runs/log.js's RunLog.apply (tests
# keep the two in step).
REPLAYED_EVENTS = frozenset(
    {
        "run_started",
        "node_started",
        "node_delta",
        "node_thinking",
        "node_progress",
        "node_item",
        "node_retrying",
        "node_finished",
        "node_skipped",
        "node_failed",
        "node_waiting",
        "node_resumed",
        "agent_turn",
        "agent_tool",
        "batch_sent",
        "run_paused",
        "run_resumed",
        "run_finished",
    }
)
FINISHED = frozenset(Run.FINISHED)
# At 1x, a pause between two events longer than this is shortened to it (a run that waited
# a minute on a slow model should not make its replay wait a minute too).
GAP_CAP_S = 2


@dataclass(frozen=True)
class Problem:
    kind: str  # schema | events | node_types | empty
    message: str


@dataclass(frozen=True)
class ReplayCheck:
    """ready: the player works; limited: it works, with `problems` saying what is left out;
    unavailable: it does not (nothing is drawn that could be wrong); waiting: the run is live."""

    state: str
    schema: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def playable(self) -> bool:
        return self.state in ("ready", "limited")


def event_schema(run_started: Mapping[str, Any] | None) -> int | None:
    """The event schema a run was recorded with; None when it cannot be read.

    >>> event_schema({}), event_schema({"schema": 2}), event_schema({"schema": "x"})
    (1, 2, None)
    """
    value = (run_started or {}).get("schema", 1)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def check_replay(
    status: str,
    run_started: Mapping[str, Any] | None,
    unknown_events: Iterable[str],
    unknown_nodes: Iterable[tuple[str, str]],
    *,
    has_events: bool = True,
) -> ReplayCheck:
    """The verdict from what the run recorded; pure, so each case is easy to test.

    `unknown_events`: event types outside REPLAYED_EVENTS; `unknown_nodes`: (node id, type)
    of the graph's nodes whose type is no longer registered.
    """
    schema = event_schema(run_started) if run_started is not None else 1
    if run_started is not None and (schema is None or schema > SCHEMA):
        shown = "an unreadable schema" if schema is None else f"event schema {schema}"
        message = (
            f"Replay is unavailable: this run was recorded by a newer engine ({shown}); "
            f"this server reads event schemas up to {SCHEMA}. Its events are kept unchanged "
            "and the API still serves them."
        )
        return ReplayCheck("unavailable", schema, [Problem("schema", message)])
    if status not in FINISHED:
        return ReplayCheck("waiting", schema)
    if not has_events:
        message = "Replay is unavailable: this run recorded no events."
        return ReplayCheck("unavailable", schema, [Problem("empty", message)])
    problems = []
    events = sorted(set(unknown_events))
    if events:
        names = ", ".join(events)
        problems.append(
            Problem(
                "events",
                f"Replay is limited: events of type {names} come from a newer engine; "
                "the replay skips them, so what they record does not show on the canvas.",
            )
        )
    by_type: dict[str, list[str]] = {}
    for node, type_name in unknown_nodes:
        by_type.setdefault(type_name, []).append(node)
    if by_type:
        parts = "; ".join(
            f"{name} (node {', '.join(sorted(nodes))})" for name, nodes in sorted(by_type.items())
        )
        problems.append(
            Problem(
                "node_types",
                f"Replay is limited: node types no longer available: {parts}. They are drawn "
                "without their ports; their recorded events still replay.",
            )
        )
    return ReplayCheck("limited" if problems else "ready", schema, problems)


def replay_check(run: Run, graph: Mapping[str, Any]) -> ReplayCheck:
    """The verdict for a stored run: three small queries, whatever the run's size."""
    events = RunEvent.objects.filter(run=run)
    first = events.filter(seq=1).values_list("payload", flat=True).first()
    run_started = first if first and first.get("type") == "run_started" else None
    unknown = events.exclude(type__in=REPLAYED_EVENTS).values_list("type", flat=True).distinct()
    unknown_nodes = [
        (node.get("id", ""), node.get("type", ""))
        for node in graph.get("nodes", [])
        if node.get("type") not in NODE_TYPES
    ]
    return check_replay(
        run.status,
        run_started,
        list(unknown),
        unknown_nodes,
        has_events=run.last_seq > 0 or first is not None,
    )
