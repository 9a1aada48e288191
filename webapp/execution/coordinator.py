"""The celery driver's coordinator: a run's schedule moved on one step at a time in PostgreSQL.

PostgreSQL is the single source of truth; Redis only carries signals (task messages to
workers, events to browsers), and losing one of those loses nothing. Every step holds
the run row's lock (``SELECT ... FOR UPDATE``) for one transaction, in which it:

- loads the run's ``graphs.schedule.RunState`` (``Run.state``) and applies the step:
  ``begin``, a node's outcome (``finish``), ``cancel``, a takeover (``reap``);
- records its events through the run's event log (webapp.runs.eventlog.Appender), which
  numbers them from ``Run.last_seq``, so the log has no gaps and commits in seq order
  whichever worker wrote which event, and holds them to the run's byte limits: a step
  whose events would take the log past one closes the log and stops the run, failed, as a
  cancel would stop it;
- creates a ``NodeTask`` for each node the step made ready;
- saves the state.

After the commit, a step's ``Dispatch`` hands the new tasks to the broker, and the event
log broadcasts the events; both are best effort (``sweep`` re-sends what did not reach
the broker, browsers refill from the database).

Leases and fencing. A worker ``claim``s a queued task for the task's current
``epoch`` and holds it by renewing ``lease_until`` (``heartbeats``, ``node_events``).
Every write a worker makes checks that the task is still running in its epoch;
when a lease has run out, ``reap`` raises the epoch and queues the task again, so
a worker that was frozen and wakes up is refused (``Fenced``) and writes nothing.
A Celery message delivered twice finds its task no longer queued in that epoch:
the second ``claim`` gets None and the delivery is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Model, Q
from django.utils import timezone

from graphs.cache import CachedOutput
from graphs.errors import FlowInvalid
from graphs.schedule import Outcome, Ready, RunState, Schedule, StepRefused, StepResult
from webapp.celery import app
from webapp.execution import cache as node_cache
from webapp.execution.plans import cached_run, compiled_run, options_for
from webapp.flows.models import FlowVersion
from webapp.runs import approvals, batches, budget_raise, services
from webapp.runs.eventlog import ROW, Appender
from webapp.runs.models import NodeTask, Run, Slot, UserStorage


def _table(model: type[Model]) -> str:
    """The model's table name, quoted, for raw SQL."""
    return connection.ops.quote_name(model._meta.db_table)


log = logging.getLogger(__name__)

# The workers' tasks (webapp.execution.tasks), sent by name: the tasks call this module.
# Sent with ignore_result=True, as the tasks declare: a name carries none of its task's
# options, and a send expecting a result subscribes to the result backend first (retrying
# for a long while when Redis is away, where a send must fail at once).
RUN_NODE = "webapp.execution.tasks.run_node"
BEGIN_RUN = "webapp.execution.tasks.begin_run"

# A run queued this long and never handed to the broker (it was down) is begun by the
# sweeper itself.
BEGIN_AFTER_S = 2.0


class Fenced(Exception):
    """The task is no longer this worker's: its lease was taken over, or the run ended."""


@dataclass
class Dispatch:
    """What a committed step leaves to do: tasks to send to the broker. (`events`: what the
    step stored, which the event log broadcasts once committed.)

    `here`: the tasks of instant nodes (``NodeType.instant``: input, output, merge), which
    a worker that made them ready runs itself rather than through the broker (see
    ``send``). They are queued rows like any other, so one that the worker does not get
    to claim (it died after the commit) is sent by the sweeper, as an unsent task is.
    """

    run_id: int
    tasks: list[tuple[int, int]] = field(default_factory=list)  # (task id, epoch)
    events: list[dict[str, Any]] = field(default_factory=list)
    here: list[tuple[int, int]] = field(default_factory=list)

    def send(self, *, run_here: bool = False) -> list[tuple[int, int]]:
        """Hand the tasks to the broker. `run_here`: the caller runs the instant nodes'
        tasks itself (worker.run_here); they are not sent but returned."""
        tasks = self.tasks if run_here else [*self.tasks, *self.here]
        if tasks:
            send_tasks(tasks)
        return self.here if run_here else []


