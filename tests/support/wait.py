"""Waiting for something another thread, task or process does, never for longer than a
timeout: ``wait_for`` (sync) and ``wait_for_async`` (in a coroutine).

Both call ``condition`` until it returns something truthy and return that value. When the
timeout passes first they fail the test with an AssertionError naming what was awaited
and the last value the condition returned, so a hang reads as a failure that says what
never happened, not as a test killed by pytest-timeout.

>>> wait_for(lambda: 42, message="the answer")
42
>>> wait_for(lambda: [], timeout=0.05, interval=0.01, message="an item")
Traceback (most recent call last):
...
AssertionError: timed out after 0.05 s waiting for an item (last seen: [])
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def timed_out(timeout: float, message: str, last: object) -> AssertionError:
    return AssertionError(
        f"timed out after {timeout:g} s waiting for {message} (last seen: {last!r})"
    )


def wait_for(
    condition: Callable[[], T],
    timeout: float = 60,
    interval: float = 0.05,
    message: str = "the condition",
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """The first truthy value of ``condition()``, asked every ``interval`` seconds.

    ``sleep`` is how to pass the time between asks: a Playwright test passes
    ``lambda s: page.wait_for_timeout(s * 1000)``, because its sync API delivers the
    page's events (console messages, bindings) only while one of its calls runs.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise timed_out(timeout, message, value)
        sleep(interval)


async def wait_for_async(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 30,
    interval: float = 0.01,
    message: str = "the condition",
) -> T:
    """``wait_for`` in a coroutine: the event loop runs other tasks between asks.
    ``condition`` may be a plain function or return an awaitable (``Model.objects.aexists``).

    >>> asyncio.run(wait_for_async(lambda: asyncio.sleep(0, "done"), message="a coroutine"))
    'done'
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise timed_out(timeout, message, value)
        await asyncio.sleep(interval)
