"""Celery tasks of the runs app (executed by ``celery -A webapp worker``).

``run_node`` executes one task of the celery driver (webapp.execution.worker); ``begin_run``
begins a queued run. Every worker also runs the coordinator's sweeper on a thread of
its own, so lapsed leases are taken over and unsent tasks sent while any worker lives.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings
from django.db import connection

from graphs.nodes.base import Services
from webapp.celery import app
from webapp.execution import coordinator, worker
from webapp.execution.plans import engine_services

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
@app.task(ignore_result=True)
def run_node(task_id: int, epoch: int) -> str:
    hostname = run_node.request.hostname or f"{socket.gethostname()}:{os.getpid()}"
    outcome = worker.execute(task_id, epoch, hostname)
    log.info("task %s epoch %s: %s", task_id, epoch, outcome)
    return outcome


@app.task(ignore_result=True)
def begin_run(run_id: int) -> None:
    dispatch = coordinator.begin(run_id)
    if dispatch is not None:
        dispatch.send()


class Sweeper(threading.Thread):
    """Runs coordinator.sweep every `interval` seconds until stopped."""

    def __init__(self, interval: float):
        super().__init__(name="run-sweeper", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        # The model SDK's import and client, built here rather than on the node loop, where
        # a first call would stall every node's lease renewal for as long as it takes.
        warm_up(engine_services())
        while not self.stopped.wait(self.interval):
            try:
                counts = coordinator.sweep()
            except Exception:
                log.exception("sweep failed; trying again")
                connection.close()
                continue
            if any(counts.values()):
                log.info("sweep: %s", counts)
        connection.close()


def warm_up(services: Services) -> None:
    warm = getattr(services.model_client, "warm_up", None)  # the offline model has none
    if warm is not None:
        try:
            warm()
        except Exception:  # no key, say: the node that needs it reports that
            log.info("model client not warmed up", exc_info=True)


_sweeper: Sweeper | None = None


@worker_ready.connect
def _start_sweeper(**_) -> None:
    global _sweeper
    # A lapsed lease is noticed within a quarter of the lease, at most a second late.
    _sweeper = Sweeper(min(1.0, settings.NODE_LEASE_S / 4))
    _sweeper.start()


@worker_shutting_down.connect
def _stop_sweeper(**_) -> None:
    if _sweeper is not None:
        _sweeper.stopped.set()
