"""The threads that HTTP requests' synchronous parts run on: kept, not made per request.

Django runs each ASGI request in a ``ThreadSensitiveContext`` of its own, so that its
synchronous parts (the sync-only middleware, and the stack above it, sync views, ORM
calls through ``sync_to_async``) share one thread. asgiref makes that thread on the
request's first synchronous call and joins it from another new thread at the end: two
thread starts per request, and ``Thread.start`` holds the event loop until the new thread
has run. On a busy machine that is tens of milliseconds each; under bench/load.py's burst
(50 POSTs at once on a loaded 2-core machine) they were most of the stretches in which the
loop answered nothing for over 20 ms (bench/_loopwatch.py).

Here a request borrows a one-thread executor from a free list and gives it back when it
ends (asgiref's ``ThreadSensitiveContext(executor=...)``: the caller owns the executor, it
is not shut down). The guarantee Django relies on holds: one request's synchronous code
runs on one thread, and no other request's meanwhile. The list grows with the requests
in flight (a request that streams or waits holds its thread, as before); a new thread is
started off the loop; idle threads past ``KEEP_IDLE`` are let go.

The executor is ``OneThread``, not ``ThreadPoolExecutor``: every ThreadPoolExecutor's
``submit`` takes one lock of the module's, which is held while any of them starts a
thread, so a pool growing on another thread would still stall the loop's next submit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

from asgiref.sync import ThreadSensitiveContext

KEEP_IDLE = 32
PRESTART = 16


class OneThread(Executor):
    """An executor of one daemon thread, started when it is made; runs calls in order."""

    def __init__(self, name: str) -> None:
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]
        self._work = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._work.put((future, lambda: fn(*args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._work.put(None)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # as concurrent.futures' workers: the caller's to see
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, call, item  # nothing of a request outlives it here


_idle: list[OneThread] = []
_serial = count(1)
# Starts the new threads, so that the wait for each is this thread's, not the loop's.
_starter: OneThread | None = None
_starter_lock = threading.Lock()


def _new() -> OneThread:
    return OneThread(f"request-{next(_serial)}")


def _the_starter() -> OneThread:
    global _starter
    with _starter_lock:
        if _starter is None:
            _starter = OneThread("request-thread-starter")
        return _starter


def prestart(threads: int = PRESTART) -> None:
    """Start the starter and `threads` request threads now (the server, before it serves)."""
    _the_starter()
    _idle.extend(_new() for _ in range(threads))


async def _borrow() -> OneThread:
    if _idle:
        return _idle.pop()
    return await asyncio.wrap_future(_the_starter().submit(_new))


def _give_back(executor: OneThread) -> None:
    if len(_idle) < KEEP_IDLE:
        _idle.append(executor)
    else:
        executor.shutdown(wait=False)  # its thread ends by itself; nobody waits for it


@asynccontextmanager
async def request_thread() -> AsyncIterator[None]:
    """A request's synchronous parts, in this block, run on one borrowed thread."""
    executor = await _borrow()
    try:
        async with ThreadSensitiveContext(executor=executor):
            yield
    finally:
        _give_back(executor)