def send_tasks(tasks: Iterable[tuple[int, int]]) -> int:
    """Hand tasks to the broker; those it cannot take stay unsent for the sweeper."""
    sent = []
    for task_id, epoch in tasks:
        try:
            app.send_task(RUN_NODE, (task_id, epoch), retry=False, ignore_result=True)
        except Exception:  # kombu's OperationalError, redis' ConnectionError, OSError...
            log.warning("task %s not sent: the broker is unreachable", task_id)
            break  # the rest would fail the same way; the sweeper sends them later
        sent.append(task_id)
    if sent:
        # A plain statement: every dispatch of every step pays it.
        with connection.cursor() as cursor:
            cursor.execute(ENQUEUED, [timezone.now(), sent])
    return len(sent)


ENQUEUED = f"UPDATE {_table(NodeTask)} SET enqueued_at = %s WHERE id = ANY(%s)"  # noqa: S608


# Steps --------------------------------------------------------------------------------


# A step's run row, locked, with its user's stored bytes (limits.with_user_bytes), in one
# plain statement: every step of every run pays it, and a queryset built for it cost more
# CPU than the query. FOR NO KEY UPDATE: steps still take turns, but a row that points at
# the run (a map item's task, a cache entry) can be inserted by a transaction holding a
# task row that the step waits for; FOR UPDATE would deadlock with its FK check. What a
# step does not read (an events-only step's state, the flow version, loaded only on a
# compiled-flow cache miss: see compile_first) is loaded if ever asked for.
# Tables are named as the models name them, quoted: only those names are formatted in.
LOCK_RUN = f"""
    SELECT {{columns}}, (
        SELECT s.stored_bytes FROM {_table(UserStorage)} s WHERE s.user_id = r.started_by_id
    ) AS user_bytes
    FROM {_table(Run)} r WHERE r.id = %s FOR NO KEY UPDATE OF r
"""  # noqa: S608
_ROW_COLUMNS = ", ".join(f"r.{Run._meta.get_field(name).column}" for name in ("id", *ROW))


# A step's tasks for the visits it made ready, in one plain statement: a new queued row
# for each, or, for a visit whose row exists (one task per node visit), that row queued
# again in a new epoch, its last holder's fields cleared (``started_at`` stays: it tells
# stop_tasks the node reported its start). Conflicting rows are locked by the upsert, as
# a SELECT FOR UPDATE would lock them; the run row's lock already serialises steps. Every
# step that makes a node ready pays this, and the querysets it replaced (a select for
# update of an OR of visits, a bulk update, a bulk create) cost more worker CPU than the
# query.
TASKS_FOR = f"""
    INSERT INTO {_table(NodeTask)} (run_id, node, iteration, item, inputs, status, epoch, worker,
                               created, cancel)
    SELECT %(run)s, u.node, u.iteration, %(item)s, u.inputs::jsonb, %(queued)s, 1, '',
           %(now)s, false
    FROM unnest(%(nodes)s::text[], %(iterations)s::integer[], %(inputs)s::text[])
         AS u(node, iteration, inputs)
    ON CONFLICT ON CONSTRAINT one_task_per_node_visit DO UPDATE SET
        inputs = EXCLUDED.inputs, epoch = {_table(NodeTask)}.epoch + 1, status = EXCLUDED.status,
        worker = '', result = NULL, cancel = false, enqueued_at = NULL, lease_until = NULL,
        finished_at = NULL
    RETURNING id, epoch, node, iteration
"""  # noqa: S608


