"""Celery tasks of the celery driver (executed by ``celery -A webapp worker``).

``run_node`` executes one task of the celery driver (webapp.execution.worker);
``begin_run`` begins a queued run. The coordinator sends both by name. Every worker also
runs the sweeper (webapp.execution.sweeper) from the moment it is ready, approval
timeouts included; ``fire_timeouts`` does that part alone, for a beat schedule.
"""

from __future__ import annotations

import logging
import os
import socket

from celery.signals import worker_ready, worker_shutting_down
from django.db import connection

from webapp.celery import app
from webapp.execution import coordinator, sweeper, worker
from webapp.execution.distributed import CeleryDriver
from webapp.runs import eventlog, timeouts

log = logging.getLogger(__name__)


@app.task
def ping() -> dict[str, str | int]:
    """Where a task ran and which database it sees: proves a worker's wiring end to end."""
    # A query, not just the settings: the worker must actually reach the database.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {
        "hostname": ping.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
        "vendor": connection.vendor,
        "database": connection.settings_dict["NAME"],
    }


# A task is sent again when its worker died (coordinator.sweep), and the second
# delivery of a task that did finish is a no-op (coordinator.claim).
@app.task(name=coordinator.RUN_NODE, ignore_result=True)
def run_node(task_id: int, epoch: int) -> str:
    hostname = run_node.request.hostname or f"{socket.gethostname()}:{os.getpid()}"
    outcome = worker.execute(task_id, epoch, hostname)
    log.info("task %s epoch %s: %s", task_id, epoch, outcome)
    return outcome


@app.task(name=coordinator.BEGIN_RUN, ignore_result=True)
def begin_run(run_id: int) -> None:
    dispatch = coordinator.begin(run_id)
    if dispatch is not None:
        here = dispatch.send(run_here=True)
        if here:  # the input nodes: run at once, in this thread (see worker.run_here)
            hostname = begin_run.request.hostname or f"{socket.gethostname()}:{os.getpid()}"
            worker.execute_here(here, hostname)


@app.task(name="runs.fire_timeouts", ignore_result=True)
def fire_timeouts() -> int:
    """Resume the parked runs whose approval waited past its deadline (webapp.runs.timeouts)."""
    return timeouts.fire_due(CeleryDriver())


@worker_ready.connect
def _start_sweeper(**_) -> None:
    # The coordinator's steps broadcast their events from database threads: handed to the
    # node loop, a step does not wait for the send (eventlog.Broadcaster). Here, in worker
    # processes only, not wherever this module is imported.
    eventlog.broadcast_from(worker.node_loop())
    sweeper.start()


@worker_shutting_down.connect
def _stop_sweeper(**_) -> None:
    sweeper.stop()
