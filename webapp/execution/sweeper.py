"""The sweeper every Celery worker runs on a thread of its own: coordinator.sweep every
second or so, so lapsed leases are taken over and unsent tasks sent while any worker lives
(``manage.py sweep_runs`` runs one sweep by hand); and, as often, approval waits past
their deadline resume from their timeout port (webapp.runs.timeouts)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection

from graphs.nodes.base import Services
from webapp.execution import coordinator
from webapp.execution.distributed import CeleryDriver
from webapp.execution.plans import engine_services
from webapp.runs import batches, timeouts

log = logging.getLogger(__name__)


class Sweeper(threading.Thread):
    """Runs coordinator.sweep every `interval` seconds until stopped."""

    def __init__(self, interval: float):
        super().__init__(name="run-sweeper", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                counts = sweep()
            except Exception:
                log.exception("sweep failed; trying again")
                connection.close()
                continue
            if any(counts.values()):
                log.info("sweep: %s", counts)
        connection.close()


def sweep() -> dict[str, int]:
    """One sweep: leases, unsent tasks, stranded runs, approval timeouts, message batches."""
    counts = coordinator.sweep()
    counts["timed_out"] = timeouts.fire_due(CeleryDriver())
    counts["batches"] = batches.poll_due(CeleryDriver())
    return counts


def warm_up(services: Services) -> None:
    warm = getattr(services.model_client, "warm_up", None)  # the offline model has none
    if warm is not None:
        try:
            warm()
        except Exception:  # no key, say: the node that needs it reports that
            log.info("model client not warmed up", exc_info=True)


_sweeper: Sweeper | None = None


def start() -> None:
    """Warm the model client up, then start this worker's sweeper (when the worker is
    ready, before its consumer takes the first task)."""
    global _sweeper
    # The model SDK's import and client are built before any task runs. Built on the node
    # loop by a first call, or on this thread while the first tasks ran, the import held
    # up every node of the process: no lease was renewed for 2.3 s (a lease is 2 s in the
    # scale-out tests), the other worker took the tasks over while their calls were still
    # in flight, and a provider cap of 3 saw 4 to 6 calls at once.
    warm_up(engine_services())
    # A lapsed lease is noticed within a quarter of the lease, at most a second late.
    _sweeper = Sweeper(min(1.0, settings.NODE_LEASE_S / 4))
    _sweeper.start()


def stop() -> None:
    if _sweeper is not None:
        _sweeper.stopped.set()
