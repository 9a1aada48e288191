"""The in-process driver: runs execute as tasks on the web server's own event loop.

``start`` and ``cancel`` are sync and may be called from any thread: a sync view, the
on_commit of the transaction that stored the run, a management command. The run goes to
the first of these loops that is running:

- the caller's own, when it is on one (a consumer, an async test);
- the server's, recorded by webapp.asgi each time it serves (``serve_on``);
- the loop that asgiref's ``sync_to_async`` runs the calling thread for (Django's async
  test client, which bypasses webapp.asgi), unless ``async_to_sync`` made it for one call;
- a loop of the driver's own on a daemon thread, for callers no loop serves (the sync
  test client, a management command, a shell). Its runs end with the process, like the
  server's: ``recover_runs`` closes what they left open.

The engine's events go to the run's event log (webapp.runs.eventlog) in batches, from a
thread of their own (``webapp.execution.sink.Sink``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading

from asgiref.sync import AsyncToSync, SyncToAsync
from channels.db import database_sync_to_async

from graphs.executor import Run as EngineRun
from webapp.execution.plans import compiled_run, run_options
from webapp.execution.provider_cap import run_slots
from webapp.execution.sink import Sink
from webapp.runs import services
from webapp.runs.models import Run

log = logging.getLogger(__name__)


class InProcessDriver:
    """Runs execute as tasks of an event loop in this process; cancel reaches them directly."""

    runs_outlive_the_server = False

    def __init__(self) -> None:
        self.active: dict[int, tuple[EngineRun, asyncio.AbstractEventLoop]] = {}
        self.starting: set[int] = set()
        self.cancel_requested: set[int] = set()
        # One per run started here, done when the run's task ends (wait_idle waits on them
        # from any loop).
        self.running: set[concurrent.futures.Future[None]] = set()
        # Guards the three sets above: start and cancel come from any thread.
        self.lock = threading.Lock()

    def start(self, run_id: int) -> None:
        loop = _loop_for_caller()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self.lock:
            self.starting.add(run_id)
            self.running.add(done)
        done.add_done_callback(self._ended)

        def spawn() -> None:
            # A fresh context: the request's (asgiref's thread executor among it) ends with
            # the response, and the run must outlive it.
            task = loop.create_task(self.execute(run_id), context=contextvars.Context())
            task.add_done_callback(lambda _: done.set_result(None))

        loop.call_soon_threadsafe(spawn)

    def _ended(self, done: concurrent.futures.Future[None]) -> None:
        with self.lock:
            self.running.discard(done)

    async def execute(self, run_id: int) -> None:
        cancelled = False
        try:
            if not await claim(run_id):
                return  # cancelled before it started
            run = await Run.objects.select_related("flow_version").aget(pk=run_id)
            sink = Sink(run_id)
            try:
                # A flow that calls saved flows looks them up in the database as it compiles.
                flow = await database_sync_to_async(compiled_run)(run)
                options = await run_options(run)
                # Its own max_concurrency, and the provider's cap shared by every run.
                slots = run_slots(flow.services)
                handle = flow.start(run.inputs, sink, slots=slots, options=options)
                sink.stop_run = handle.cancel
            except ValueError as exc:  # FlowInvalid, or a re-run that cannot be planned
                await sink.close()
                await database_sync_to_async(services.fail)(run_id, str(exc))
                return
            with self.lock:
                self.active[run_id] = (handle, asyncio.get_running_loop())
        finally:
            with self.lock:
                self.starting.discard(run_id)
                if run_id in self.cancel_requested:
                    self.cancel_requested.discard(run_id)
                    cancelled = True
        if cancelled:
            handle.cancel()
        try:
            await handle.wait()
        except Exception:
            log.exception("run %s crashed", run_id)
            await database_sync_to_async(services.fail)(
                run_id, "the engine crashed; see the server log"
            )
        finally:
            with self.lock:
                self.active.pop(run_id, None)
            await sink.close()

    def cancel(self, run_id: int) -> bool:
        with self.lock:
            active = self.active.get(run_id)
            starting = active is None and run_id in self.starting
            if starting:
                self.cancel_requested.add(run_id)
        if active is not None:
            handle, loop = active
            loop.call_soon_threadsafe(handle.cancel)
            return True
        if starting:
            # Still queued: cancel it outright, and the claim will see that. Claimed already:
            # the start sees cancel_requested and stops the engine's run.
            services.cancel_queued(run_id)
            return True
        # Not this process's (say, started before a restart): nothing executes it.
        return services.cancel_orphan(run_id)

    async def wait_idle(self) -> None:
        """Wait for every run this process started (tests and shutdown), whatever its loop."""
        while True:
            with self.lock:
                running = list(self.running)
            if not running:
                return
            await asyncio.wait([asyncio.wrap_future(done) for done in running])


@database_sync_to_async
def claim(run_id: int) -> bool:
    """Move a queued run to running; False when someone (a cancel) got there first."""
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING)
    )


# Which loop runs a run ---------------------------------------------------------------

_server_loop: asyncio.AbstractEventLoop | None = None
_own_loop: asyncio.AbstractEventLoop | None = None
_own_loop_lock = threading.Lock()


def serve_on(loop: asyncio.AbstractEventLoop) -> None:
    """Record the loop the ASGI server serves on (webapp.asgi calls this as it serves)."""
    global _server_loop
    _server_loop = loop


def _loop_for_caller() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass  # a sync caller
    if _server_loop is not None and _server_loop.is_running():
        return _server_loop
    # asgiref keeps it for async_to_sync; a loop closed since (an earlier test's) is skipped,
    # and so is a loop async_to_sync made for one call (the sync test client calling an async
    # view): it closes when the call returns, cancelling whatever still runs on it.
    caller = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if (
        caller is not None
        and caller.is_running()
        and caller not in AsyncToSync.loop_thread_executors
    ):
        return caller
    return own_loop()


def own_loop() -> asyncio.AbstractEventLoop:
    """The driver's own loop, on a daemon thread, started on first use."""
    global _own_loop
    with _own_loop_lock:
        if _own_loop is None:
            _own_loop = asyncio.new_event_loop()
            threading.Thread(target=_own_loop.run_forever, name="run-loop", daemon=True).start()
        return _own_loop
