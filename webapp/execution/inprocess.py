"""Drivers hand runs to the engine. The embedded default runs them in this process's loop.

``start_run`` and ``cancel_run`` are all the web layer calls; settings.RUN_DRIVER
picks the implementation from DRIVERS.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from functools import cache

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from graphs.executor import Run as EngineRun
from webapp.execution import coordinator
from webapp.execution.plans import (  # noqa: F401 (engine_services and the compilers: the web layer's)
    compiled_graph,
    compiled_version,
    engine_services,
    run_options,
)
from webapp.runs.eventlog import RunRecorder
from webapp.runs.models import Run

log = logging.getLogger(__name__)


class InProcessDriver:
    """Runs execute as tasks in the server's event loop; cancel reaches them directly."""

    def __init__(self) -> None:
        self.active: dict[int, EngineRun] = {}
        self.starting: set[int] = set()
        self.cancel_requested: dict[int, bool] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, run_id: int) -> None:
        # A fresh context: the request's (asgiref's thread executor among it) ends with the
        # response, and the run must outlive it.
        self.starting.add(run_id)
        task = asyncio.get_running_loop().create_task(
            self.execute(run_id), context=contextvars.Context()
        )
        # The loop holds tasks weakly: keep each one until it ends.
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def execute(self, run_id: int) -> None:
        try:
            if not await _claim(run_id):
                return  # cancelled before it started
            run = await Run.objects.select_related("flow_version").aget(pk=run_id)
            recorder = RunRecorder(run_id)
            try:
                flow = compiled_graph(run.flow_version, run.graph_override)
                options = await run_options(run)
                handle = flow.start(run.inputs, recorder, options=options)
                recorder.stop_run = handle.cancel
            except ValueError as exc:  # FlowInvalid, or a re-run that cannot be planned
                await recorder.close()
                await _fail(run_id, str(exc))
                return
            self.active[run_id] = handle
        finally:
            self.starting.discard(run_id)
            cancelled = self.cancel_requested.pop(run_id, False)
        if cancelled:
            handle.cancel()
        try:
            await handle.wait()
        except Exception:
            log.exception("run %s crashed", run_id)
            await _fail(run_id, "the engine crashed; see the server log")
        finally:
            self.active.pop(run_id, None)
            await recorder.close()

    async def cancel(self, run_id: int) -> bool:
        handle = self.active.get(run_id)
        if handle is not None:
            handle.cancel()
            return True
        if run_id in self.starting:
            self.cancel_requested[run_id] = True
            # Still queued: cancel it outright, and the start will see that.
            await _cancel_orphan(run_id)
            return True
        return await _cancel_orphan(run_id)

    async def wait_idle(self) -> None:
        """Wait for every run this process started (tests and shutdown)."""
        while self.tasks:
            await asyncio.wait(list(self.tasks))


@database_sync_to_async
def _claim(run_id: int) -> bool:
    """Move a queued run to running; False when someone (a cancel) got there first."""
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING)
    )


@database_sync_to_async
def _fail(run_id: int, error: str) -> None:
    Run.objects.filter(pk=run_id).update(
        status=Run.Status.FAILED, error=error, finished_at=timezone.now()
    )


@database_sync_to_async
def _cancel_orphan(run_id: int) -> bool:
    """A run no process is executing (say, after a restart) is marked cancelled."""
    updated = Run.objects.filter(
        pk=run_id, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]
    ).update(status=Run.Status.CANCELLED, finished_at=timezone.now(), error="cancelled")
    return bool(updated)


class CeleryDriver:
    """Runs execute on Celery workers, node by node (webapp.execution.coordinator).

    Starting only hands the run to the broker: a worker begins it. When the broker is
    unreachable the run stays queued, and a worker's sweeper begins it once it is back.
    """

    async def start(self, run_id: int) -> str | None:
        return await sync_to_async(self.send_begin, thread_sensitive=False)(run_id)

    @staticmethod
    def send_begin(run_id: int) -> str | None:
        from webapp.execution.tasks import begin_run

        try:
            begin_run.apply_async((run_id,), retry=False)
        except Exception:  # kombu's OperationalError, redis' ConnectionError, OSError...
            log.warning("run %s: the broker is unreachable; it stays queued", run_id)
            return QUEUED_NOTICE
        Run.objects.filter(pk=run_id).update(enqueued_at=timezone.now())
        return None

    async def cancel(self, run_id: int) -> bool:
        return await database_sync_to_async(coordinator.cancel)(run_id)

    async def wait_idle(self) -> None:
        """Nothing runs in this process."""


QUEUED_NOTICE = (
    "The run is queued: the task queue (Redis) cannot be reached right now. "
    "It starts as soon as the queue is back."
)

DRIVERS = {"inprocess": InProcessDriver, "celery": CeleryDriver}


@cache
def driver() -> InProcessDriver | CeleryDriver:
    return DRIVERS[settings.RUN_DRIVER]()


async def start_run(run_id: int) -> str | None:
    """Hand a queued run to the driver; a notice for the user when it cannot start yet."""
    return await driver().start(run_id)


async def cancel_run(run_id: int) -> bool:
    return await driver().cancel(run_id)
