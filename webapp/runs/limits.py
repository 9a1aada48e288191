"""Limits on what runs take: bytes per run, bytes per user, runs at once per user.

Three settings (README, "Settings"), each turned off by 0:

- ``MAX_RUN_EVENT_BYTES``: one run's event log. A loop can emit events for as long as it
  goes round; this caps what one run may write.
- ``MAX_STORED_BYTES_PER_USER``: everything a user's runs store (their event logs, what
  they were started with, their outputs: ``Run.stored_bytes``), summed in ``UserStorage``.
- ``MAX_RUNS_IN_FLIGHT``: a user's runs queued or running at once.

A size is the length of a value's JSON text, as a JSONField writes it. Sizes are counted
on write, in the transaction that stores them, by F() updates (so concurrent writers add
up on PostgreSQL), which makes checking a limit a read of one row rather than a sum over
events.

Starting a run past a limit is refused before anything is stored: ``RunRefused``, 429 for
too many runs in flight (wait, or cancel one), 403 over the storage quota (only freeing
space helps). A run that reaches a byte limit while it runs is failed, not cut off:
``EventGate`` stores the events that fit, then closes the log as the engine would (a
``node_failed`` for each node visit still open, then the ``run_finished``, failed with the
limit's error) and drops whatever else the run emits while it stops. So the log stays
numbered without gaps and ends with its finishing event. The closing events are stored even
past the limit: a few hundred bytes a node. Runs of one user writing at the same moment can
each take one write past the quota before the next write of each sees it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.http import HttpResponse

from graphs.log import RunLog, fold
from webapp import problems
from webapp.runs.models import Run, RunEvent, UserStorage

Event = dict[str, Any]
Visit = tuple[str, int]
OPENING = "node_started"
# Events after which a node visit is over.
CLOSING = ("node_finished", "node_failed", "node_skipped")


def size_of(value: Any) -> int:
    """Bytes of a value's JSON text, as a JSONField stores it (ASCII, so one per character).

    >>> size_of({"text": "hé"})
    19
    """
    return len(json.dumps(value))


def human_bytes(count: int) -> str:
    """A byte count for a person to read (decimal units, as disks are sold).

    >>> [human_bytes(n) for n in (50_000_000, 20_000, 1_500, 999, 5_200_000_000)]
    ['50 MB', '20 kB', '1.5 kB', '999 bytes', '5.2 GB']
    """
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


def event_log_error(cap: int) -> str:
    return (
        f"the run's event log reached the {human_bytes(cap)} limit (SWITCHYARD_MAX_RUN_EVENT_BYTES)"
    )


def quota_error(quota: int) -> str:
    return (
        f"the runs of the user who started it reached their {human_bytes(quota)} storage "
        "quota (SWITCHYARD_MAX_STORED_BYTES_PER_USER)"
    )


# Starting a run ----------------------------------------------------------------------


class RunRefused(Exception):
    """A run cannot start now: its user is at a limit. ``status`` and ``code`` are the API's."""

    status = 403
    code = "run_refused"

    def __init__(self, detail: str, limit: int):
        super().__init__(detail)
        self.limit = limit

    def response(self) -> HttpResponse:
        """The API's answer: problem details, with the limit."""
        return problems.response(self.status, self.code, str(self), limit=self.limit)


class TooManyRuns(RunRefused):
    status = 429
    code = "runs_in_flight_limit"


class OverQuota(RunRefused):
    # 403, not 429: waiting does not help, only freeing space (deleting flows) does.
    status = 403
    code = "stored_bytes_quota"