class Step:
    """One coordinator transaction on a locked run: records events, makes tasks, saves."""

    def __init__(self, run: Run):
        self.run = run
        self.dispatch = Dispatch(run.pk)
        self.log = Appender(run)
        self.schedule: Schedule | None = None
        self.stopping = False
        self.parked = False  # save stored the run waiting

    @classmethod
    def locked(cls, run_id: int, *, events_only: bool = False) -> Step:
        """The step on run `run_id`, its row locked. `events_only`: the step only records
        events, so the row is read without its state and flow (loaded if ever needed)."""
        columns = _ROW_COLUMNS if events_only else "r.*"
        found = list(Run.objects.raw(LOCK_RUN.format(columns=columns), [run_id]))
        if not found:
            raise Run.DoesNotExist(f"run {run_id} does not exist")
        return cls(found[0])

    @property
    def limited(self) -> bool:
        """A limit has stopped the run: its running nodes should stop."""
        return bool(self.log.stopped)

    def load(self) -> Schedule:
        # Compiled already (see compile_first): no compiling while the lock is held.
        flow = compiled_run(self.run)
        self.schedule = Schedule(flow.plan, RunState.from_json(self.run.state))
        return self.schedule

    def record(self, events: Iterable[dict[str, Any]]) -> None:
        """Record events in the run's log (stored by ``save``)."""
        self.log.record(events)

    def record_step(self, step: StepResult) -> None:
        self.record({"type": type_, **fields} for type_, fields in step.events)

    def apply(self, step: StepResult) -> None:
        """Record a schedule step's events and act on it: start, stop, finish."""
        self.record_step(step)
        if step.stopped:
            self.stop_tasks()
        if step.ready:
            nodes = compiled_run(self.run).nodes
            for ready, task in zip(step.ready, self.tasks_for(step.ready), strict=True):
                instant = nodes[ready.node].type.instant
                (self.dispatch.here if instant else self.dispatch.tasks).append(task)

    def tasks_for(self, ready: list[Ready]) -> list[tuple[int, int]]:
        """A queued task for each visit made ready, in the order of `ready`: a new row, or,
        for a visit that ran already and is ready again (it parked to be run again: an
        agent's tool approval, a raised budget), its own row queued in a new epoch (one
        task per node visit). One plain statement (TASKS_FOR)."""
        params = {
            "run": self.run.pk,
            "nodes": [r.node for r in ready],
            "iterations": [r.iteration for r in ready],
            "inputs": [json.dumps(r.inputs) for r in ready],
            "item": NodeTask.NODE,
            "queued": NodeTask.Status.QUEUED.value,
            "now": timezone.now(),
        }
        with connection.cursor() as cursor:
            cursor.execute(TASKS_FOR, params)
            made = {(node, iteration): (pk, epoch) for pk, epoch, node, iteration in cursor}
        return [made[(r.node, r.iteration)] for r in ready]

    def stop_tasks(self) -> None:
        """The run is ending: running tasks stop at their next heartbeat; queued ones now."""
        tasks = NodeTask.objects.filter(run=self.run).exclude(status=NodeTask.Status.DONE)
        tasks.filter(status=NodeTask.Status.RUNNING).update(cancel=True)
        now = timezone.now()
        queued = list(tasks.filter(status=NodeTask.Status.QUEUED).order_by("pk"))
        for task in queued:
            task.status, task.cancel, task.finished_at = NodeTask.Status.DONE, True, now
            if task.item != NodeTask.NODE:
                task.result = {"status": "cancelled", "error": "cancelled"}
        NodeTask.objects.bulk_update(queued, ["status", "cancel", "finished_at", "result"])
        assert self.schedule is not None
        for task in queued:
            if task.item == NodeTask.NODE:
                # One that ran before a takeover has reported its start: close it as failed.
                began = task.epoch > 1 or task.started_at is not None
                self.apply(self.schedule.node_cancelled(task.node, task.iteration, started=began))

    def save(self) -> Dispatch:
        if self.log.tripped and not self.stopping:
            # Here, at the step's end, so that the tasks it made are there to stop too.
            self.stopping = True
            schedule = self.schedule or self.load()
            self.apply(schedule.stop("failed", self.log.stopped))
        fields: dict[str, Any] = {}
        if self.schedule is not None:
            fields["state"] = self.schedule.state.to_json()
            if self.schedule.state.is_waiting:
                # Every running node waits for a person: parked, holding no task (the
                # waiting node's was closed with its outcome), lease or slot until an
                # answer or a timeout resumes it (webapp.execution.parking).
                fields.update(approvals.parked_fields(fields["state"]))
                self.parked = True
            elif self.run.batch_poll_at is not None:
                # No longer parked on a batch (cancelled while it waited): nothing to poll,
                # as the in-process driver's cancel leaves it (approvals.cancel_waiting).
                fields["batch_poll_at"] = None
        self.dispatch.events = self.log.save(**fields)
        return self.dispatch


VERSION = f"SELECT * FROM {_table(FlowVersion)} WHERE id = %s"  # noqa: S608


