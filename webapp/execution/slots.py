"""Concurrency caps that hold across every Celery worker, kept in PostgreSQL.

On the in-process driver an ``asyncio.Semaphore`` caps a run's model calls; once nodes of
one run, and the runs of many users, execute on any number of worker processes, a cap has
to live where all of them see it. Each held slot is a ``Slot`` row naming its scope
("run:<id>", "model:<client>"), the ``NodeTask`` that holds it and the task's epoch.

Liveness is bound to the task's lease, not to the row's existence. A slot is *live* only
while its task is running, in the epoch that took the slot, with a lease that has not run
out (``task.lease_until > now``). So a worker killed (or frozen) while holding slots gives
them back when its lease runs out, without anyone having to release them; a task that is
done, deleted, or taken over by another worker (its epoch bumped) holds none. Dead rows
are only garbage: every ``acquire`` first deletes the dead rows of the scopes it takes,
and nothing ever counts them. No slot can leak for longer than one lease.

Taking slots is one short transaction, sent in one round trip (``ACQUIRE``): lock the
scopes (transaction-scoped advisory locks, always in one global order so two acquirers
never deadlock), drop the dead rows, count the live ones, and insert one row per scope
only when every scope is below its limit, so a task holds a slot in all of its scopes or
in none (a model slot is never parked while waiting for a run slot). ``Slots`` wraps this
as the async context manager the engine's ``NodeRunner`` uses in place of its
``asyncio.Semaphore``. A waiter does not poll: every release notifies (PostgreSQL
``NOTIFY`` on ``CHANNEL``, the scopes it freed), one thread per process listens
(``Listener``) and wakes the oldest waiter of the process in each freed scope. A slow poll
stays as the fallback for what sends no notification: a lease that ran out, a listener
that lost its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from webapp.execution import dbthreads
from webapp.runs.models import NodeTask

log = logging.getLogger(__name__)
T = TypeVar("T")

Scopes = Sequence[tuple[str, int | None]]

# Slot calls get threads (and database connections) of their own, like the node cache's:
# Django refuses database calls on an event loop's thread, and on asgiref's shared thread
# they would queue behind everything else. A few threads, so that one acquire waiting on a
# scope's lock does not hold up a release that would end the wait.
_db = ThreadPoolExecutor(max_workers=4, thread_name_prefix="slots")
# Releases get threads of their own: queued behind acquires, a finished call would keep
# its slot while others wait for it (bench/scaleout.py measured a 0.3 s call holding its
# slot for 1.1 s at 4 workers).
_release_db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slots-release")

# The statements name the tables of Slot and NodeTask ("runs_slot", "runs_nodetask").
# A slot s is live while its task t has: t.status = 'running' AND t.epoch = s.epoch AND
# t.lease_until > now, now being the clock when the scopes' locks are held (not when the
# query arrived: an acquire that waited on a lock must not count a slot whose lease ran
# out meanwhile).
#
# ACQUIRE is one round trip: two statements in one query string, which PostgreSQL runs as
# one implicit transaction (psycopg's client-side binding, Django's default, sends them
# together). The first waits for the scopes' locks (transaction-scoped advisory locks, in
# key order: two acquirers never deadlock); the second, with a snapshot taken once they
# are held, drops the scopes' dead rows, counts the live ones and inserts one row per
# scope only when every scope has room. The locks go with the implicit commit at the
# query's end, so they are held for one statement, never across a client's round trip.
ACQUIRE = """
    SELECT pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT k FROM unnest(%(keys)s::bigint[]) AS k ORDER BY k
    ) AS keys;
    WITH now AS MATERIALIZED (SELECT clock_timestamp() AS ts), dead AS (
        DELETE FROM runs_slot s USING now WHERE s.scope = ANY(%(names)s) AND NOT EXISTS (
            SELECT 1 FROM runs_nodetask t
            WHERE t.id = s.task_id AND t.status = %(running)s AND t.epoch = s.epoch
            AND t.lease_until > now.ts
        )
    ), live AS MATERIALIZED (
        SELECT u.scope, u.cap, (
            SELECT count(*) FROM runs_slot s JOIN runs_nodetask t
            ON t.id = s.task_id AND t.status = %(running)s AND t.epoch = s.epoch
            AND t.lease_until > now.ts
            WHERE s.scope = u.scope
        ) AS held
        FROM unnest(%(names)s::text[], %(caps)s::integer[]) AS u(scope, cap) CROSS JOIN now
    ), taken AS (
        INSERT INTO runs_slot (scope, task_id, epoch, acquired)
        SELECT live.scope, t.id, t.epoch, now.ts
        FROM live CROSS JOIN now CROSS JOIN runs_nodetask t
        WHERE t.id = %(task)s AND t.epoch = %(epoch)s AND t.status = %(running)s
        AND t.lease_until > now.ts AND NOT EXISTS (SELECT 1 FROM live WHERE held >= cap)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken), bool_and(held + 1 < cap) FROM live
