"""Database work of websockets (consumers and their auth middleware), on threads of its own.

channels' ``database_sync_to_async`` runs it on asgiref's one shared thread, one query at a
time for every socket of the process. Under a burst (bench/load.py: 50 runs started at
once, 100 sockets opening on them) the handshakes' permission checks queued there for
seconds, past Daphne's 5 s handshake timeout, and an open socket's ping, a one-row read,
waited behind all of them. A few threads with long-lived connections (as the recorder and
the node cache have: webapp.execution.dbthreads) serve them side by side instead; what
they run are short reads, plus the bearer token's once-a-minute ``last_used`` write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from channels.consumer import get_handler_name

from webapp.execution import dbthreads

P = ParamSpec("P")
T = TypeVar("T")

# Enough that a slow check (a permission query on a busy database) does not hold up the
# others; few, because each keeps a connection open for the life of the process.
THREADS = 4
_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="socket-db")


def socket_db(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """`fn` as a coroutine function that runs it on a socket-db thread."""

    @wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if kwargs:
            return await dbthreads.on(_pool, _call, fn, args, kwargs)
        return await dbthreads.on(_pool, fn, *args)

    return run


def _call(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    return fn(*args, **kwargs)


class OffTheSharedThread:
    """A consumer mixin: dispatch without channels' hop to asgiref's shared thread.

    channels' ``AsyncConsumer.dispatch`` runs ``close_old_connections`` there before every
    message a socket handles (its connect, each ping, each live batch of events), to close
    the shared thread's stale connections. A consumer whose queries all go through
    ``socket_db`` has none there, and the hop made every event batch for every watching
    socket wait its turn on that one thread. The socket-db threads' connections are
    looked after by ``dbthreads.durably`` (reconnected when they break).
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
