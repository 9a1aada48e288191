"""Concurrency caps across workers (webapp.execution.slots), against the session's PostgreSQL.

Threads stand in for worker processes: each has its own database connection, so the caps
are held by the database alone, as they are between machines.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from webapp.execution import slots
from webapp.execution.slots import Slots, acquire, held, release, scopes_for
from webapp.flows import services
from webapp.runs.models import NodeTask, Run, Slot

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "model:anthropic"


@pytest.fixture
def run() -> Run:
    alice = get_user_model().objects.create_user("alice")
    flow = services.create(alice, "Chain", services.starter_graph("Chain"))
    return Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)


@pytest.fixture
def make_task(run: Run) -> Callable[..., NodeTask]:
    """A node task of the run, running under a fresh lease unless told otherwise."""
    made = iter(range(10_000))

    def make(*, status: str = NodeTask.Status.RUNNING, epoch: int = 1) -> NodeTask:
        return NodeTask.objects.create(
            run=run,
            node=f"node{next(made)}",
            iteration=0,
            status=status,
            epoch=epoch,
            worker="tests",
            lease_until=timezone.now() + timedelta(seconds=30),
        )

    return make


def rows(task: NodeTask) -> list[str]:
    return sorted(Slot.objects.filter(task=task).values_list("scope", flat=True))


async def made(make_task: Callable[..., NodeTask], n: int) -> list[NodeTask]:
    """n running tasks, made off the event loop (Django refuses database calls on it)."""
    return await asyncio.to_thread(lambda: [make_task() for _ in range(n)])


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    """fn on a thread of its own, with its own connection, closed when it is done."""

    def body() -> None:
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_a_limit_holds_across_many_concurrent_acquirers_and_all_get_through(make_task):
    limit, rounds = 3, 3
    tasks = [make_task() for _ in range(10)]
    scopes = [(MODEL, limit)]
    lock = threading.Condition()
    holding, most, seen, served = 0, 0, [], []
    stop = threading.Event()
    deadline = time.monotonic() + 30  # a broken cap must fail the test, not hang it

    def reached() -> bool:
        return holding >= limit

    def worker(task: NodeTask) -> None:
        nonlocal holding, most
        for _ in range(rounds):
            while not acquire(task.pk, task.epoch, scopes):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.002)
            with lock:
                holding += 1
                most = max(most, holding)
                lock.notify_all()
                # Held until the cap is reached (or a while): on a loaded machine a fixed
                # short hold can end before the next acquirer gets through, and the test
                # would see the cap never reached though nothing kept it from it.
                lock.wait_for(reached, timeout=0.3)
                holding -= 1
            assert release(task.pk, task.epoch, scopes) == 1
        served.append(task.pk)

    def watch() -> None:
        while not stop.is_set():
            seen.append(held(MODEL))

    watcher = in_thread(watch)
    threads = [in_thread(lambda task=task: worker(task)) for task in tasks]
    for thread in threads:
        thread.join(timeout=max(0.0, deadline + 5 - time.monotonic()))
    stop.set()
    watcher.join(timeout=5)

    assert sorted(served) == sorted(task.pk for task in tasks)
    assert most == limit  # the cap was reached, and never passed
    assert seen and max(seen) <= limit
    assert held(MODEL) == 0 and not Slot.objects.exists()


def test_a_task_takes_a_slot_in_every_scope_or_in_none(make_task, run):
    first, second = make_task(), make_task()
    assert acquire(first.pk, 1, [(MODEL, 1)])

    both = [(f"run:{run.pk}", 5), (MODEL, 1)]
    assert not acquire(second.pk, 1, both)
    assert rows(second) == [] and held(f"run:{run.pk}") == 0

    release(first.pk, 1, [(MODEL, 1)])
    assert acquire(second.pk, 1, both)
    assert rows(second) == [MODEL, f"run:{run.pk}"]


def expire(task: NodeTask) -> None:
    NodeTask.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))


def take_over(task: NodeTask) -> None:
    NodeTask.objects.filter(pk=task.pk).update(epoch=task.epoch + 1)


def finish(task: NodeTask) -> None:
    NodeTask.objects.filter(pk=task.pk).update(status=NodeTask.Status.DONE, lease_until=None)


def requeue(task: NodeTask) -> None:
    NodeTask.objects.filter(pk=task.pk).update(status=NodeTask.Status.QUEUED)


@pytest.mark.parametrize(
    "die",
    [expire, take_over, finish, requeue, NodeTask.delete],
    ids=["lease ran out", "taken over", "done", "queued again", "deleted"],
)
def test_the_slots_of_a_task_that_no_longer_holds_them_go_to_the_next_acquirer(make_task, die):
    dead, waiting = make_task(), make_task()
    assert acquire(dead.pk, 1, [(MODEL, 1)])
    assert not acquire(waiting.pk, 1, [(MODEL, 1)])

    die(dead)

    assert held(MODEL) == 0  # dead before anyone deletes the row
    assert acquire(waiting.pk, 1, [(MODEL, 1)])
    assert list(Slot.objects.values_list("task_id", flat=True)) == [waiting.pk]


def test_a_task_not_running_in_its_epoch_gets_no_slot(make_task):
    fenced, queued, lapsed = make_task(epoch=2), make_task(status="queued"), make_task()
    expire(lapsed)

    assert not acquire(fenced.pk, 1, [(MODEL, 5)])  # its worker still thinks it is epoch 1
    assert not acquire(queued.pk, 1, [(MODEL, 5)])
    assert not acquire(lapsed.pk, 1, [(MODEL, 5)])
    assert not Slot.objects.exists()


def test_held_counts_only_live_slots(make_task):
    tasks = [make_task() for _ in range(3)]
    for task in tasks:
        assert acquire(task.pk, 1, [(MODEL, 10)])
    assert held(MODEL) == 3

    expire(tasks[0])
    take_over(tasks[1])
    assert held(MODEL) == 1
    assert Slot.objects.count() == 3  # the rows are still there, and count for nothing
    assert held("model:other") == 0


def test_release_gives_back_one_slot_per_scope_of_that_task_and_epoch(make_task, run):
    task, other = make_task(), make_task()
    scopes = [(f"run:{run.pk}", 4), (MODEL, 4)]
    assert acquire(task.pk, 1, scopes) and acquire(task.pk, 1, scopes)
    assert acquire(other.pk, 1, scopes)

    assert release(task.pk, 1, scopes) == 2
    assert rows(task) == [MODEL, f"run:{run.pk}"]
    assert release(task.pk, 2, scopes) == 0  # another epoch's holder frees nothing
    assert release(task.pk, 1, [(MODEL, 4)]) == 1
    assert rows(task) == [f"run:{run.pk}"]
    assert rows(other) == [MODEL, f"run:{run.pk}"]


def test_releases_of_one_task_racing_on_many_threads_give_back_every_slot(make_task):
    task, n = make_task(), 8
    for _ in range(n):
        assert acquire(task.pk, 1, [(MODEL, n)])
    start, freed = threading.Barrier(n), []

    def give_back() -> None:
        start.wait(5)
        freed.append(release(task.pk, 1, [(MODEL, n)]))

    for thread in [in_thread(give_back) for _ in range(n)]:
        thread.join(timeout=10)
    assert freed == [1] * n
    assert rows(task) == []


def test_unlimited_scopes_take_nothing(make_task, settings):
    task = make_task()
    assert acquire(task.pk, 1, [("run:1", 0), (MODEL, None)])
    assert release(task.pk, 1, [("run:1", 0), (MODEL, None)]) == 0
    assert not Slot.objects.exists()

    settings.MODEL_CONCURRENCY = {"anthropic": 7, "fake": 0}
    assert scopes_for(12, 3, "anthropic") == [("run:12", 3), ("model:anthropic", 7)]
    assert scopes_for(12, 3, "fake") == [("run:12", 3)]
    assert scopes_for(12, 0, "unknown") == []


async def test_coroutines_sharing_slots_never_exceed_the_limit(make_task):
    first, second = await made(make_task, 2)
    shared = [Slots(first.pk, 1, [(MODEL, 2)]), Slots(second.pk, 1, [(MODEL, 2)])]
    holding, most, done = 0, 0, 0

    async def node(limit: Slots) -> None:
        nonlocal holding, most, done
        async with limit:
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0.02)
            holding -= 1
        done += 1

    async with asyncio.timeout(10):
        await asyncio.gather(*(node(shared[i % 2]) for i in range(8)))

    assert (most, done) == (2, 8)
    assert await asyncio.to_thread(Slot.objects.count) == 0


async def test_a_coroutine_cancelled_while_waiting_leaves_nothing_held(make_task):
    holder, waiter = await made(make_task, 2)
    async with Slots(holder.pk, 1, [(MODEL, 1)]):
        waiting = asyncio.create_task(Slots(waiter.pk, 1, [(MODEL, 1)]).__aenter__())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert await asyncio.to_thread(rows, waiter) == []
    assert not slots._waiters


@pytest.mark.parametrize("thread_first", [False, True], ids=["mid-acquire", "after-acquire"])
async def test_a_cancel_landing_while_an_acquire_succeeds_leaves_nothing_held(
    make_task, monkeypatch, thread_first
):
    """The cancel arrives while the thread is still taking the slot, or after it took it
    but before the waiting coroutine heard: either way the slot is given back."""
    (task,) = await made(make_task, 1)
    loop = asyncio.get_running_loop()
    entering: asyncio.Task | None = None
    taken, proceed = threading.Event(), threading.Event()
    real = slots._acquire

    def block_then_cancel() -> None:
        time.sleep(0.2)  # holds the loop while the thread finishes its attempt
        entering.cancel()

    def slow_acquire(*args):
        got = real(*args)
        if thread_first:
            loop.call_soon_threadsafe(block_then_cancel)
        else:
            taken.set()
            proceed.wait(5)
        return got

    monkeypatch.setattr(slots, "_acquire", slow_acquire)
    entering = asyncio.create_task(Slots(task.pk, 1, [(MODEL, 1)]).__aenter__())
    if not thread_first:
        await asyncio.to_thread(taken.wait, 5)
        assert await asyncio.to_thread(rows, task) == [MODEL]  # the slot is taken...
        entering.cancel()
        loop.call_later(0.1, proceed.set)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(entering, timeout=10)
    assert await asyncio.to_thread(rows, task) == []  # ...and given back


async def test_a_slot_freed_in_this_process_goes_to_a_waiter_at_once(make_task):
    holder, waiter = await made(make_task, 2)
    # Left to its poll, the waiter would look again in ten minutes.
    lazy = Slots(waiter.pk, 1, [(MODEL, 1)], poll_s=600.0, max_poll_s=600.0)
    async with Slots(holder.pk, 1, [(MODEL, 1)]):
        waiting = asyncio.create_task(lazy.__aenter__())
        await asyncio.sleep(0.1)  # it tried, found the scope full, and sleeps
    await asyncio.wait_for(waiting, timeout=30)  # woken by the release, not by its poll
    await lazy.__aexit__(None, None, None)
    assert await asyncio.to_thread(Slot.objects.count) == 0


async def test_a_slot_freed_by_another_process_wakes_a_waiter_here_through_its_notification(
    make_task,
):
    holder, waiter = await made(make_task, 2)
    # Another worker's slot, taken and given back on a connection of its own, with nothing
    # in this process told directly: only the release's NOTIFY can wake the waiter.
    assert await asyncio.to_thread(in_thread_result, lambda: acquire(holder.pk, 1, [(MODEL, 1)]))
    await asyncio.to_thread(slots.listen)
    assert await asyncio.to_thread(slots.wait_listening, 30)
    lazy = Slots(waiter.pk, 1, [(MODEL, 1)], poll_s=600.0, max_poll_s=600.0)
    waiting = asyncio.create_task(lazy.__aenter__())
    await asyncio.sleep(0.1)  # it tried, found the scope full, and sleeps
    assert not waiting.done()
    freed = await asyncio.to_thread(in_thread_result, lambda: release(holder.pk, 1, [(MODEL, 1)]))
    assert freed == 1
    await asyncio.wait_for(waiting, timeout=30)
    assert await asyncio.to_thread(rows, waiter) == [MODEL]
    await lazy.__aexit__(None, None, None)


def in_thread_result(fn: Callable[[], object]) -> object:
    """fn's result, computed on a thread of its own with its own connection."""
    result: list[object] = []
    in_thread(lambda: result.append(fn())).join(30)
    return result[0]