"""
# Deletes, and notifies the listeners of every process once per freed scope (delivered at
# commit; a release runs in autocommit). The count forces the notifying CTE to run.
RELEASE = """
    WITH gone AS (
        DELETE FROM runs_slot WHERE id IN (
            SELECT one.id FROM unnest(%s::text[]) AS u(scope) CROSS JOIN LATERAL (
                SELECT s.id FROM runs_slot s
                WHERE s.task_id = %s AND s.epoch = %s AND s.scope = u.scope
                ORDER BY s.id LIMIT 1 FOR UPDATE SKIP LOCKED
            ) AS one
        ) RETURNING scope
    ), told AS (
        SELECT pg_notify(%s, scope) FROM (SELECT DISTINCT scope FROM gone) AS d
    )
    SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM told)
"""
# The channel of release notifications; the payload is a scope's name.
CHANNEL = "switchyard_slots"
HELD = """
    SELECT count(*) FROM runs_slot s JOIN runs_nodetask t
    ON t.id = s.task_id AND t.status = %s AND t.epoch = s.epoch
    AND t.lease_until > statement_timestamp()
    WHERE s.scope = %s
"""
_RUNNING = NodeTask.Status.RUNNING.value


def limited(scopes: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """The scopes that cap anything, by name: a limit of None or <= 0 means unlimited.

    A name given twice keeps its smaller limit (it is one scope, and one slot in it).
    """
    limits: dict[str, int] = {}
    for name, limit in scopes:
        if limit is not None and limit > 0:
            limits[name] = min(limit, limits.get(name, limit))
    return limits


def lock_key(scope: str) -> int:
    """The scope's advisory lock key: a stable signed 64-bit hash of its name.

    Acquirers lock their scopes in the order of these keys (not of the names), so even
    two names whose keys collide are locked in the same order by everyone: no deadlock.
    """
    digest = hashlib.blake2b(scope.encode(), digest_size=8, person=b"switchyard-slot").digest()
    return int.from_bytes(digest, "big", signed=True)


def acquire(task_id: int, epoch: int, scopes: Scopes) -> bool:
    """Take one slot in every scope for ``task_id`` in ``epoch``, or none; True if taken.

    Unlimited scopes are skipped (with none left there is nothing to take: True).
    A task that is not running in ``epoch`` under a lease gets nothing: its slot would be
    dead the moment it was written, and a worker fenced out must not exceed the cap.
    """
    return _acquire(task_id, epoch, scopes) in (TAKEN, TAKEN_ROOM_LEFT)


# What an acquire found: TAKEN (with room for more: TAKEN_ROOM_LEFT), or no room (FULL).
TAKEN, TAKEN_ROOM_LEFT, FULL = "taken", "taken, room left", "full"


def _acquire(task_id: int, epoch: int, scopes: Scopes) -> str:
    limits = limited(scopes)
    if not limits:
        return TAKEN
    names = sorted(limits)
    params = {
        "keys": [lock_key(name) for name in names],
        "names": names,
        "caps": [limits[name] for name in names],
        "task": task_id,
        "epoch": epoch,
        "running": _RUNNING,
    }
    with connection.cursor() as cursor:
        cursor.execute(ACQUIRE, params)
        cursor.nextset()  # the locks' statement's rows are of no interest
        taken, room = cursor.fetchone()
    if taken != len(names):
        # A scope was full, or the task is not running in that epoch (it gets nothing,
        # ever: its slot would be dead the moment it was written).
        return FULL
    return TAKEN_ROOM_LEFT if room else TAKEN


def release(task_id: int, epoch: int, scopes: Scopes) -> int:
    """Give back one slot of ``task_id`` in ``epoch`` per scope; the number of rows deleted.

    A task's rows in a scope are interchangeable (a map item's subflow may hold two at
    once), so any one of them goes. SKIP LOCKED keeps two releases of the same task
    racing on different threads from both picking the same row, and one of them deleting
    nothing, which would leave the task holding a slot it no longer uses.
    """
    names = sorted(limited(scopes))
    if not names:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(RELEASE, [names, task_id, epoch, CHANNEL])
        return cursor.fetchone()[0]


def held(scope: str) -> int:
    """How many live slots ``scope`` has now (dead rows not yet deleted do not count)."""
    with connection.cursor() as cursor:
        cursor.execute(HELD, [_RUNNING, scope])
        return cursor.fetchone()[0]


def scopes_for(run_id: int, run_limit: int, client_name: str) -> list[tuple[str, int]]:
    """The scopes a node of run ``run_id`` calling ``client_name``'s models takes a slot in.

    The run's own cap (the flow's max_concurrency), and the provider's cap shared by
    every run (settings.MODEL_CONCURRENCY), so a burst of runs queues for the provider
    instead of producing a storm of 429s. Unlimited scopes are left out.
    """
    scopes = [
        (f"run:{run_id}", run_limit),
        (f"model:{client_name}", settings.MODEL_CONCURRENCY.get(client_name)),
    ]
    return list(limited(scopes).items())


@dataclass(eq=False)
class _Waiter:
    """A coroutine waiting in Slots.__aenter__, woken early when a slot is freed."""

    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)
    # Woken and not yet trying again (under _waiters_lock): a second release in a row
    # wakes the next waiter rather than this one twice.
    woken: bool = False

    def wake(self) -> None:
        self.woken = True
        with contextlib.suppress(RuntimeError):  # its loop has closed: nobody to wake
            self.loop.call_soon_threadsafe(self.event.set)


# Waiters of this process by scope, oldest first. A release anywhere (its notification,
# or at once when it is this process's) wakes the oldest waiter here that is not awake.
_waiters: dict[str, list[_Waiter]] = {}
_waiters_lock = threading.Lock()


def _wake_first(scopes: Iterable[str]) -> None:
    """Wake this process's oldest sleeping waiter in each of ``scopes``."""
    with _waiters_lock:
        for name in scopes:
            for waiter in _waiters.get(name, ()):
                if not waiter.woken:
                    waiter.wake()
                    break


