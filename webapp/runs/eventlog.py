"""The executor's sink for one run: commit events to the database, then broadcast them.

The executor calls the sink synchronously and must never wait on it, so events are
queued here and written by one task in batches: whatever arrived while the previous
batch was being written goes in the next one. A batch is committed before it is
broadcast, so the database log is always at least as far along as any browser.

Before that, each batch is priced (webapp.runs.pricing): a node's cost and a cache hit's
saving go into its `node_finished`, the run's totals into `run_finished` and the run row.
Prices change; what a run cost is fixed when it is recorded.

Each batch also passes the run's byte limits (webapp.runs.limits.EventGate) in the
transaction that writes it: when the log would grow past one, the recorder closes the log,
stores nothing more but its `run_finished`, and stops the run (`stop_run`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from webapp.execution import dbthreads
from webapp.runs import limits
from webapp.runs.models import Run, RunEvent
from webapp.runs.pricing import cost_usd

log = logging.getLogger(__name__)

MAX_BATCH = 500
# Event writes get a thread (and so a database connection) of their own: on the shared
# thread they would queue behind every request and consumer, and reopen the connection
# each time.
_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-recorder")


class RunRecorder:
    def __init__(self, run_id: int):
        self.run_id = run_id
        self.pending: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.closed = False
        self.tally = Tally()
        # Stops the engine's run when a limit is reached (the driver sets it to the run's
        # cancel: the log's run_finished says failed, and why, whatever the engine says).
        self.stop_run: Callable[[], None] | None = None
        self.writer = asyncio.ensure_future(self.write_loop())

    def __call__(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        self.wake.set()

    async def close(self) -> None:
        """Write everything still queued, then stop."""
        self.closed = True
        self.wake.set()
        await self.writer

    async def write_loop(self) -> None:
        layer = get_channel_layer()
        group = run_group(self.run_id)
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                batch = [self.tally.annotate(event) for event in batch]
                batch, tripped = await dbthreads.on(_writer, write_gated, self.run_id, batch)
                if tripped and self.stop_run is not None:
                    self.stop_run()
                if batch and layer is not None:
                    # A slow consumer may lose this message; it refills from the database.
                    try:
                        await layer.group_send(group, batch_message(batch))
                    except Exception:  # Redis unreachable: the database has the events
                        log.warning("run %s: events not broadcast", self.run_id, exc_info=True)
            if self.closed and not self.pending:
                return


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
    """

    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.prices = prices  # None: settings.MODEL_PRICES, read when the event is priced
        self.cost = Decimal(0)
        self.saved = Decimal(0)
        self.cache_hits = 0
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
        if by_model is not None:
            # pricing.usage_cost_usd, on this tally's table
            cost = sum((self.price(m, u) or Decimal(0) for m, u in by_model.items()), Decimal(0))
        started, finished = self.started, event.get("ts")
        duration = None if started is None or finished is None else round(finished - started, 6)
        return {
            "cost_usd": float(cost),
            "saved_usd": float(self.saved),
            "cache_hits": self.cache_hits,
            "duration_s": duration,
        }

    def price(self, model: str, usage: Mapping[str, Any] | None) -> Decimal | None:
        return cost_usd(model, usage, self.prices)


def _float(amount: Decimal | None) -> float | None:
    return None if amount is None else float(amount)


def batch_message(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """A channel-layer message carrying a batch, encoded once for every watching socket."""
    return {
        "type": "run.events",
        "first": batch[0]["seq"],
        "last": batch[-1]["seq"],
        "text": json.dumps({"events": batch}, ensure_ascii=False),
    }


def write_batch(run_id: int, batch: list[dict[str, Any]]) -> None:
    """Store events numbered by the caller, as they are (no limits: recover_runs closing a
    log), counting their bytes for the run and its user."""
    with transaction.atomic():
        RunEvent.objects.bulk_create(
            RunEvent(run_id=run_id, seq=e["seq"], type=e["type"], payload=e) for e in batch
        )
        changes, stored = limits.written(batch, sum(limits.size_of(e) for e in batch))
        Run.objects.filter(pk=run_id).update(**run_changes(batch), **changes)
        limits.charge_run(run_id, stored)


def write_gated(run_id: int, batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Store what the run's limits let through of a batch (limits.EventGate), numbered on
    from the log's last event; returns it, and whether a limit stopped the run just now."""
    with transaction.atomic():
        run = limits.with_user_bytes(Run.objects.filter(pk=run_id)).values(
            "last_seq", "event_bytes", "limit_error", "started_by", "user_bytes"
        )[0]
        gate = limits.EventGate(
            run["last_seq"],
            limits.run_limits(run["event_bytes"], run["user_bytes"]),
            stopped=run["limit_error"],
            open_visits=lambda: limits.logged_open_visits(run_id),
        )
        stored = [e for event in batch for e in gate.admit(event)]
        changes: dict[str, Any] = {}
        if gate.tripped:
            changes["limit_error"] = gate.stopped
        if stored:
            RunEvent.objects.bulk_create(
                RunEvent(run_id=run_id, seq=e["seq"], type=e["type"], payload=e) for e in stored
            )
            counted, count = limits.written(stored, gate.bytes)
            changes.update(run_changes(stored), **counted)
        if changes:
            Run.objects.filter(pk=run_id).update(**changes)
        if stored:
            # The run's row before its user's, as coordinator steps lock them.
            limits.charge(run["started_by"], count)
    return stored, gate.tripped


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
                for field in ("cost_usd", "saved_usd", "cache_hits", "duration_s")
                if event.get(field) is not None
            )
    return changes


def broadcast(run_id: int, batch: list[dict[str, Any]]) -> None:
    """Send committed events to the run's watchers from synchronous code (a worker).

    Best effort: when the channel layer (Redis) is unreachable the events are already in
    the database, and browsers refill from there.
    """
    layer = get_channel_layer()
    if layer is None or not batch:
        return
    try:
        async_to_sync(layer.group_send)(run_group(run_id), batch_message(batch))
    except Exception:  # redis-py raises its own ConnectionError, OSError, TimeoutError...
        log.warning("run %s: events %s-%s not broadcast", run_id, batch[0]["seq"], batch[-1]["seq"])


def run_group(run_id: int) -> str:
    """The channel-layer group that live events of a run are broadcast to."""
    return f"run.{run_id}"


def _time(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(event["ts"], tz=dt.UTC)