def compile_first(run_id: int) -> None:
    """Compile the run's flow (once per process) before its row is locked, so the lock is
    never held through a compile, nor through the first import of a model SDK.

    Plain statements (a run's row without its state, then on a cache miss its flow
    version): every run's begin pays this, and a queryset with a join cost more worker CPU
    than the queries."""
    found = list(Run.objects.raw(CLAIMED_RUN.format(columns=_CLAIMED_COLUMNS), [run_id]))
    if not found:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    run = found[0]
    if cached_run(run) is not None:
        return
    version = FlowVersion.objects.raw(VERSION, [run.flow_version_id])
    run.flow_version = next(iter(version))
    with contextlib.suppress(ValueError):  # begin reports it
        compiled_run(run)


def begin(run_id: int) -> Dispatch | None:
    """Begin a queued run: ``run_started``, and tasks for its first nodes.

    A no-op (None) when the run has begun already or was cancelled while queued.
    """
    compile_first(run_id)
    with transaction.atomic():
        step = Step.locked(run_id)
        run = step.run
        if run.status != Run.Status.QUEUED or run.state is not None:
            return None
        try:
            flow = compiled_run(run)
            options = options_for(run)
            inputs = flow.resolve_inputs(run.inputs)
            if problems := flow.option_problems(options):
                raise FlowInvalid(problems)
        except ValueError as exc:  # FlowInvalid, or a re-run that cannot be planned
            services.fail(run_id, str(exc))
            return None
        step.schedule = Schedule(flow.plan)
        step.apply(step.schedule.begin(inputs, options))
        return step.save()


def cancel(run_id: int) -> bool:
    """Stop a run: its queued nodes at once, its running ones at their next heartbeat."""
    compile_first(run_id)
    with transaction.atomic():
        step = Step.locked(run_id)
        run = step.run
        if run.finished:
            return False
        if run.state is None:  # still queued: no worker has begun it
            services.cancel_queued(run_id)
            return True
        parked = run.state
        step.apply(step.load().stop("cancelled"))
        dispatch = step.save()
    dispatch.send()
    batches.cancel(run, parked)  # the message batches it waited on, if any
    return True


# A worker's side of a task ------------------------------------------------------------


# A claim takes the task and reads it back in one plain statement, then reads its run
# without its state (the worker never reads it, and it grows with the run): every task
# of every run pays these, and building querysets for them cost more worker CPU than the
# queries. The flow version is loaded only on a compiled-flow cache miss (compiled_run).
CLAIM = f"""
    UPDATE {_table(NodeTask)} SET status = %(running)s, worker = %(worker)s, started_at = %(now)s,
    lease_until = %(lease)s
    WHERE id = %(id)s AND epoch = %(epoch)s AND status = %(queued)s AND NOT cancel
    RETURNING *
"""  # noqa: S608
CLAIMED_RUN = f"SELECT {{columns}} FROM {_table(Run)} WHERE id = %s"  # noqa: S608
_CLAIMED_COLUMNS = ", ".join(f.column for f in Run._meta.concrete_fields if f.name != "state")


def claim(task_id: int, epoch: int, worker: str) -> NodeTask | None:
    """Take a queued task for `epoch`; None when it is not there to take (a duplicate
    delivery, a stale epoch, a task the run's end has closed)."""
    now = timezone.now()
    params = {
        "id": task_id,
        "epoch": epoch,
        "worker": worker,
        "now": now,
        "lease": now + lease(),
        "running": NodeTask.Status.RUNNING.value,
        "queued": NodeTask.Status.QUEUED.value,
    }
    found = list(NodeTask.objects.raw(CLAIM, params))
    if not found:
        return None
    task = found[0]
    task.run = next(
        iter(Run.objects.raw(CLAIMED_RUN.format(columns=_CLAIMED_COLUMNS), [task.run_id]))
    )
    return task


RENEW_MANY = f"""
    UPDATE {_table(NodeTask)} t SET lease_until = %s
    FROM unnest(%s::bigint[], %s::integer[]) AS u(id, epoch)
    WHERE t.id = u.id AND t.epoch = u.epoch AND t.status = %s RETURNING t.id, t.cancel
"""  # noqa: S608