def check_start(user: Any) -> None:
    """Raise RunRefused when `user` may not start another run now.

    Call it in the transaction that stores the run: it locks the user's UserStorage row, so
    two starts by one user take turns and cannot both take the last place in flight.
    """
    if user is None:
        return
    storage, _ = UserStorage.objects.select_for_update().get_or_create(user=user)
    limit = settings.MAX_RUNS_IN_FLIGHT
    if limit:
        in_flight = Run.objects.filter(started_by=user, status__in=Run.IN_FLIGHT).count()
        if in_flight >= limit:
            raise TooManyRuns(
                f"you have {in_flight} run{'' if in_flight == 1 else 's'} queued or running, "
                "the most you may have at once "
                f"(SWITCHYARD_MAX_RUNS_IN_FLIGHT={limit}): wait for one to finish, or cancel "
                "one",
                limit,
            )
    quota = settings.MAX_STORED_BYTES_PER_USER
    if quota and storage.stored_bytes >= quota:
        raise OverQuota(
            f"your runs store {human_bytes(storage.stored_bytes)}, which reaches your "
            f"{human_bytes(quota)} storage quota (SWITCHYARD_MAX_STORED_BYTES_PER_USER): "
            "delete flows whose runs you no longer need",
            quota,
        )


def start_bytes(run: Run) -> int:
    """What a run stores before its first event: what it was started with."""
    size = size_of(run.inputs) + size_of(run.input_overrides)
    if run.graph_override is not None:
        size += size_of(run.graph_override)
    return size


# Counting what is written --------------------------------------------------------------


# Adds bytes (first parameter) to a user's (second) storage. The table's name is all that
# is formatted in.
_STORAGE = connection.ops.quote_name(UserStorage._meta.db_table)
CHARGE = f"UPDATE {_STORAGE} SET stored_bytes = stored_bytes + %s WHERE user_id = %s"  # noqa: S608


def charge(user_id: int | None, count: int) -> None:
    """Add `count` bytes to a user's storage (a no-op for a run with no user)."""
    if user_id is not None and count:
        # Every write of every run pays this: one plain statement, no queryset to build.
        with connection.cursor() as cursor:
            cursor.execute(CHARGE, [count, user_id])


def charge_run(run_id: int, count: int) -> None:
    """Add `count` bytes to the storage of whoever started the run."""
    if count:
        starter = Run.objects.filter(pk=run_id).values("started_by")
        UserStorage.objects.filter(user__in=starter).update(stored_bytes=F("stored_bytes") + count)


def written(events: Iterable[Event], event_bytes: int) -> tuple[dict[str, Any], int]:
    """The run row's changes for storing `events` (`event_bytes` of them), and the bytes it
    stores in all: the events, and the outputs a ``run_finished`` puts on the row."""
    grown, stored = written_bytes(events, event_bytes)
    return {name: F(name) + count for name, count in grown.items()}, stored


def written_bytes(events: Iterable[Event], event_bytes: int) -> tuple[dict[str, int], int]:
    """``written``'s changes as what each of the row's counters grows by."""
    stored = event_bytes + sum(
        size_of(e.get("outputs", {})) for e in events if e["type"] == "run_finished"
    )
    return {"event_bytes": event_bytes, "stored_bytes": stored}, stored


def with_user_bytes(runs: QuerySet[Run]) -> QuerySet[Run]:
    """The runs, each with ``user_bytes``: its user's stored bytes (None: no row)."""
    storage = UserStorage.objects.filter(user=OuterRef("started_by")).values("stored_bytes")
    return runs.annotate(user_bytes=Subquery(storage[:1]))


# Holding a running run to the limits -----------------------------------------------------


def run_limits(event_bytes: int, user_bytes: int | None) -> list[tuple[int, str]]:
    """The room a run has left, in bytes, under each limit that applies, with its error."""
    limits = []
    cap = settings.MAX_RUN_EVENT_BYTES
    if cap:
        limits.append((cap - event_bytes, event_log_error(cap)))
    quota = settings.MAX_STORED_BYTES_PER_USER
    if quota and user_bytes is not None:
        limits.append((quota - user_bytes, quota_error(quota)))
    return limits


