"""What a Celery worker does with one task of the celery driver: one node of a run, or one
item of a map node's list.

``execute`` claims the task (webapp.execution.coordinator), runs it on an event loop of its
own with graphs.runner's ``NodeRunner``, as the in-process executor does, and holds it
meanwhile (``Holder``): every ``FLUSH_S`` it writes what the node emitted, and about
every ``settings.NODE_HEARTBEAT_S`` the lease is renewed, with the leases of every other
task the process holds, in one statement (``Renewals``). A renewal also tells it that
the run was cancelled (the node stops) or that the task was taken over (the node stops
and nothing more is written). The node's outcome is then the coordinator's next step.

A map node does not run its items here: each item is a task of its own, so the items
spread over the workers; the map node waits for their results. A map on the batch lane
(graphs.llm.batch) is the exception: its items run in its own task (see
``DistributedRunner.run_subflow``). An item among the map's
first ``item_events`` writes its own events into the run's log as the map's ``node_item``
events, as the in-process driver's map forwards them, held by the item's own task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError

from graphs import CompiledFlow, RunOptions, RunResult
from graphs.cache import CachedOutput
from graphs.events import Emitter, EventSink
from graphs.llm.types import Usage
from graphs.nodes.map import boundary_of, item_fields
from graphs.runner import NodeRunner
from graphs.schedule import NodeFinished, Ready
from webapp.execution import cache as node_cache
from webapp.execution import coordinator, dbthreads
from webapp.execution.coordinator import Fenced
from webapp.execution.history import RunHistory
from webapp.execution.plans import cached_run, compiled_run
from webapp.execution.slots import Slots, scopes_for
from webapp.runs.models import NodeTask, Run

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a running node's events are written (the live view's latency, at most).
FLUSH_S = 0.05
# How often a map node looks for its items' results.
ITEM_POLL_S = 0.05

# Database work of the tasks running in this process, off their event loops. Bounded, so
# a worker with many task threads still opens few connections.
_db = ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker-db")


async def db(fn: Callable[..., T], *args: Any) -> T:
    return await dbthreads.on(_db, fn, *args)


def execute(task_id: int, epoch: int, worker: str) -> str:
    """Run a task to its end (this thread waits); says what happened, for the worker's log."""
    return asyncio.run_coroutine_threadsafe(_execute(task_id, epoch, worker), node_loop()).result()


_the_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def node_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop, on a thread of its own. One, because the model client
    is made once per process and its connection pool belongs to the loop that opened it;
    a loop per task would hand the next task connections of a closed loop."""
    global _the_loop
    with _loop_lock:
        if _the_loop is None:
            _the_loop = asyncio.new_event_loop()
            threading.Thread(target=_the_loop.run_forever, name="node-loop", daemon=True).start()
        return _the_loop


def execute_here(tasks: list[tuple[int, int]], worker: str) -> None:
    """Run instant nodes' tasks that a step of this process made ready (this thread waits)."""
    asyncio.run_coroutine_threadsafe(run_here(tasks, worker), node_loop()).result()


async def _execute(task_id: int, epoch: int, worker: str) -> str:
    here: list[tuple[int, int]] = []
    said = await execute_one(task_id, epoch, worker, here)
    await run_here(here, worker)
    return said


async def run_here(tasks: list[tuple[int, int]], worker: str) -> None:
    """Run the tasks of instant nodes (input, output, merge) that this worker's steps made
    ready, here and now, with those they make ready in turn: a trip through the broker
    and a pool thread would cost more than the node. Each is claimed, held and finished
    as a task from the broker is, so a second delivery, a takeover and fencing work the
    same; one this worker never claims (it died, or the claim failed) stays queued and
    unsent, and the sweeper sends it."""
    while tasks:
        task = tasks.pop(0)
        try:
            said = await execute_one(*task, worker, tasks)
        except Exception:
            log.exception("task %s epoch %s, run here: failed; the sweeper takes it", *task)
        else:
            log.info("task %s epoch %s, run here: %s", *task, said)