def heartbeats(held_tasks: list[tuple[int, int]]) -> dict[int, bool]:
    """Renew the leases of many (task, epoch) at once, in one statement: by task, True when
    the run wants it stopped. A task missing from the answer is no longer held (fenced)."""
    if not held_tasks:
        return {}
    ids, epochs = zip(*held_tasks, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            RENEW_MANY,
            [timezone.now() + lease(), list(ids), list(epochs), NodeTask.Status.RUNNING.value],
        )
        return dict(cursor.fetchall())


# Renews the lease of a task held in its epoch (locking its row, as held() does) and
# returns what node_events needs of it; no row: no longer held.
HOLD = f"""
    UPDATE {_table(NodeTask)} SET lease_until = %s
    WHERE id = %s AND epoch = %s AND status = %s
    RETURNING cancel, item, run_id, node, iteration
"""  # noqa: S608


def node_events(
    task_id: int, epoch: int, events: list[dict[str, Any]], run_id: int | None = None
) -> bool:
    """Record events a running node emitted (renewing its lease); True to stop it.

    `run_id`: the task's run, if the caller knows it (one query fewer)."""
    if run_id is None:
        run_id = NodeTask.objects.values_list("run_id", flat=True).get(pk=task_id)
    with transaction.atomic():
        step = Step.locked(run_id, events_only=True)
        with connection.cursor() as cursor:
            running = NodeTask.Status.RUNNING.value
            cursor.execute(HOLD, [timezone.now() + lease(), task_id, epoch, running])
            row = cursor.fetchone()
        if row is None:
            raise Fenced(f"task {task_id} is no longer held in epoch {epoch}")
        cancel, item, task_run, node, iteration = row
        if task_run != run_id:
            raise ValueError(f"task {task_id} is not of run {run_id}")
        task = NodeTask(pk=task_id, run_id=run_id, node=node, iteration=iteration, item=item)
        if item == NodeTask.NODE or map_running(task):
            step.record(events)
        step.save()
    return cancel or step.limited


# A cache entry a task's work produced, stored with its outcome (webapp.execution.worker's
# FencedCache): flow id, run id, key, node type, entry.
CacheStore = tuple[int, int, str, str, CachedOutput]


def store_entries(stores: Iterable[CacheStore]) -> None:
    """Store cache entries inside a task's closing transaction (after held()). A cache is
    an optimisation: an entry that cannot be stored is logged and dropped, the rest stand."""
    for flow_id, run_id, key, node_type, entry in stores:
        try:
            with transaction.atomic():  # a savepoint: a failed store spoils nothing else
                node_cache.store(flow_id, run_id, key, node_type, entry)
        except DatabaseError:
            log.exception("node cache store failed; the result is not cached")


def finish(
    task_id: int,
    epoch: int,
    outcome: Outcome,
    events: list[dict[str, Any]],
    run: Run | None = None,
    stores: Iterable[CacheStore] = (),
    run_here: bool = False,
) -> list[tuple[int, int]]:
    """A node's last events and how it ended, and the cache entries it produced: the
    schedule's next step. `run`: the task's run, its flow compiled in this process (the
    node ran from it), so nothing is compiled or looked up before the lock. `run_here`:
    the caller runs the instant nodes the step made ready (see Dispatch.send), returned."""
    if run is None:
        run_id = NodeTask.objects.values_list("run_id", flat=True).get(pk=task_id)
        compile_first(run_id)
    else:
        run_id = run.pk
        with contextlib.suppress(ValueError):
            compiled_run(run)  # cached for the run: no compiling under the lock
    with transaction.atomic():
        step = Step.locked(run_id)
        task = close_held(task_id, epoch)
        store_entries(stores)
        step.record(events)
        schedule = step.load()
        try:
            next_step = schedule.apply(Ready(task.node, task.iteration, task.inputs), outcome)
        except StepRefused:
            log.warning("task %s: result refused by the schedule", task_id, exc_info=True)
            next_step = None
        if next_step is not None:
            step.apply(next_step)
        dispatch = step.save()
    here = dispatch.send(run_here=run_here)
    if step.parked:
        # Paused for its budget, it may have been raised while the run still ran, which
        # had nothing to resume then (a no-op for any other wait).
        budget_raise.resume_if_raised(run_id)
    return here


