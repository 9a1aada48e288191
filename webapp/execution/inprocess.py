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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync
from channels.db import database_sync_to_async

from graphs import CompiledFlow
from graphs.executor import RunOptions
from graphs.spec import RunResult
from webapp.execution import dbthreads
from webapp.execution.plans import compiled_run, options_for, run_options
from webapp.execution.provider_cap import run_slots
from webapp.execution.sink import Sink
from webapp.runs import approvals, budget_raise, services
from webapp.runs.budget_raise import BudgetRaise
from webapp.runs.models import Run

# What resumes a parked run: a person's answer, or a raised budget.
Resumption = approvals.Answer | BudgetRaise

log = logging.getLogger(__name__)


class InProcessDriver:
    """Runs execute as tasks of an event loop in this process; cancel reaches them directly."""

    runs_outlive_the_server = False
    # Its runs park at breakpoints (webapp.runs.breakpoints) and resume here.
    pauses_runs = True

    def __init__(self) -> None:
        # run -> what cancels it (the engine's Run, or a resumed run's task), and its loop.
        self.active: dict[int, tuple[Any, asyncio.AbstractEventLoop]] = {}
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
            prepared = await dbthreads.on(_starts, prepare, run_id)
            if prepared is None:
                return  # cancelled before it started
            run, planned = prepared
            sink = Sink(run_id)
            try:
                if isinstance(planned, ValueError):
                    raise planned
                flow, options = planned
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
        await self._finish(run_id, handle.wait(), sink)

    async def _finish(self, run_id: int, result: Awaitable[RunResult | None], sink: Sink) -> None:
        """Await the engine's run to its end or its parking, then store what it left."""
        outcome: RunResult | None = None
        try:
            outcome = await result
        except Exception:
            log.exception("run %s crashed", run_id)
            await database_sync_to_async(services.fail)(
                run_id, "the engine crashed; see the server log"
            )
        finally:
            with self.lock:
                self.active.pop(run_id, None)
            await sink.close()
        # After the log's last write, so that its row says running when parked.
        if outcome is not None and outcome.status == "waiting" and outcome.state is not None:
            if await database_sync_to_async(approvals.park)(run_id, outcome.state):
                await database_sync_to_async(budget_raise.resume_if_raised)(run_id)
        elif outcome is not None:
            await database_sync_to_async(approvals.keep_state)(run_id, outcome.state)

    def resume(self, run_id: int, claim: Callable[[], Resumption]) -> None:
        """Claim a parked run (``claim``: approvals.claim_answer, or a budget's
        budget_raise.claim_raise, which may refuse) and go
        on with it on a loop like start's; its events number on from the log's last.

        The run counts as starting from before the claim, so that a cancel meanwhile is
        seen by the resume (or, when the claim is refused, closes the still waiting run)
        rather than marking a run about to execute cancelled behind its back.
        """
        with self.lock:
            self.starting.add(run_id)
        try:
            answer = claim()
        except BaseException:
            with self.lock:
                self.starting.discard(run_id)
                cancel = run_id in self.cancel_requested
                self.cancel_requested.discard(run_id)
            if cancel:
                approvals.cancel_waiting(run_id)
            raise
        loop = _loop_for_caller()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self.lock:
            self.running.add(done)
        done.add_done_callback(self._ended)

        def spawn() -> None:
            task = loop.create_task(self.execute_resume(answer), context=contextvars.Context())
            task.add_done_callback(lambda _: done.set_result(None))

        loop.call_soon_threadsafe(spawn)

    async def execute_resume(self, answer: Resumption) -> None:
        run_id = answer.run_id
        cancelled = False
        try:
            run = await Run.objects.select_related("flow_version").aget(pk=run_id)
            sink = Sink(run_id)
            try:
                flow = await database_sync_to_async(compiled_run)(run)
                options = await run_options(run)
            except ValueError as exc:
                await sink.close()
                await database_sync_to_async(services.fail)(run_id, str(exc))
                return
            # The engine's resume is a coroutine: its task is what a cancel stops (the
            # execution records the cancel as it unwinds).
            slots = run_slots(flow.services)
            if isinstance(answer, BudgetRaise):
                resumed = flow.resume_budget(
                    run.state or {},
                    answer.budget_usd,
                    answer.by,
                    sink,
                    seq=run.last_seq,
                    slots=slots,
                    options=options,
                )
            else:
                resumed = flow.resume(
                    run.state or {},
                    answer.node,
                    answer.iteration,
                    answer.outputs,
                    answer.by,
                    sink,
                    seq=run.last_seq,
                    slots=slots,
                    options=options,
                    breakpoint=answer.breakpoint,  # type: ignore[arg-type]
                )
            task = asyncio.ensure_future(resumed)
            sink.stop_run = task.cancel
            with self.lock:
                self.active[run_id] = (task, asyncio.get_running_loop())
        finally:
            with self.lock:
                self.starting.discard(run_id)
                if run_id in self.cancel_requested:
                    self.cancel_requested.discard(run_id)
                    cancelled = True
        if cancelled:
            # After the task's first step, so that the engine records the cancel.
            asyncio.get_running_loop().call_soon(task.cancel)
        await self._finish(run_id, _cancel_quietly(task), sink)

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
        # Parked waiting: no task holds it, its log is closed here.
        if approvals.cancel_waiting(run_id):
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


async def _cancel_quietly(task: asyncio.Future[RunResult]) -> RunResult | None:
    """A resumed run's result; None when it was cancelled (its log says so already)."""
    try:
        return await task
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
            raise  # it is us being cancelled, not the run
        return None


def claim(run_id: int) -> bool:
    """Move a queued run to running; False when someone (a cancel) got there first."""
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING)
    )


# A run's start (claim, load, compile, options) is one trip to a thread of its own, not four
# to asgiref's shared thread: under a burst (bench/load.py: 50 runs posted at once) the
# starts queued there behind every request and behind each other, a hop each.
_starts = ThreadPoolExecutor(max_workers=2, thread_name_prefix="run-start")

Planned = tuple[CompiledFlow, RunOptions]


def prepare(run_id: int) -> tuple[Run, Planned | ValueError] | None:
    """Claim the queued run and plan it: the run and (its compiled flow, its options), or
    the ValueError (FlowInvalid among them) that says why it cannot start; None when a
    cancel got there first. A flow that calls saved flows looks them up as it compiles."""
    if not claim(run_id):
        return None
    run = Run.objects.select_related("flow_version", "flow").get(pk=run_id)
    try:
        return run, (compiled_run(run), options_for(run))
    except ValueError as exc:
        return run, exc


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