class EventGate:
    """Numbers a run's events for its log and holds the log to the run's limits.

    One gate per write of webapp.runs.eventlog (an in-process batch, a coordinator step),
    made from the run's row: its last seq, the room ``run_limits`` leaves, and ``stopped``,
    the error a limit stopped the run with earlier. ``admit`` says what to store for each
    event, in order. While the events fit they are stored as they are. The first one that
    does not fit stops the run (``tripped``): the visits the log leaves open are closed
    (``open_visits`` gives those of what was stored before this gate) and from then on
    only the ``run_finished`` is stored, failed with the limit's error and no outputs.

    >>> gate = EventGate(2, [(300, "too big")], open_visits=lambda: {("a", 1): None})
    >>> gate.admit({"type": "node_delta", "node": "a", "iteration": 1, "text": "hi"})[0]["seq"]
    3
    >>> [e["type"] for e in gate.admit({"type": "node_delta", "text": "x" * 300})]
    ['node_failed']
    >>> gate.tripped, gate.admit({"type": "node_failed", "node": "a", "iteration": 1})
    (True, [])
    >>> end = gate.admit({"type": "run_finished", "status": "cancelled", "outputs": {"x": 1}})
    >>> [(e["seq"], e["status"], e["error"], e["outputs"]) for e in end]
    [(5, 'failed', 'too big', {})]
    """

    def __init__(
        self,
        last_seq: int,
        limits: list[tuple[int, str]],
        *,
        stopped: str = "",
        open_visits: Callable[[], dict[Visit, None]],
    ):
        self.seq = last_seq
        self.rooms = [[room, error] for room, error in limits]
        self.stopped = stopped
        self.tripped = False
        self.bytes = 0  # of what it admitted
        # The JSON text of each event admitted and not yet taken (``take_texts``): encoded
        # once here to be measured, and stored and broadcast as it is (webapp.runs.eventlog).
        self.texts: list[str] = []
        self._open_before = open_visits
        self._admitted: list[Event] = []

    def admit(self, event: Event) -> list[Event]:
        """What to store for `event`, numbered: the event, nothing, or the log's closing."""
        if self.stopped:
            return self._closing(event)
        numbered = {**event, "seq": self.seq + 1}
        text = json.dumps(numbered)  # size_of's
        size = len(text)
        over = next((error for room, error in self.rooms if size > room), None)
        if over is None:
            return [self._take(numbered, text)]
        if event["type"] == "run_started":
            # Stored whatever its size (its inputs are bounded by the API's body limit): a
            # log opens with it. The run then stops at once.
            return [self._take(numbered, text), *self._trip(over, None)]
        return self._trip(over, event)

    def take_texts(self) -> list[str]:
        """The JSON texts of the events admitted since the last call, in order."""
        texts, self.texts = self.texts, []
        return texts

    def open_visits(self) -> list[Visit]:
        """The node visits the stored log has opened and not closed, in the order opened."""
        log = RunLog()
        for node, iteration in self._open_before():
            log.apply({"type": OPENING, "node": node, "iteration": iteration})
        for event in self._admitted:
            log.apply(event)
        return log.open_visits()

    def _trip(self, error: str, event: Event | None) -> list[Event]:
        self.stopped, self.tripped = error, True
        now = time.time()
        closed = [
            self._number(
                {
                    "ts": now,
                    "type": "node_failed",
                    "node": node,
                    "iteration": iteration,
                    "error": error,
                    "cancelled": True,
                }
            )
            for node, iteration in self.open_visits()
        ]
        if event is not None:
            closed += self._closing(event)
        return closed

    def _closing(self, event: Event) -> list[Event]:
        if event["type"] != "run_finished":
            return []
        return [self._number({**event, "status": "failed", "error": self.stopped, "outputs": {}})]

    def _number(self, event: Event) -> Event:
        numbered = {**event, "seq": self.seq + 1}
        return self._take(numbered, json.dumps(numbered))

    def _take(self, event: Event, text: str) -> Event:
        size = len(text)
        self.seq = event["seq"]
        self.bytes += size
        self.texts.append(text)
        for room in self.rooms:
            room[0] -= size
        self._admitted.append(event)
        return event


def logged_open_visits(run_id: int) -> dict[Visit, None]:
    """The node visits a run's stored log has opened and not closed (read once, at a stop)."""
    rows = (
        RunEvent.objects.filter(run_id=run_id, type__in=(OPENING, *CLOSING))
        .order_by("seq")
        .values_list("type", "payload__node", "payload__iteration")
    )
    # Only what opens and closes visits is read, never the payloads (inputs, outputs).
    log = fold(
        {"type": kind, "node": node, "iteration": iteration} for kind, node, iteration in rows
    )
    return dict.fromkeys(log.open_visits())