def item_task(parent_id: int, epoch: int, index: int, inputs: dict[str, Any]) -> NodeTask:
    """The task of item `index` of a map node, made (and sent) if it has to be.

    A map node taken over after a crash finds the items that finished before it: their
    results stand, and only the others run again.
    """
    with transaction.atomic():
        parent = held(parent_id, epoch)
        task, made = NodeTask.objects.get_or_create(
            run_id=parent.run_id,
            node=parent.node,
            iteration=parent.iteration,
            item=index,
            defaults={"inputs": inputs},
        )
        if not made and task.inputs != inputs:
            # Same place, other value: an edited list on a loop's next pass. Run afresh.
            NodeTask.objects.filter(pk=task.pk).update(
                inputs=inputs,
                status=NodeTask.Status.QUEUED,
                epoch=task.epoch + 1,
                result=None,
                cancel=False,
                enqueued_at=None,
            )
            task.refresh_from_db()
            made = True
    if made:
        send_tasks([(task.pk, task.epoch)])
    return task


def item_results(task_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The results of those map item tasks that have finished."""
    done = NodeTask.objects.filter(pk__in=task_ids, status=NodeTask.Status.DONE)
    return dict(done.values_list("pk", "result"))


def item_finished(
    task_id: int,
    epoch: int,
    result: dict[str, Any],
    events: list[dict[str, Any]] | None = None,
    stores: Iterable[CacheStore] = (),
) -> None:
    """A map item's result, with its last events (node_item events of its map) and the
    cache entries its work produced."""
    if not events:
        with transaction.atomic():
            task = held(task_id, epoch)
            store_entries(stores)
            task.result = result
            _close(task)
        return
    run_id = NodeTask.objects.values_list("run_id", flat=True).get(pk=task_id)
    with transaction.atomic():
        # The run's row first, then the task's, as node_events takes them.
        step = Step.locked(run_id, events_only=True)
        task = held(task_id, epoch)
        store_entries(stores)
        if map_running(task):
            step.record(events)
        task.result = result
        _close(task)
        step.save()


def map_running(item: NodeTask) -> bool:
    """Whether the map an item task belongs to is running: its items' events belong in the
    map's visit, so once the map has ended (an item failed, the run was cancelled) the last
    words of items it stopped are not written. Asked under the run's lock, which the map's
    own finish takes too."""
    return NodeTask.objects.filter(
        run_id=item.run_id,
        node=item.node,
        iteration=item.iteration,
        item=NodeTask.NODE,
        status=NodeTask.Status.RUNNING,
    ).exists()


def stop_items(parent_id: int) -> None:
    """A map node that stopped early: its items still queued or running stop too."""
    parent = NodeTask.objects.get(pk=parent_id)
    items = NodeTask.objects.filter(
        run_id=parent.run_id, node=parent.node, iteration=parent.iteration, item__gte=0
    )
    items.filter(status=NodeTask.Status.RUNNING).update(cancel=True)
    items.filter(status=NodeTask.Status.QUEUED).update(
        status=NodeTask.Status.DONE,
        cancel=True,
        finished_at=timezone.now(),
        result={"status": "cancelled", "error": "cancelled"},
    )


# held() and _close() in one statement, for a node's finish: the task, if still running
# in its epoch, is closed (its row locked until the commit, as held() locks it) and its
# slot rows dropped; no row: no longer held. Its caller's transaction undoes it all when
# the step fails, a Fenced included.
CLOSE_HELD = f"""
    WITH slots AS (DELETE FROM {_table(Slot)} WHERE task_id = %(id)s)
    UPDATE {_table(NodeTask)} SET status = %(done)s, finished_at = %(now)s, lease_until = NULL
    WHERE id = %(id)s AND epoch = %(epoch)s AND status = %(running)s
    RETURNING *
"""  # noqa: S608


def close_held(task_id: int, epoch: int) -> NodeTask:
    """Close a task still held in `epoch` (see CLOSE_HELD); raises Fenced if it is not."""
    params = {
        "id": task_id,
        "epoch": epoch,
        "now": timezone.now(),
        "done": NodeTask.Status.DONE.value,
        "running": NodeTask.Status.RUNNING.value,
    }
    found = list(NodeTask.objects.raw(CLOSE_HELD, params))
    if not found:
        raise Fenced(f"task {task_id} is no longer held in epoch {epoch}")
    return found[0]


def held(task_id: int, epoch: int) -> NodeTask:
    task = NodeTask.objects.select_for_update().get(pk=task_id)
    if task.epoch != epoch or task.status != NodeTask.Status.RUNNING:
        raise Fenced(f"task {task_id} is no longer held in epoch {epoch}")
    return task


def _close(task: NodeTask) -> None:
    task.status, task.finished_at, task.lease_until = NodeTask.Status.DONE, timezone.now(), None
    task.save(update_fields=["status", "finished_at", "lease_until", "result"])
    Slot.objects.filter(task=task).delete()


# The sweeper --------------------------------------------------------------------------


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.NODE_LEASE_S)


def sweep() -> dict[str, int]:
    """Take over lapsed leases, send what never reached the broker, begin stranded runs.

    Every worker runs this every second or so (webapp.execution.sweeper); ``manage.py
    sweep_runs`` runs it once. Safe to run anywhere, any number of times at once.
    """
    now = timezone.now()
    counts = {"taken_over": 0, "sent": 0, "begun": 0}
    lapsed = NodeTask.objects.filter(status=NodeTask.Status.RUNNING, lease_until__lt=now)
    for task_id, run_id in lapsed.values_list("pk", "run_id")[:100]:
        counts["taken_over"] += take_over(task_id, run_id)
    unsent = NodeTask.objects.filter(status=NodeTask.Status.QUEUED).filter(
        Q(enqueued_at=None, created__lt=now - dt.timedelta(seconds=BEGIN_AFTER_S))
        | Q(enqueued_at__lt=now - dt.timedelta(seconds=settings.NODE_REDISPATCH_S))
    )
    counts["sent"] = send_tasks(unsent.values_list("pk", "epoch")[:500])
    stranded = Run.objects.filter(
        status=Run.Status.QUEUED,
        state__isnull=True,  # SQL NULL: state=None would match the JSON value null
    ).filter(
        # Never handed to the broker, or handed over long ago and still not begun. Not
        # every queued run: under a burst, begin messages wait their turn in the queue.
        Q(enqueued_at=None, created__lt=now - dt.timedelta(seconds=BEGIN_AFTER_S))
        | Q(enqueued_at__lt=now - dt.timedelta(seconds=settings.NODE_REDISPATCH_S))
    )
    for run_id in stranded.values_list("pk", flat=True)[:100]:
        dispatch = begin(run_id)
        if dispatch is not None:
            dispatch.send()
            counts["begun"] += 1
    return counts


def take_over(task_id: int, run_id: int) -> int:
    """Queue a task whose lease ran out again, in a new epoch; 1 if it was taken over."""
    compile_first(run_id)
    with transaction.atomic():
        step = Step.locked(run_id)
        task = NodeTask.objects.select_for_update().get(pk=task_id)
        if task.status != NodeTask.Status.RUNNING or task.lease_until >= timezone.now():
            return 0  # finished or renewed meanwhile, or taken over by another sweeper
        gone = task.worker
        task.epoch += 1
        task.status, task.worker, task.lease_until, task.enqueued_at = (
            NodeTask.Status.QUEUED,
            "",
            None,
            None,
        )
        task.save(update_fields=["epoch", "status", "worker", "lease_until", "enqueued_at"])
        Slot.objects.filter(task=task).delete()
        if task.item == NodeTask.NODE:
            step.record(
                [
                    {
                        "type": "node_retrying",
                        "node": task.node,
                        "iteration": task.iteration,
                        "attempt": task.epoch - 1,
                        "error": f"worker {gone} stopped answering; running it again elsewhere",
                        "delay_s": 0,
                        "takeover": True,
                    }
                ]
            )
            if task.cancel:  # the run ended meanwhile: close the node instead
                schedule = step.load()
                task.status, task.finished_at = NodeTask.Status.DONE, timezone.now()
                task.save(update_fields=["status", "finished_at"])
                step.apply(schedule.node_cancelled(task.node, task.iteration, started=True))
            else:
                step.dispatch.tasks.append((task.pk, task.epoch))
        elif task.cancel:
            task.status, task.result = NodeTask.Status.DONE, {"status": "cancelled"}
            task.save(update_fields=["status", "result"])
        else:
            step.dispatch.tasks.append((task.pk, task.epoch))
        dispatch = step.save()
    dispatch.send()
    return 1