class Listener(threading.Thread):
    """This process's one LISTEN connection: a release anywhere wakes a waiter here.

    Best effort: without it (its connection lost, reconnecting) waiters fall back on
    polling, so a notification missed costs latency, never a slot.
    """

    def __init__(self) -> None:
        super().__init__(name="slots-listener", daemon=True)
        self.stopped = threading.Event()
        self.listening = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.listen()
            except Exception:
                log.warning("slot notifications lost; reconnecting", exc_info=True)
            self.listening.clear()
            self.stopped.wait(1.0)

    def listen(self) -> None:
        raw = connection.get_new_connection(connection.get_connection_params())
        try:
            raw.autocommit = True
            raw.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            # Slots freed while nobody listened: whoever waits should look again.
            with _waiters_lock:
                waiting = list(_waiters)
            _wake_first(waiting)
            while not self.stopped.is_set():
                for notice in raw.notifies(timeout=1.0):
                    _wake_first([notice.payload])
        finally:
            raw.close()


_listener: Listener | None = None
_listener_lock = threading.Lock()


def wait_listening(timeout: float) -> bool:
    """Wait until this process's listener listens (tests); False if it does not in time."""
    listener = _listener
    return listener is not None and listener.listening.wait(timeout)


def listen() -> None:
    """Start this process's listener unless it runs (PostgreSQL only)."""
    global _listener
    if _listener is not None and _listener.is_alive():
        return
    with _listener_lock:
        if (_listener is None or not _listener.is_alive()) and connection.vendor == "postgresql":
            _listener = Listener()
            _listener.start()


def stop_listening(timeout: float = 5.0) -> None:
    """Stop this process's listener (tests, before their database is dropped)."""
    global _listener
    with _listener_lock:
        listener, _listener = _listener, None
    if listener is not None:
        listener.stopped.set()
        listener.join(timeout)


