"""Drivers hand runs to the engine. The embedded default runs them in this process's loop.

``start_run`` and ``cancel_run`` are all the web layer calls; settings.RUN_DRIVER
picks the implementation from DRIVERS.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
from collections import OrderedDict
from functools import cache

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

import graphs
from graphs.errors import FlowInvalid
from graphs.executor import Run as EngineRun
from graphs.nodes.base import Services
from graphs.settings import services_from_env
from webapp.flows.models import FlowVersion
from webapp.runs.models import Run
from webapp.runs.recorder import RunRecorder

log = logging.getLogger(__name__)


@cache
def engine_services() -> Services:
    _compiled.clear()  # compiled flows hold the services they were built with
    return services_from_env()


def compile_version(graph: dict) -> graphs.CompiledFlow:
    return graphs.compile_flow(graph, engine_services())


_compiled: OrderedDict[tuple[int, dt.datetime], graphs.CompiledFlow] = OrderedDict()
COMPILED_CACHE_SIZE = 256


def compiled_version(version: FlowVersion) -> graphs.CompiledFlow:
    """The compiled plan of a flow version. Versions never change, so many runs share one."""
    # The creation time guards against a reused primary key (a flushed test database).
    key = (version.pk, version.created)
    flow = _compiled.get(key)
    if flow is None:
        flow = _compiled[key] = compile_version(version.graph)
        if len(_compiled) > COMPILED_CACHE_SIZE:
            _compiled.popitem(last=False)
    else:
        _compiled.move_to_end(key)
    return flow


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
                flow = compiled_version(run.flow_version)
                handle = flow.start(run.inputs, recorder)
            except FlowInvalid as exc:
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


DRIVERS = {"inprocess": InProcessDriver}


@cache
def driver() -> InProcessDriver:
    return DRIVERS[settings.RUN_DRIVER]()


async def start_run(run_id: int) -> None:
    await driver().start(run_id)


async def cancel_run(run_id: int) -> bool:
    return await driver().cancel(run_id)
