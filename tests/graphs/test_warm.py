"""Warm, then fan (graphs.warm): the pure decision step by step, and the gate holding and
releasing calls, on one event loop and across loops in other threads."""

from __future__ import annotations

import asyncio
import threading

from graphs import warm
from graphs.warm import WarmGate


def test_the_decision_step_by_step():
    state, first = warm.arrive({}, "k", now=0.0)
    assert first == "lead" and state == {"k": {"state": "warming", "until": None}}
    state, second = warm.arrive(state, "k", now=0.1)
    assert second == "wait"
    # Another prefix is not held by this one.
    assert warm.arrive(state, "other", now=0.1)[1] == "lead"
    state = warm.started(state, "k", wrote_or_read=True, now=0.2, ttl_s=300)
    assert state["k"] == {"state": "warm", "until": 300.2}
    assert warm.arrive(state, "k", now=300.0)[1] == "go"
    # Past its lifetime the cache may be gone: the next call leads again.
    assert warm.arrive(state, "k", now=300.3)[1] == "lead"
    # A leader's failure after the prefix is warm changes nothing.
    assert warm.failed(state, "k") == state


def test_a_prefix_the_api_did_not_cache_holds_no_one_until_its_lifetime_passes():
    state, _ = warm.arrive({}, "k", now=0.0)
    state = warm.started(state, "k", wrote_or_read=False, now=1.0, ttl_s=300)
    assert state["k"]["state"] == "cold"
    assert warm.arrive(state, "k", now=2.0)[1] == "go"
    assert warm.arrive(state, "k", now=301.0)[1] == "lead"


async def test_the_gate_holds_the_others_until_the_leader_hears_of_its_write():
    gate = WarmGate()
    assert await gate.enter("k") == "lead"
    waiting = [asyncio.create_task(gate.enter("k")) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    gate.started("k", wrote_or_read=True, ttl="5m")
    assert await asyncio.gather(*waiting) == ["go", "go", "go"]
    assert await gate.enter("k") == "go"
    assert (gate.leads, gate.waits) == (1, 3)


async def test_when_the_leader_fails_one_waiter_leads_and_the_rest_wait_for_it():
    gate = WarmGate()
    await gate.enter("k")
    waiting = [asyncio.create_task(gate.enter("k")) for _ in range(3)]
    await asyncio.sleep(0.05)
    gate.failed("k")
    await asyncio.sleep(0.05)
    done = [task.result() for task in waiting if task.done()]
    assert done == ["lead"]
    gate.started("k", wrote_or_read=True, ttl="1h")
    assert sorted(await asyncio.gather(*waiting)) == ["go", "go", "lead"]


async def test_a_leader_that_never_answers_holds_the_others_no_longer_than_max_wait():
    gate = WarmGate(max_wait_s=0.2)
    await gate.enter("k")
    assert await asyncio.wait_for(gate.enter("k"), 5) == "go"


async def test_waiters_on_another_threads_loop_are_woken_on_their_own_loop():
    gate = WarmGate()
    await gate.enter("k")
    answers: list[str] = []
    entered = threading.Event()

    def other_thread() -> None:
        async def wait() -> None:
            task = asyncio.create_task(gate.enter("k"))
            await asyncio.sleep(0.05)
            entered.set()
            answers.append(await task)

        asyncio.run(wait())

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert await asyncio.to_thread(entered.wait, 5)
    gate.started("k", wrote_or_read=True, ttl="5m")
    await asyncio.to_thread(thread.join, 5)
    assert answers == ["go"]
