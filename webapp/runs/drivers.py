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
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

import graphs
from graphs.executor import Run as EngineRun
from graphs.executor import RunOptions
from graphs.nodes.base import Services
from graphs.replan import reuse_for_resume, reuse_from_node
from graphs.settings import services_from_env
from webapp.flows.models import FlowVersion
from webapp.runs.cache import DbNodeCache
from webapp.runs.models import Run, RunEvent
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


def compiled_graph(version: FlowVersion, override: dict | None = None) -> graphs.CompiledFlow:
    """The compiled plan of a run's graph: its version's, or the edited graph it ran instead."""
    if override is None:
        return compiled_version(version)
    # An edited graph belongs to one run (and its resumes): not worth a cache slot.
    return compile_version(override)


# What re-planning reads of an earlier run: where each node got to, and its outputs.
REPLAN_EVENTS = ("node_started", "node_finished", "node_failed", "node_skipped")


@database_sync_to_async
def _replan_events(run_id: int) -> list[dict]:
    events = RunEvent.objects.filter(run_id=run_id, type__in=REPLAN_EVENTS).order_by("seq")
    return list(events.values_list("payload", flat=True))


async def run_options(run: Run) -> RunOptions:
    """How the engine runs `run`: what it reuses of its parent, port overrides, the cache.

    Raises ValueError (FlowInvalid among them) when the run cannot start as asked.
    """
    reuse = {}
    if run.kind in (Run.Kind.FROM_NODE, Run.Kind.RESUME):
        if run.parent_id is None:
            raise ValueError("the run this one continues no longer exists")
        events = await _replan_events(run.parent_id)
        source = f"run {run.parent_id}"
        if run.kind == Run.Kind.FROM_NODE:
            reuse = reuse_from_node(run.graph, events, run.from_node, source)
        else:
            reuse = reuse_for_resume(run.graph, events, source)
    # A resumed run keeps its parent's port overrides, but only for nodes that run again.
    overrides = {node: ports for node, ports in run.input_overrides.items() if node not in reuse}
    return RunOptions(
        reuse=reuse,
        overrides=overrides,
        cache=DbNodeCache(run.flow_id, run.pk),
        read_cache=not run.ignore_cache,
    )


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


DRIVERS = {"inprocess": InProcessDriver}


@cache
def driver() -> InProcessDriver:
    if settings.RUN_DRIVER not in DRIVERS:
        # The settings accept "celery" ahead of its driver (issue 6): say so, not KeyError.
        raise ImproperlyConfigured(
            f"SWITCHYARD_RUN_DRIVER={settings.RUN_DRIVER}: this driver is not available yet"
        )
    return DRIVERS[settings.RUN_DRIVER]()


async def start_run(run_id: int) -> None:
    await driver().start(run_id)


async def cancel_run(run_id: int) -> bool:
    return await driver().cancel(run_id)
