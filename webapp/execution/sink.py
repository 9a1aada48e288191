"""The engine's sink for one run executed in this process: its events, in batches, to the
run's log (webapp.runs.eventlog, the one writer), from a thread of their own.

The in-process driver's runs use it, and so does every sub-flow's child run
(webapp.execution.subflows), whichever driver runs its parent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async

from webapp.execution import dbthreads
from webapp.runs import eventlog

MAX_BATCH = 500
# Event writes get a thread (and so a database connection) of their own: on the shared
# thread they would queue behind every request and consumer, and reopen the connection
# each time.
_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-recorder")


class Sink:
    """The executor's sink for one run: queues events, appends them to the log in batches.

    The executor calls the sink synchronously and must never wait on it, so events are
    queued here and written by one task: whatever arrived while the previous batch was
    being written goes in the next one (no window: a batch is written as soon as the
    writer is free). The batch is taken on the writer thread as its write begins, not
    when the write is handed over: the one writer serves every run in the process, and
    under a burst a write waits there behind the other runs'; what arrives meanwhile
    goes in with it rather than in a write (and a broadcast) of its own. When a batch
    takes the log past one of the run's limits, the log is closed and the run stopped
    (``stop_run``).

    A batch is broadcast from this loop once its write has returned (committed), in
    order, while the next batch is already being written. One broadcast of a run is in
    flight at a time; batches committed meanwhile go out together after it, as one
    message (eventlog.merge_messages), not one channel-layer send each.
    """

    def __init__(self, run_id: int):
        self.run_id = run_id
        # Appended on the loop, taken from on the writer thread (take): deque's append and
        # popleft are each atomic, and only the writer takes.
        self.pending: deque[dict[str, Any]] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        # Stops the engine's run when a limit is reached (the driver sets it to the run's
        # cancel: the log's run_finished says failed, and why, whatever the engine says).
        self.stop_run: Callable[[], None] | None = None
        # How many events it was given, and how many of them are stored (committed).
        self.given = 0
        self.stored = 0
        self.stored_more = asyncio.Event()
        # Committed batches' messages not yet broadcast, and the task broadcasting them.
        self.unsent: list[dict[str, Any]] = []
        self.sending: asyncio.Future[None] | None = None
        self.writer = asyncio.ensure_future(self.write_loop())

    def __call__(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        self.given += 1
        self.wake.set()

    async def commit(self) -> None:
        """Wait until every event given so far is stored (the engine's ``Emitter.commit``:
        an agent's turn is in the log before its next model call). Returns at once should
        the writer have stopped: what it could not store is lost either way."""
        target = self.given
        while self.stored < target and not self.writer.done():
            self.stored_more.clear()
            waiter = asyncio.ensure_future(self.stored_more.wait())
            await asyncio.wait([waiter, self.writer], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def close(self) -> None:
        """Write everything still queued, broadcast it, then stop."""
        self.closed = True
        self.wake.set()
        try:
            await self.writer
        finally:
            if self.sending is not None:
                await self.sending

    async def write_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                count, message, tripped = await _write(self)
                self.stored += count
                self.stored_more.set()
                if message is not None:
                    self.unsent.append(message)
                    if self.sending is None or self.sending.done():
                        self.sending = asyncio.ensure_future(self.send())
                if tripped and self.stop_run is not None:
                    self.stop_run()
            if self.closed and not self.pending:
                return

    def take(self) -> list[dict[str, Any]]:
        """The next batch: what is queued now, up to MAX_BATCH (on the writer thread)."""
        pending = self.pending
        return [pending.popleft() for _ in range(min(len(pending), MAX_BATCH))]

    async def send(self) -> None:
        """Broadcast the committed batches, in order, until none is left unsent."""
        while self.unsent:
            messages, self.unsent = self.unsent, []
            for message in eventlog.merge_messages(messages, MAX_BATCH):
                await eventlog.send(self.run_id, message)


@sync_to_async(thread_sensitive=False, executor=_writer)
def _write(sink: Sink) -> tuple[int, dict[str, Any] | None, bool]:
    """Store the sink's next batch (taken here, as the write begins): how many events it
    held, the committed batch's message (``eventlog.store``) and whether a limit tripped."""
    batch = sink.take()
    # The batch is taken once: durably's retry after a broken connection stores the same.
    message, tripped = dbthreads.durably(eventlog.store, sink.run_id, batch)
    return len(batch), message, tripped
