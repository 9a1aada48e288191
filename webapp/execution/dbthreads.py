"""Database work of async code, on threads of its own with long-lived connections.

The in-process driver's event writes, the node cache, the worker and the concurrency slots
each keep a small thread pool for their queries: on the shared thread (``sync_to_async``'s
default) they would queue behind every request and consumer, and reopen a connection each
time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

T = TypeVar("T")


async def on(executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on one of `executor`'s threads (see ``durably``)."""
    return await sync_to_async(durably, thread_sensitive=False, executor=executor)(fn, *args)


def durably(fn: Callable[..., T], *args: Any) -> T:
    """fn on the thread's long-lived connection, reconnecting once if it broke.

    Safe to repeat because a failed call's transaction did not commit, and the callers'
    writes are fenced or idempotent (a repeated claim or finish is refused, not doubled).
    """
    try:
        return fn(*args)
    except DatabaseError:
        if connection.is_usable():
            raise
        connection.close()
        return fn(*args)
