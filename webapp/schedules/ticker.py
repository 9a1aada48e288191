"""Who ticks the schedules, and how often (settings.SCHEDULE_TICK_S; 0: nobody here).

- Embedded default: a task on Daphne's event loop, scheduled when webapp.asgi is imported
  (``start_with_server``), so it runs from the moment the server does; each tick runs in
  a thread so the loop never waits on the database.
- Celery driver: every worker ticks on a thread of its own from the moment it is ready
  (webapp.schedules.tasks), and ``webapp.schedules.tasks.tick_schedules`` can be put in
  a beat schedule too. However many tick, a tick's UNIQUE row lets only one start its run.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from webapp.schedules import service

log = logging.getLogger(__name__)

_loops: set[asyncio.AbstractEventLoop] = set()
# The loop keeps only a weak reference to a task: these keep the tickers alive.
_tasks: set[asyncio.Task[None]] = set()
_lock = threading.Lock()


def start_with_server(loop: asyncio.AbstractEventLoop) -> None:
    """Tick on ``loop`` from now on (once per loop; only with the in-process driver, whose
    server is the one process that runs things)."""
    if settings.SCHEDULE_TICK_S <= 0 or settings.RUN_DRIVERS["inprocess"] != settings.RUN_DRIVER:
        return
    with _lock:
        if loop in _loops:
            return
        _loops.add(loop)
    loop.call_soon_threadsafe(lambda: _tasks.add(loop.create_task(_tick_forever())))


async def _tick_forever() -> None:
    while True:
        try:
            report = await database_sync_to_async(service.tick)(timezone.now())
            if any(report.as_dict().values()):
                log.info("schedules ticked: %s", report.as_dict())
        except Exception:
            log.exception("ticking schedules failed; trying again")
        await asyncio.sleep(settings.SCHEDULE_TICK_S)


class Ticker(threading.Thread):
    """A Celery worker's ticker."""

    def __init__(self, interval: float):
        super().__init__(name="schedule-ticker", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                report = service.tick(timezone.now())
                if any(report.as_dict().values()):
                    log.info("schedules ticked: %s", report.as_dict())
            except Exception:
                log.exception("ticking schedules failed; trying again")
                connection.close()
        connection.close()


_ticker: Ticker | None = None


def start_in_worker() -> None:
    global _ticker
    if settings.SCHEDULE_TICK_S > 0:
        _ticker = Ticker(settings.SCHEDULE_TICK_S)
        _ticker.start()


def stop_in_worker() -> None:
    if _ticker is not None:
        _ticker.stopped.set()
