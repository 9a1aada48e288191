"""A run's event log: its one writer and its one reader, whichever driver runs the run.

Writing (``Appender``): inside the caller's transaction, the events a driver produced are
stamped (``ts``, when the engine gave none), priced (``Tally``: a node's cost and a cache
hit's saving go into its ``node_finished``, the run's totals into ``run_finished`` and the
run row), numbered on from the run's ``last_seq`` and held to the run's byte limits
(webapp.runs.limits.EventGate) in one pass; ``save`` stores them with the run row's
changes, and once the transaction commits they are broadcast to the run's watchers. So
the database log is always at least as far along as any browser, and has no gaps
whichever process wrote which event. Prices change; what a run cost is fixed when it is
recorded.

The writers: the in-process driver (a batch at a time, webapp.execution.inprocess), the
celery driver's coordinator steps (webapp.execution.coordinator, holding the run's row
lock) and ``recover_runs`` (closing the log of a run a stopped server left open).

Reading (``events``): the stored events after a seq, for the API, the public share link
and the socket's backlog.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q, QuerySet, TextField
from django.db.models.functions import Cast

from webapp.runs import limits
from webapp.runs.models import Run, RunEvent, node_of
from webapp.runs.pricing import cache_saving_usd, cost_usd

log = logging.getLogger(__name__)

Event = dict[str, Any]

# What an Appender reads of its run's row.
ROW = (
    "last_seq",
    "event_bytes",
    "limit_error",
    "started_by",
    "cost_usd",
    "saved_usd",
    "cache_hits",
    "provider_saved_usd",
    "started_at",
)


class Appender:
    """Appends events to one run's log, in the caller's transaction.

    Made from the run's row as read in that transaction (with ``user_bytes``: see
    limits.with_user_bytes), so that two writers never number from the same seq: the
    coordinator holds the row's lock, the in-process driver is its run's only writer.
    `limited`: held to the run's byte limits (recover_runs closes a log whatever its size).
    """

    def __init__(self, run: Run, *, limited: bool = True) -> None:
        self.run_id = run.pk
        self.user_id = run.started_by_id
        # The run's money so far, kept on its row by every save: whoever writes next
        # prices on from there.
        self.tally = Tally()
        self.tally.cost = Decimal(run.cost_usd)
        self.tally.saved = Decimal(run.saved_usd)
        self.tally.cache_hits = run.cache_hits
        self.tally.provider_saved = Decimal(run.provider_saved_usd)
        if run.started_at is not None:
            self.tally.started = run.started_at.timestamp()
        user_bytes = getattr(run, "user_bytes", None)
        self.gate = limits.EventGate(
            run.last_seq,
            limits.run_limits(run.event_bytes, user_bytes) if limited else [],
            stopped=run.limit_error if limited else "",
            open_visits=lambda: limits.logged_open_visits(run.pk),
        )
        self.events: list[Event] = []
        self.texts: list[str] = []  # each recorded event's JSON text (EventGate)
        # None: each save broadcasts its events once its transaction commits. A list: the
        # saves' channel-layer messages are put there instead, for a caller that sends them
        # itself once the transaction has committed (``store``).
        self.outbox: list[dict[str, Any]] | None = None

    @classmethod
    def open(cls, run_id: int, *, limited: bool = True) -> Appender:
        """An appender for the run, its row read now."""
        runs = limits.with_user_bytes(Run.objects.filter(pk=run_id))
        return cls(runs.only(*ROW).get(), limited=limited)

    @property
    def tripped(self) -> bool:
        """A limit stopped the run in this write."""
        return self.gate.tripped

    @property
    def stopped(self) -> str:
        """The error a limit stopped the run with, in this write or before ("" if none)."""
        return self.gate.stopped

    def record(self, events: Iterable[Event]) -> list[Event]:
        """Stamp, price, number and gate `events`; returns what of them will be stored."""
        now = time.time()
        kept = []
        for event in events:
            if "ts" not in event:
                event = {"ts": now, **event}
            kept += self.gate.admit(self.tally.annotate(event))
        self.events += kept
        self.texts += self.gate.take_texts()
        return kept

    def save(self, **fields: Any) -> list[Event]:
        """Store what was recorded, with `fields` of the run's row; broadcast after the commit.

        Returns the stored events. The user's storage row is written last: it is shared by
        all of their runs' writers, so held for least time.
        """
        events, self.events = self.events, []
        texts, self.texts = self.texts, []
        changes = dict(fields)
        if self.gate.tripped:
            changes["limit_error"] = self.gate.stopped
        grown: dict[str, int] = {}
        stored = 0
        if events:
            changes.update(
                cost_usd=self.tally.cost,
                saved_usd=self.tally.saved,
                cache_hits=self.tally.cache_hits,
                provider_saved_usd=self.tally.provider_saved,
            )
            changes.update(run_changes(events))
            grown, stored = limits.written_bytes(events, self.gate.bytes)
        write_rows(self.run_id, events, texts, changes, grown, self.user_id, stored)
        if events:
            message = encoded_message(events, texts)
            if self.outbox is None:
                transaction.on_commit(partial(send_message, self.run_id, message))
            else:
                self.outbox.append(message)
        return events


def append(
    run_id: int, events: Iterable[Event], *, limited: bool = True
) -> tuple[list[Event], bool]:
    """Append `events` to the run's log in a transaction of their own (see Appender).

    Returns what was stored, and whether a limit stopped the run just now.
    """
    with transaction.atomic():
        appender = Appender.open(run_id, limited=limited)
        appender.record(events)
        stored = appender.save()
    return stored, appender.tripped


def store(run_id: int, events: Iterable[Event]) -> tuple[dict[str, Any] | None, bool]:
    """Append `events` as ``append`` does, but leave the broadcast to the caller: returns
    the channel-layer message of what was stored (None: nothing was), committed by then,
    for ``send``; and whether a limit stopped the run just now.

    For the in-process driver's sink, which writes on a thread of its own and sends from
    the event loop: a broadcast from the writing thread would hold that thread until the
    loop ran it, and the next batch's write with it. The transaction is durable (never a
    savepoint of the caller's), so what is returned has been committed.
    """
    with transaction.atomic(durable=True):
        appender = Appender.open(run_id)
        appender.outbox = []
        appender.record(events)
        appender.save()
    return (appender.outbox[0] if appender.outbox else None), appender.tripped


def write_rows(
    run_id: int,
    events: list[Event],
    texts: list[str],
    changes: Mapping[str, Any],
    grown: Mapping[str, int],
    user_id: int | None,
    stored: int,
) -> None:
    """Insert numbered events (with their JSON texts), set `changes` on the run's row and
    add `grown` to its counters, and charge `stored` bytes to the user's storage, in that
    order: on PostgreSQL in one round trip of plain statements. Every write of every run
    pays this (the celery driver's event writes and coordinator steps); a queryset update
    and three trips cost more worker CPU than the statements."""
    if connection.vendor != "postgresql":
        if events:
            insert(run_id, events, texts)
        if changes or grown:
            update = {name: F(name) + count for name, count in grown.items()}
            Run.objects.filter(pk=run_id).update(**changes, **update)
        limits.charge(user_id, stored)
        return
    statements: list[str] = []
    params: list[Any] = []
    if events:
        statements.append(_insert_sql(len(events)))
        for row in _event_rows(run_id, events, texts):
            params += row
    if changes or grown:
        quote = connection.ops.quote_name
        sets = []
        for name, value in changes.items():
            field = Run._meta.get_field(name)
            sets.append(f"{quote(field.column)} = %s")
            params.append(field.get_db_prep_save(value, connection))
        for name, count in grown.items():
            column = quote(Run._meta.get_field(name).column)
            sets.append(f"{column} = {column} + %s")
            params.append(count)
        table = connection.ops.quote_name(Run._meta.db_table)
        statements.append(f"UPDATE {table} SET {', '.join(sets)} WHERE id = %s")  # noqa: S608
        params.append(run_id)
    if user_id is not None and stored:
        statements.append(limits.CHARGE)
        params += (stored, user_id)
    if statements:
        # Plain statements, the names of columns and placeholders the only text formatted
        # in; several in one string are one trip (psycopg's client-side binding).
        with connection.cursor() as cursor:
            cursor.execute(";\n".join(statements), params)


def insert(run_id: int, events: list[Event], texts: list[str]) -> None:
    """Insert a batch of numbered events, each with its JSON text (as ``json.dumps`` gives
    it: what JSONField would store), in one statement, without an ORM object per event."""
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(1), _event_rows(run_id, events, texts))


def _insert_sql(rows: int) -> str:
    """The INSERT of `rows` events (``_event_rows``' values, in order)."""
    table = connection.ops.quote_name(RunEvent._meta.db_table)
    payload = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    values = ", ".join([f"(%s, %s, %s, %s, {payload})"] * rows)
    # The table's name and placeholders are all that is formatted in: no data.
    return f"INSERT INTO {table} (run_id, seq, type, node, payload) VALUES {values}"  # noqa: S608


def _event_rows(run_id: int, events: list[Event], texts: list[str]) -> list[tuple]:
    return [
        (run_id, e["seq"], e["type"], node_of(e), text)
        for e, text in zip(events, texts, strict=True)
    ]


def events(
    run_id: int, after: int = 0, limit: int | None = None, *, upto: int | None = None
) -> list[Event]:
    """The run's stored events with `after` < seq <= `upto`, in order, at most `limit`."""
    rows = RunEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    payloads = rows.values_list("payload", flat=True)
    return list(payloads if limit is None else payloads[:limit])


def events_json(run_id: int, after: int = 0, limit: int | None = None) -> list[str]:
    """`events`, each as the JSON text the database holds (SQLite's text, PostgreSQL's
    jsonb as text): a page of them goes out as it is, without decoding 5,000 events into
    dicts only to encode them again (most of a replay's events request)."""
    return [text for _, text in _seqs_and_texts(run_id, after, limit)]


def _seqs_and_texts(run_id: int, after: int, limit: int | None) -> list[tuple[int, str]]:
    rows = _texts(run_id, after).values_list("seq", "text")
    return list(rows if limit is None else rows[:limit])


def _texts(run_id: int, after: int) -> QuerySet[RunEvent]:
    return (
        RunEvent.objects.filter(run_id=run_id, seq__gt=after)
        .order_by("seq")
        .annotate(text=Cast("payload", TextField()))
    )


def events_json_marked(
    run_id: int, after: int, limit: int, keys: Iterable[str]
) -> list[tuple[str, bool]]:
    """`events_json`, each text with whether its event has one of `keys` at its top level,
    as the database reads the stored JSON: a reader that rewrites those events decodes
    them alone and sends the rest as they are (the share link's events)."""
    marked = Q()
    for key in keys:
        marked |= Q(payload__has_key=key)
    rows = _texts(run_id, after).annotate(
        marked=ExpressionWrapper(marked, output_field=BooleanField())
    )
    return list(rows.values_list("text", "marked")[:limit])


@dataclass(frozen=True)
class Page:
    """A page of a run's log (``page``): its events as stored JSON text, and how many
    events the log holds after the page's `after`, this page's and the rest."""

    texts: list[str]
    count: int
    last: int  # the seq of the page's last event; 0 on an empty page

    @property
    def more(self) -> bool:
        """The log goes on past this page."""
        return len(self.texts) < self.count


def page(run_id: int, after: int, limit: int) -> Page:
    """The run's events with seq above `after`, at most `limit`, as ``events_json`` reads
    them, counted without reading the rest of the log.

    A page that stops short of `limit` is the rest of the log. After a full page the count
    is the run's ``last_seq`` (read after the page, so at least as far along) less `after`:
    the Appender numbers every event on from the last, so the log has no gaps and that is
    how many events follow `after`. Counting them instead read every event after `after`:
    the first page of a 100,000-event run took 2.5 times a short run's. A log that shows a
    gap on the page, or runs past ``last_seq`` (a test's hand-made log), is counted.
    """
    rows = _seqs_and_texts(run_id, after, limit)
    texts = [text for _, text in rows]
    last = rows[-1][0] if rows else 0
    if len(rows) < limit:
        return Page(texts, len(rows), last)
    last_seq = Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).first() or 0
    if last - after == len(rows) and last_seq >= last:
        return Page(texts, last_seq - after, last)
    return Page(texts, RunEvent.objects.filter(run_id=run_id, seq__gt=after).count(), last)


def write_batch(run_id: int, batch: list[Event]) -> None:
    """Store events numbered by the caller, as they are (a log made by a test or imported):
    no pricing, no limits, no broadcast; their bytes count for the run and its user."""
    with transaction.atomic():
        RunEvent.objects.bulk_create(
            RunEvent(run_id=run_id, seq=e["seq"], type=e["type"], payload=e) for e in batch
        )
        changes, stored = limits.written(batch, sum(limits.size_of(e) for e in batch))
        Run.objects.filter(pk=run_id).update(**run_changes(batch), **changes)
        limits.charge_run(run_id, stored)


class Tally:
    """A run's money so far: prices each event as it passes, keeps the totals for the row.

    >>> tally = Tally({"m": {"input": 2.0, "output": 10.0}})
    >>> start = tally.annotate({"type": "run_started", "ts": 100.0})
    >>> usage = {"input_tokens": 1000, "output_tokens": 100}
    >>> tally.annotate({"type": "node_finished", "model": "m", "usage": usage})["cost_usd"]
    0.003
    >>> hit = {"type": "node_finished", "model": "m", "usage": {}, "cached": {"usage": usage}}
    >>> tally.annotate(hit)["saved_usd"]
    0.003
    >>> tally.annotate({"type": "node_finished", "model": "gpt", "usage": usage})["cost_usd"]
    >>> end = tally.annotate({"type": "run_finished", "ts": 102.5})
    >>> end["cost_usd"], end["saved_usd"], end["cache_hits"], end["duration_s"]
    (0.003, 0.003, 1, 2.5)
    >>> Tally({"m": {"input": 2.0}}).annotate(
    ...     {"type": "run_finished", "usage_by_model": {"m": usage, "gpt": usage}})["cost_usd"]
    0.002

    Thinking is billed as output: ``thinking_tokens`` are a part of ``output_tokens``, which
    the output price applies to, so they are priced once, never again on their own.

    >>> thought = {"input_tokens": 1000, "output_tokens": 100, "thinking_tokens": 80}
    >>> Tally({"m": {"input": 2.0, "output": 10.0}}).annotate(
    ...     {"type": "node_finished", "model": "m", "usage": thought})["cost_usd"]
    0.003

    The provider's prompt cache: a node that wrote or read it says what that saved
    (``provider_saved_usd``, pricing.cache_saving_usd), and the run's end the total, once
    any node cached (a log without caching has no such figure at all).

    >>> tally = Tally({"m": {"input": 2.0, "output": 10.0}})
    >>> read = {"input_tokens": 10, "output_tokens": 0, "cache_read_input_tokens": 1000}
    >>> event = tally.annotate({"type": "node_finished", "model": "m", "usage": read})
    >>> event["cost_usd"], event["provider_saved_usd"]  # 10*2 + 1000*0.2; 1000*(2 - 0.2)
    (0.00022, 0.0018)
    >>> tally.annotate({"type": "run_finished"})["provider_saved_usd"]
    0.0018
    >>> "provider_saved_usd" in Tally({}).annotate({"type": "run_finished"})
    False
    """

    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.prices = prices  # None: settings.MODEL_PRICES, read when the event is priced
        self.cost = Decimal(0)
        self.saved = Decimal(0)
        self.cache_hits = 0
        self.provider_saved = Decimal(0)
        self.provider_cached = False  # some node wrote or read the provider's cache
        self.started: float | None = None

    def annotate(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its figures added (a copy: the engine keeps its own)."""
        kind = event["type"]
        if kind == "node_finished":
            figures = self.node_figures(event)
            if figures:
                event = {**event, **figures}
        elif kind == "run_started":
            self.started = event.get("ts")
        elif kind == "run_finished":
            event = {**event, **self.run_figures(event)}
        return event

    def node_figures(self, event: dict[str, Any]) -> dict[str, float | None]:
        figures: dict[str, float | None] = {}
        model = event.get("model")
        if model is not None and "usage" in event:
            cost = self.price(model, event["usage"])
            self.cost += cost or 0
            figures["cost_usd"] = _float(cost)
            saving = cache_saving_usd(model, event["usage"], self.prices)
            if saving is not None:
                self.provider_saved += saving
                self.provider_cached = True
                figures["provider_saved_usd"] = float(saving)
        cached = event.get("cached")
        if cached is not None:
            self.cache_hits += 1
            if model is not None:
                saved = self.price(model, cached.get("usage"))
                self.saved += saved or 0
                figures["saved_usd"] = _float(saved)
        return figures

    def run_figures(self, event: dict[str, Any]) -> dict[str, Any]:
        # usage_by_model also counts what node events cannot show: a map's items and
        # failed attempts. Runs of an engine without it have only the nodes' costs.
        by_model = event.get("usage_by_model")
        cost = self.cost
        provider_saved: Decimal | None = self.provider_saved if self.provider_cached else None
        if by_model is not None:
            # pricing.usage_cost_usd, on this tally's table
            cost = sum((self.price(m, u) or Decimal(0) for m, u in by_model.items()), Decimal(0))
            savings = [cache_saving_usd(m, u, self.prices) for m, u in by_model.items()]
            if any(saving is not None for saving in savings):
                provider_saved = sum((s for s in savings if s is not None), Decimal(0))
        started, finished = self.started, event.get("ts")
        duration = None if started is None or finished is None else round(finished - started, 6)
        figures: dict[str, Any] = {
            "cost_usd": float(cost),
            "saved_usd": float(self.saved),
            "cache_hits": self.cache_hits,
            "duration_s": duration,
        }
        if provider_saved is not None:
            # The map's items and failed attempts count here too, as in cost_usd.
            self.provider_saved = provider_saved
            figures["provider_saved_usd"] = float(provider_saved)
        return figures

    def price(self, model: str, usage: Mapping[str, Any] | None) -> Decimal | None:
        return cost_usd(model, usage, self.prices)


def _float(amount: Decimal | None) -> float | None:
    return None if amount is None else float(amount)


# A message's text: its events' JSON texts between these (encoded_message).
_EVENTS_OPEN, _EVENTS_CLOSE = '{"events": [', "]}"


def batch_message(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """A channel-layer message carrying a batch, encoded once for every watching socket."""
    return encoded_message(batch, [json.dumps(event) for event in batch])


def encoded_message(batch: list[dict[str, Any]], texts: list[str]) -> dict[str, Any]:
    """``batch_message`` from its events' JSON texts, as they were stored: the socket
    forwards ``text`` as one frame to every watcher, so nothing is encoded again."""
    return {
        "type": "run.events",
        "first": batch[0]["seq"],
        "last": batch[-1]["seq"],
        "text": _EVENTS_OPEN + ", ".join(texts) + _EVENTS_CLOSE,
    }


def merge_messages(messages: list[dict[str, Any]], max_events: int = 500) -> list[dict[str, Any]]:
    """Consecutive batches' messages (``encoded_message``, each following on from the one
    before) as few messages as carry them, each of at most `max_events` events (a single
    larger one stays as it is): one channel-layer send, and one socket frame, for what
    was committed while the previous broadcast was in flight."""
    groups: list[list[dict[str, Any]]] = []
    for message in messages:
        group = groups[-1] if groups else None
        if (
            group is not None
            and message["first"] == group[-1]["last"] + 1
            and message["last"] - group[0]["first"] < max_events
        ):
            group.append(message)
        else:
            groups.append([message])
    return [
        group[0]
        if len(group) == 1
        else {
            **group[0],
            "last": group[-1]["last"],
            "text": _EVENTS_OPEN
            + ", ".join(m["text"][len(_EVENTS_OPEN) : -len(_EVENTS_CLOSE)] for m in group)
            + _EVENTS_CLOSE,
        }
        for group in groups
    ]


def run_changes(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """What a batch of events changes on its run's row: status, times, totals, last_seq."""
    changes: dict[str, Any] = {"last_seq": batch[-1]["seq"]}
    for event in batch:
        if event["type"] == "run_started":
            changes.update(status=Run.Status.RUNNING, started_at=_time(event))
        elif event["type"] == "run_finished":
            usage = event.get("usage", {})
            changes.update(
                status=event["status"],
                outputs=event.get("outputs", {}),
                error=event.get("error", ""),
                finished_at=_time(event),
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
            )
            # Figures the Tally added; a batch written without one (tests) keeps the defaults.
            changes.update(
                (field, event[field])
                for field in (
                    "cost_usd",
                    "saved_usd",
                    "cache_hits",
                    "duration_s",
                    "provider_saved_usd",
                )
                if event.get(field) is not None
            )
    return changes


def broadcast(run_id: int, batch: list[dict[str, Any]]) -> None:
    """Send committed events to the run's watchers (Appender.save, once they commit).

    From synchronous code: a worker, or a database thread of the in-process driver, where
    asgiref runs the send on the server's loop.

    Best effort: when the channel layer (Redis) is unreachable the events are already in
    the database, and browsers refill from there.
    """
    if batch:
        send_message(run_id, batch_message(batch))


def send_message(run_id: int, message: dict[str, Any]) -> None:
    """``send``, from synchronous code (see ``broadcast``); handed to the process's
    ``Broadcaster`` when it has one (a Celery worker), else sent before returning."""
    if _broadcaster is not None:
        _broadcaster.put(run_id, message)
    elif get_channel_layer() is not None:
        async_to_sync(send)(run_id, message)


class Broadcaster:
    """Sends committed batches from any thread on one long-lived event loop, in the order
    they were handed over, without the caller waiting.

    For a Celery worker, whose coordinator steps broadcast from database threads: with
    ``async_to_sync`` each step's thread waited for the worker's busy node loop to run the
    send before it could hand the step's new tasks to the broker (the next node's start
    waited for the broadcast), and a send from a thread with no loop above it (begin_run,
    the sweeper) made a loop, and a Redis connection, of its own. Best effort as ``send``
    is: what a stopping worker has not sent yet, browsers refill from the database (a
    watcher fills any gap from there too)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] | None = None
        self.sending: asyncio.Task[None] | None = None  # referenced: a task is held weakly

    def put(self, run_id: int, message: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self._put, run_id, message)

    def _put(self, run_id: int, message: dict[str, Any]) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.sending = self.loop.create_task(self._send_all(self.queue))
        self.queue.put_nowait((run_id, message))

    @staticmethod
    async def _send_all(queue: asyncio.Queue[tuple[int, dict[str, Any]]]) -> None:
        while True:
            run_id, message = await queue.get()
            try:
                await send(run_id, message)
            except Exception:  # send's own are caught there: only a bug gets here
                log.exception("run %s: events not broadcast", run_id)


_broadcaster: Broadcaster | None = None


def broadcast_from(loop: asyncio.AbstractEventLoop | None) -> None:
    """Send this process's broadcasts on `loop` from now on (None: each sender waits for
    its own, as by default). A Celery worker's node loop (webapp.execution.worker)."""
    global _broadcaster
    _broadcaster = None if loop is None else Broadcaster(loop)


async def send(run_id: int, message: dict[str, Any]) -> None:
    """Send a batch's message (``encoded_message``) to the run's watchers, once its events
    are committed. Best effort, as ``broadcast``."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(run_group(run_id), message)
    except Exception:  # redis-py raises its own ConnectionError, OSError, TimeoutError...
        log.warning("run %s: events %s-%s not broadcast", run_id, message["first"], message["last"])


def run_group(run_id: int) -> str:
    """The channel-layer group that live events of a run are broadcast to."""
    return f"run.{run_id}"


def _time(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(event["ts"], tz=dt.UTC)
