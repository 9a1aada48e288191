"""Warm, then fan: calls sharing a cacheable prefix wait for the first to write the cache.

When a fan-out or a map sends N model calls whose prompts start with the same cached
prefix (``graphs.llm.caching.warm_key``) at once, each would find the cache empty and
write it: N writes at 1.25x the input price. Sent one first, and the rest once its reply's
first event (``message_start``) confirms the write, they read it: one write and N-1 reads
at a tenth of the price, for the time of one reply's first event.

The decision is pure (``arrive``, ``started``, ``failed``: JSON state in, state and an
answer out, tested step by step, like ``graphs.schedule``); ``WarmGate`` holds the waiting
calls. One gate is shared by whatever shares a prompt cache (the API's cache is per
organisation, so a process-wide gate is right: a second run of the same flow finds the
prefix warm and waits for nothing).

>>> state = {}
>>> state, first = arrive(state, "k", now=0.0)
>>> state, second = arrive(state, "k", now=0.1)
>>> first, second
('lead', 'wait')
>>> state = started(state, "k", wrote_or_read=True, now=0.5, ttl_s=300)
>>> arrive(state, "k", now=1.0)[1], arrive(state, "k", now=400.0)[1]
('go', 'lead')

A leader that failed before its first event hands the lead on: the next to arrive leads.

>>> state, _ = arrive({}, "k", now=0.0)
>>> arrive(failed(state, "k"), "k", now=0.2)[1]
'lead'

A prefix the API did not cache (shorter than its minimum, in its own count) is not
waited for again until the lifetime has passed:

>>> state = started(arrive({}, "k", now=0.0)[0], "k", wrote_or_read=False, now=0.1, ttl_s=300)
>>> arrive(state, "k", now=1.0)[1]
'go'
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, Literal

Answer = Literal["lead", "wait", "go"]
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
# The longest a call waits for a leader's first event: a leader that hangs must not hold
# the others past this (it fails on its own timeout, later).
MAX_WAIT_S = 60.0


def arrive(state: dict[str, Any], key: str, now: float) -> tuple[dict[str, Any], Answer]:
    """A call with prefix ``key`` is about to be sent: ``lead`` (send it, the others wait
    for its first event), ``wait`` (a leader is on its way) or ``go`` (the cache is warm,
    or not worth waiting for)."""
    entry = state.get(key)
    if entry is None or (entry["state"] != "warming" and entry["until"] <= now):
        return {**state, key: {"state": "warming", "until": None}}, "lead"
    if entry["state"] == "warming":
        return state, "wait"
    return state, "go"


def started(
    state: dict[str, Any], key: str, *, wrote_or_read: bool, now: float, ttl_s: float
) -> dict[str, Any]:
    """The leader's first event came: with a cache write (or read), the prefix is warm for
    its lifetime; without, the API did not cache it, and no one waits for it."""
    return {**state, key: {"state": "warm" if wrote_or_read else "cold", "until": now + ttl_s}}


def failed(state: dict[str, Any], key: str) -> dict[str, Any]:
    """The leader failed (or was cancelled) before its first event."""
    entry = state.get(key)
    if entry is None or entry["state"] != "warming":
        return state
    return {k: v for k, v in state.items() if k != key}


class WarmGate:
    """Holds calls that share a prefix until the first one's cache write is confirmed.

    Thread-safe, and for calls on any event loop (the in-process driver and the workers
    run runs on loops of their own): a waiter's future is woken on its own loop.
    """

    def __init__(self, clock=time.monotonic, *, max_wait_s: float = MAX_WAIT_S) -> None:
        self._clock = clock
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {}
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self.leads = 0
        self.waits = 0

    async def enter(self, key: str) -> Answer:
        """``lead`` or ``go``, once this call may be sent (after waiting, if it must)."""
        deadline = self._clock() + self.max_wait_s
        while True:
            loop = asyncio.get_running_loop()
            with self._lock:
                self._state, answer = arrive(self._state, key, self._clock())
                if answer == "lead":
                    self.leads += 1
                    return answer
                if answer == "go":
                    return answer
                self.waits += 1
                future: asyncio.Future = loop.create_future()
                self._waiting.setdefault(key, []).append((loop, future))
            left = deadline - self._clock()
            if left <= 0:
                return "go"
            try:
                await asyncio.wait_for(future, left)
            except TimeoutError:
                return "go"
            # Woken: the prefix is warm (go), or the leader failed (one of us leads).

    def started(self, key: str, *, wrote_or_read: bool, ttl: str | None) -> None:
        with self._lock:
            self._state = started(
                self._state,
                key,
                wrote_or_read=wrote_or_read,
                now=self._clock(),
                ttl_s=TTL_SECONDS.get(ttl or "5m", 300.0),
            )
            self._wake(key)

    def failed(self, key: str) -> None:
        with self._lock:
            self._state = failed(self._state, key)
            self._wake(key)

    def _wake(self, key: str) -> None:
        for loop, future in self._waiting.pop(key, []):
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, future)


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
