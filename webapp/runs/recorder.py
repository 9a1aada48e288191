"""The executor's sink for one run: commit events to the database, then broadcast them.

The executor calls the sink synchronously and must never wait on it, so events are
queued here and written by one task in batches: whatever arrived while the previous
batch was being written goes in the next one. A batch is committed before it is
broadcast, so the database log is always at least as far along as any browser.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection, transaction

from webapp.runs.groups import run_group
from webapp.runs.models import Run, RunEvent

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
                await sync_to_async(write_durably, thread_sensitive=False, executor=_writer)(
                    self.run_id, batch
                )
                if layer is not None:
                    # A slow consumer may lose this message; it refills from the database.
                    await layer.group_send(group, batch_message(batch))
            if self.closed and not self.pending:
                return


def batch_message(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """A channel-layer message carrying a batch, encoded once for every watching socket."""
    return {
        "type": "run.events",
        "first": batch[0]["seq"],
        "last": batch[-1]["seq"],
        "text": json.dumps({"events": batch}, ensure_ascii=False),
    }


def write_durably(run_id: int, batch: list[dict[str, Any]]) -> None:
    """write_batch on the writer thread's long-lived connection, reconnecting once if it broke."""
    try:
        write_batch(run_id, batch)
    except DatabaseError:
        if connection.is_usable():
            raise
        connection.close()
        write_batch(run_id, batch)


def write_batch(run_id: int, batch: list[dict[str, Any]]) -> None:
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
    with transaction.atomic():
        RunEvent.objects.bulk_create(
            RunEvent(run_id=run_id, seq=e["seq"], type=e["type"], payload=e) for e in batch
        )
        Run.objects.filter(pk=run_id).update(**changes)


def _time(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(event["ts"], tz=dt.UTC)