async def execute_one(task_id: int, epoch: int, worker: str, here: list[tuple[int, int]]) -> str:
    """Claim and run one task; the instant nodes its finish made ready go to `here`."""
    task = await db(coordinator.claim, task_id, epoch, worker)
    if task is None:
        return "not claimed: a second delivery, a stale epoch or a stopped run"
    holder = Holder(task_id, epoch, task.run_id)
    try:
        if task.item == NodeTask.NODE:
            return await run_node(task, holder, here)
        return await run_item(task, holder)
    except Fenced:
        return "taken over elsewhere while it ran: nothing written"


async def run_node(task: NodeTask, holder: Holder, here: list[tuple[int, int]]) -> str:
    run = task.run
    flow = await run_flow(run)
    cache = FencedCache(holder, run.flow_id, run.pk)
    runner = DistributedRunner(
        flow,
        # A record the node must find again (an agent's turn) is written before it goes on.
        emitter=Emitter(holder.sink, commit=holder.commit),
        run_inputs=flow.resolve_inputs(run.inputs),
        options=RunOptions(
            cache=cache,
            read_cache=not run.ignore_cache,
            history=RunHistory.of(run),
            latency="batch" if run.latency == "batch" else "stream",
        ),
        slots=holder.slots(run.pk, flow),
        holder=holder,
    )
    try:
        outcome = await holder.hold(runner.run(Ready(task.node, task.iteration, task.inputs)))
    finally:
        # A run's nodes run on many workers: its MCP sessions here are this task's, one per
        # server for all of the node's calls (an agent's loop), closed as the task ends.
        await runner.aclose_sessions()
    if runner.items and type(outcome) is not NodeFinished:
        await db(coordinator.stop_items, task.pk)
    finish = partial(coordinator.finish, run_here=True)
    here += await db(finish, task.pk, holder.epoch, outcome, holder.take(), run, holder.stores)
    return type(outcome).__name__


async def run_flow(run: Run) -> CompiledFlow:
    """The run's compiled flow: cached (a run's earlier nodes here), without a database
    thread; else compiled on one (a flow that calls saved flows looks them up)."""
    flow = cached_run(run)
    return flow if flow is not None else await db(compiled_run, run)


async def run_item(task: NodeTask, holder: Holder) -> str:
    run = task.run
    spec = (await run_flow(run)).nodes[task.node]
    flow: CompiledFlow = spec.prepared
    options = RunOptions(
        cache=FencedCache(holder, run.flow_id, run.pk), read_cache=not run.ignore_cache
    )
    sink = (
        item_sink(task, boundary_of(flow), holder) if task.item < spec.config.item_events else None
    )
    work = flow.run(task.inputs, sink, slots=holder.slots(run.pk, flow), options=options)
    try:
        result = result_json(await holder.hold(work))
    except Stopped:
        result = {"status": "cancelled", "error": "cancelled", "outputs": {}}
    await db(coordinator.item_finished, task.pk, holder.epoch, result, holder.take(), holder.stores)
    return result["status"]


def item_sink(task: NodeTask, boundary: frozenset[str], holder: Holder) -> EventSink:
    """An item's events as its map's ``node_item`` events, pending in the item's holder.

    The item's numbering is dropped (the run's log numbers them), its clock kept.
    """

    def sink(event: dict[str, Any]) -> None:
        fields = item_fields(event, task.item, boundary)
        if fields is not None:
            holder.sink(
                {"type": "node_item", "ts": event["ts"], "node": task.node,
                 "iteration": task.iteration, **fields}
            )  # fmt: skip

    return sink


class Stopped(Exception):
    """The work was cancelled because the run asked for it."""


# A node's closing event is written with its outcome (coordinator.finish), never before:
# written alone, a worker lost before finish would leave the node closed in the log, and
# its run elsewhere after the takeover would close it a second time.
CLOSING = frozenset({"node_finished", "node_failed"})