@dataclass
class _Attempt:
    """One acquire in flight on a slots thread, and whether its waiter gave up on it.

    Whichever side comes second (the thread finishing, the waiter being cancelled) sees
    the other's flag under the lock, so a slot taken for a cancelled waiter is released
    exactly once.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    got: bool = False
    abandoned: bool = False


class Slots:
    """A slot in each of ``scopes`` for task ``task_id`` in ``epoch``, held across workers.

    Used exactly like ``asyncio.Semaphore`` with ``async with``; many coroutines (a map
    item's subflow running nodes side by side) may enter the same Slots at once, each
    holding its own row per scope.
    """

    def __init__(
        self,
        task_id: int,
        epoch: int,
        scopes: Scopes,
        *,
        poll_s: float = 0.02,
        max_poll_s: float = 1.0,
    ):
        self.task_id = task_id
        self.epoch = epoch
        self.scopes: tuple[tuple[str, int], ...] = tuple(limited(scopes).items())
        # A full scope waits for a release's wake-up, polling with a backoff from poll_s
        # to max_poll_s for what sends none (a lapsed lease).
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s

    def __repr__(self) -> str:
        return f"Slots(task={self.task_id}, epoch={self.epoch}, scopes={list(self.scopes)})"

    async def __aenter__(self) -> Self:
        if not self.scopes:
            return self
        waiter = _Waiter(asyncio.get_running_loop())
        self._wait_in_line(waiter)
        found = FULL
        try:
            delay = self.poll_s
            while True:
                with _waiters_lock:
                    waiter.woken = False
                waiter.event.clear()  # before trying: a release during the try still wakes
                found = await self._try()
                if found in (TAKEN, TAKEN_ROOM_LEFT):
                    return self
                listen()  # from now on, releases anywhere wake this process
                # Jitter spreads out the retries of the many waiters one burst brings.
                pause = delay * random.uniform(0.5, 1.0)  # noqa: S311
                delay = min(delay * 2, self.max_poll_s)
                try:
                    async with asyncio.timeout(pause):
                        await waiter.event.wait()
                except TimeoutError:
                    pass
        finally:
            self._leave_line(waiter)
            if found == TAKEN_ROOM_LEFT:
                self._wake_one()  # out of line now: the next need not wait for a release

    async def __aexit__(self, *exc_info: object) -> None:
        # Shielded: a cancel arriving now must not stop the release (the thread finishes
        # it regardless); only this coroutine stops waiting for it.
        try:
            await asyncio.shield(asyncio.ensure_future(_on_release_db(release, *self._args())))
        except DatabaseError:
            # The node's own outcome stands; the slot dies with the task's lease.
            log.warning("%r: slots not released; they end with the task", self, exc_info=True)
            return
        self._wake_one()

    def _args(self) -> tuple[int, int, Scopes]:
        return self.task_id, self.epoch, self.scopes

    async def _try(self) -> str:
        """One acquire on a slots thread (what it found: TAKEN, FULL...). Cancelled
        meanwhile, it leaves nothing held."""
        attempt = _Attempt()
        call = asyncio.ensure_future(_on_db(self._take, attempt))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            with attempt.lock:
                attempt.abandoned = True
                orphaned = attempt.done and attempt.got
            # Not yet done: the thread releases what it gets. Done: the slots are ours to
            # give back. Either way wait for it, so nothing is held once the cancel lands.
            settle = asyncio.ensure_future(_on_db(release, *self._args())) if orphaned else call
            try:
                await asyncio.shield(settle)
            except asyncio.CancelledError:
                pass  # cancelled again: the thread still finishes the job
            except DatabaseError:
                log.warning("%r: slots of a cancelled wait not released", self, exc_info=True)
            raise
        except (OperationalError, InterfaceError):
            # The database is unreachable: keep waiting. If it stays away, the lease runs
            # out, the task is taken over and its holder is stopped.
            log.warning("%r: acquire failed; retrying", self, exc_info=True)
            return FULL

    def _take(self, attempt: _Attempt) -> str:
        """On a slots thread: acquire, and give back at once what a gone waiter got."""
        found, got = FULL, False
        try:
            found = _acquire(*self._args())
            got = found in (TAKEN, TAKEN_ROOM_LEFT)
        finally:
            with attempt.lock:
                attempt.done, attempt.got = True, got
                orphaned = got and attempt.abandoned
            if orphaned:
                try:
                    release(*self._args())
                except DatabaseError:
                    log.warning("%r: slots of a cancelled wait not released", self, exc_info=True)
        return found

    def _wait_in_line(self, waiter: _Waiter) -> None:
        with _waiters_lock:
            for name, _ in self.scopes:
                _waiters.setdefault(name, []).append(waiter)

    def _leave_line(self, waiter: _Waiter) -> None:
        with _waiters_lock:
            for name, _ in self.scopes:
                line = _waiters.get(name)
                if line is not None:
                    line.remove(waiter)
                    if not line:
                        del _waiters[name]

    def _wake_one(self) -> None:
        """Tell the oldest sleeping waiter of this process in each scope to try now."""
        _wake_first(name for name, _ in self.scopes)


async def _on_release_db(fn: Callable[..., T], *args: Any) -> T:
    return await dbthreads.on(_release_db, fn, *args)


async def _on_db(fn: Callable[..., T], *args: Any) -> T:
    return await dbthreads.on(_db, fn, *args)
