"""Approval timeouts (and, on the same tickers, the batch lane's polls: webapp.runs.batches):
a wait with ``timeout_s`` unanswered by its deadline resumes its run
from the approval's ``timeout`` port (graphs.nodes.approval.timed_out).

The deadline is in the wait's JSON (the run's state) and, for a cheap sweep, the earliest
of a parked run's deadlines is ``Run.wait_deadline`` (a partial index over waiting runs).
``fire_due`` resumes every run past it through the driver, claiming each wait with one
row update under the run's lock (approvals.claim_timeout): any number of processes may
sweep at once, and a wait times out once.

Who sweeps:
- Embedded default: a task on the server's event loop (``start_with_server``, from
  webapp.asgi, like the schedules' ticker), each sweep on a database thread.
- Celery driver: every worker's sweeper (webapp.execution.sweeper), with the leases.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time

from channels.db import database_sync_to_async
from django.conf import settings

from graphs.nodes import approval
from webapp.runs import approvals
from webapp.runs.models import Run

log = logging.getLogger(__name__)

# Runs resumed per sweep at most; the rest wait for the next (a second at most).
BATCH = 200


def fire_due(driver=None, now: float | None = None) -> int:
    """Resume every parked run with a wait past its deadline; how many were resumed."""
    if driver is None:
        from webapp import execution  # the driver imports this package

        driver = execution.driver()
    now = time.time() if now is None else now
    due = Run.objects.filter(
        status=Run.Status.WAITING,
        wait_deadline__lte=dt.datetime.fromtimestamp(now, tz=dt.UTC),
    ).order_by("wait_deadline")
    fired = 0
    for run_id, state in due.values_list("pk", "state")[:BATCH]:
        for node in overdue(state or {}, now):
            try:
                driver.resume(run_id, _claimer(run_id, node, now))
            except approvals.NotWaiting:
                continue  # answered, cancelled or timed out elsewhere meanwhile
            fired += 1
            break  # the run runs again; its other waits are looked at when it parks again
    return fired


def overdue(state: dict, now: float) -> list[str]:
    """The nodes of a parked state whose wait is past its deadline, earliest first."""
    waits = state.get("waiting", {})
    deadlines = {node: approval.deadline(wait) for node, wait in waits.items()}
    return sorted(
        (node for node, due in deadlines.items() if due is not None and due <= now),
        key=lambda node: (deadlines[node], node),
    )


def _claimer(run_id: int, node: str, now: float):
    return lambda: approvals.claim_timeout(run_id, node, now)


# The embedded default's ticker ----------------------------------------------------------

_loops: set[asyncio.AbstractEventLoop] = set()
# The loop keeps only a weak reference to a task: these keep the tickers alive.
_tasks: set[asyncio.Task[None]] = set()
_lock = threading.Lock()


def start_with_server(loop: asyncio.AbstractEventLoop) -> None:
    """Sweep for timeouts on ``loop`` from now on (once per loop; only with the in-process
    driver: on the celery driver the workers' sweepers do it)."""
    if settings.RUN_DRIVERS["inprocess"] != settings.RUN_DRIVER:
        return
    with _lock:
        if loop in _loops:
            return
        _loops.add(loop)
    loop.call_soon_threadsafe(lambda: _tasks.add(loop.create_task(tick_forever())))


async def tick_forever() -> None:
    while True:
        try:
            fired = await database_sync_to_async(fire_due)()
            if fired:
                log.info("approval timeouts fired: %s", fired)
        except Exception:
            log.exception("sweeping approval timeouts failed; trying again")
        try:
            # Runs parked on message batches: a thread of its own, as the batch calls
            # run on an event loop of their own (webapp.runs.batches).
            polled = await asyncio.to_thread(_poll_batches)
            if polled:
                log.info("runs resumed from their message batches: %s", polled)
        except Exception:
            log.exception("polling message batches failed; trying again")
        await asyncio.sleep(settings.WAIT_TICK_S)


def _poll_batches() -> int:
    from django.db import connection

    from webapp.runs import batches

    try:
        return batches.poll_due()
    finally:
        connection.close()  # a thread of asyncio's pool, not Django's: close what it opened


def stop_on(loop: asyncio.AbstractEventLoop) -> None:
    """Stop sweeping on ``loop`` (a test's; a server's ticker ends with its loop)."""
    with _lock:
        _loops.discard(loop)
        ours = [task for task in _tasks if task.get_loop() is loop]
        _tasks.difference_update(ours)
    for task in ours:
        loop.call_soon_threadsafe(task.cancel)