class Holder:
    """Holds a claimed task while its work runs: writes its events, and its loop's
    ``Renewals`` renews its lease with every other task's of the process.

    Events are written ``FLUSH_S`` after the first one of a batch is emitted (what comes
    meanwhile joins the batch); a node that has ended in that time leaves them all to its
    finish, which writes them with its outcome in one step. Nothing wakes an idle holder.
    """

    def __init__(self, task_id: int, epoch: int, run_id: int | None = None):
        self.task_id, self.epoch, self.run_id = task_id, epoch, run_id
        self.pending: list[dict[str, Any]] = []
        self.renewed = time.monotonic()
        # One write at a time: batches taken in order must commit in order.
        self.writing = asyncio.Lock()
        self.job: asyncio.Future[Any] | None = None
        self.stopping = False  # the run asked for the work to stop; it was cancelled
        self.fenced = False  # no longer held: the work was cancelled, nothing more is written
        self.timer: asyncio.TimerHandle | None = None
        self.writes: set[asyncio.Task[None]] = set()
        # Cache entries the work produced, stored with its outcome (FencedCache).
        self.stores: list[coordinator.CacheStore] = []

    def sink(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        if self.timer is None and self.job is not None and not self.job.done():
            self.timer = asyncio.get_running_loop().call_later(FLUSH_S, self._flush_due)

    def take(self, *, closing: bool = True) -> list[dict[str, Any]]:
        """The pending events; without `closing`, only those before a node's closing one."""
        cut = len(self.pending)
        if not closing:
            cut = next((i for i, e in enumerate(self.pending) if e["type"] in CLOSING), cut)
        batch, self.pending = self.pending[:cut], self.pending[cut:]
        return batch

    def slots(self, run_id: int, flow: CompiledFlow) -> Slots:
        services = flow.services
        scopes = scopes_for(run_id, services.max_concurrency, services.model_client.name)
        return Slots(self.task_id, self.epoch, scopes)

    async def hold(self, work: Awaitable[T]) -> T:
        """Await `work` while holding the task. Raises Fenced if it was taken over (the work
        is stopped first), Stopped if the run stopped it and it ended by cancellation."""
        job = self.job = asyncio.ensure_future(work)
        renewals = Renewals.of_this_loop()
        renewals.add(self)
        try:
            await asyncio.wait([job])
        finally:
            renewals.discard(self)
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            # A write in flight commits before the outcome's: its events come first.
            if self.writes:
                await asyncio.wait(list(self.writes))
        if self.fenced:
            raise Fenced(f"task {self.task_id} is no longer held in epoch {self.epoch}")
        if job.cancelled():
            raise Stopped
        return job.result()

    def stop(self) -> None:
        """The run wants the work stopped: cancel it (once)."""
        if not self.stopping and self.job is not None:
            self.stopping = True
            self.job.cancel()

    def fence(self) -> None:
        """The task is no longer held: stop the work; hold raises Fenced once it ends."""
        self.fenced = True
        if self.job is not None:
            self.job.cancel()

    def _flush_due(self) -> None:
        self.timer = None
        if any(e["type"] in CLOSING for e in self.pending):
            return  # the node has ended: its finish writes these with its outcome
        write = asyncio.ensure_future(self._flush())
        self.writes.add(write)
        write.add_done_callback(self.writes.discard)

    async def _flush(self) -> None:
        try:
            if await self.write():
                self.stop()
        except Fenced:
            self.fence()
        except Exception:
            log.exception("task %s: events not written", self.task_id)

    async def commit(self) -> None:
        """Write what is pending now (the engine's ``Emitter.commit``)."""
        if self.pending:
            try:
                stop = await self.write()
            except Fenced:
                self.fence()
                raise
            if stop:
                self.stop()

    async def write(self) -> bool:
        """Write the pending events (renewing the lease); True: the run wants the work
        stopped. Raises Fenced when the task is no longer held."""
        async with self.writing:
            batch = self.take(closing=False)
            if not batch:
                return False
            now = time.monotonic()
            try:
                stop = await db(
                    coordinator.node_events, self.task_id, self.epoch, batch, self.run_id
                )
            except DatabaseError:
                # The database is away for a moment: keep the events, try again later.
                # Should it stay away past the lease, the task is taken over and fenced.
                log.warning("task %s: events not written", self.task_id, exc_info=True)
                self.pending[:0] = batch
                if self.timer is None and self.job is not None and not self.job.done():
                    loop = asyncio.get_running_loop()
                    self.timer = loop.call_later(FLUSH_S, self._flush_due)
                return False
            self.renewed = now
            return stop


class Renewals:
    """The leases of every task held on one event loop (a worker has one), renewed
    together: one statement every NODE_HEARTBEAT_S for all of them, not one per task.
    A renewal that finds a task stopped or no longer held tells its holder at once."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Renewals]
    _by_loop = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.holders: set[Holder] = set()
        self.ticking: asyncio.Task[None] | None = None

    @classmethod
    def of_this_loop(cls) -> Renewals:
        loop = asyncio.get_running_loop()
        renewals = cls._by_loop.get(loop)
        if renewals is None:
            renewals = cls._by_loop[loop] = cls()
        return renewals

    def add(self, holder: Holder) -> None:
        self.holders.add(holder)
        if self.ticking is None or self.ticking.done():
            self.ticking = asyncio.get_running_loop().create_task(self.tick())

    def discard(self, holder: Holder) -> None:
        self.holders.discard(holder)

    async def tick(self) -> None:
        every = settings.NODE_HEARTBEAT_S
        while self.holders:
            await asyncio.sleep(every)
            try:
                await self.renew(every)
            except Exception:
                # Never the end of the ticking: every lease of the process depends on it.
                log.exception("leases not renewed; trying again")

    async def renew(self, every: float) -> None:
        now = time.monotonic()
        # Not those an event write renewed just now; none is left past 1.5 periods.
        due = [h for h in self.holders if now - h.renewed >= every / 2]
        if not due:
            return
        try:
            found = await db(coordinator.heartbeats, [(h.task_id, h.epoch) for h in due])
        except DatabaseError:
            # Should the database stay away past the lease, the tasks are taken over.
            log.warning("%s leases not renewed", len(due), exc_info=True)
            return
        for holder in due:
            if holder.task_id not in found:
                holder.fence()
            else:
                holder.renewed = now
                if found[holder.task_id]:
                    holder.stop()


class DistributedRunner(NodeRunner):
    """A NodeRunner whose map nodes send their items to other workers as tasks."""

    def __init__(self, flow: CompiledFlow, *, holder: Holder, **kwargs: Any):
        super().__init__(flow, **kwargs)
        self.holder = holder
        self.items = 0

    async def run_subflow(
        self, flow: CompiledFlow, inputs: Mapping[str, Any], sink: EventSink | None = None
    ) -> RunResult:
        if flow.services.batch is not None:
            # A map on the batch lane (its own ``latency: batch`` or the run's) runs its
            # items here, in its own task, as the in-process driver does: their model calls
            # only collect requests for the map's one Message Batch, or read its answers, so
            # tasks of their own would buy no parallelism, and only the map sees the lane.
            # A takeover runs the map again and pays nothing twice: before its batch was
            # sent, nothing was paid; once sent, the batch is recorded (batch_sent) and the
            # map parks on it again; once answered (node_resumed), it reads the answers.
            return await super().run_subflow(flow, inputs, sink)
        # The map node asks for its items in item order (see graphs.nodes.map), so the
        # n-th call is item n: a takeover after a crash finds the same items in place.
        index = self.items
        self.items += 1
        holder = self.holder
        if index == 0:
            # The map's start goes into the log before any item can write its own events
            # (the worker running an item writes them, not this one; see run_item).
            await holder.commit()
        task = await db(coordinator.item_task, holder.task_id, holder.epoch, index, dict(inputs))
        while True:
            results = await db(coordinator.item_results, [task.pk])
            if task.pk in results:
                return result_from_json(results[task.pk])
            await asyncio.sleep(ITEM_POLL_S)


class FencedCache(node_cache.DbNodeCache):
    """The node cache, storing only while the task is still held: its entries are stored
    with the task's outcome (coordinator.finish, item_finished), in the transaction that
    checks the task is still held, so a worker that wakes after its task was taken over
    writes nothing, the cache included."""

    def __init__(self, holder: Holder, flow_id: int, run_id: int):
        super().__init__(flow_id, run_id)
        self.holder = holder

    async def put(self, key: str, node_type: str, entry: CachedOutput) -> None:
        self.holder.stores.append((self.flow_id, self.run_id, key, node_type, entry))


def result_json(result: RunResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "outputs": result.outputs,
        "error": result.error,
        "failed_node": result.failed_node,
        "usage_by_model": {m: u.as_dict() for m, u in result.usage_by_model.items()},
    }


def result_from_json(data: Mapping[str, Any]) -> RunResult:
    by_model = {m: Usage.from_dict(u) for m, u in (data.get("usage_by_model") or {}).items()}
    total = sum(by_model.values(), Usage())
    return RunResult(
        data["status"],
        data.get("outputs") or {},
        total,
        data.get("error"),
        data.get("failed_node"),
        by_model,
    )
