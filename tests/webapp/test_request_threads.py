"""HTTP requests' synchronous parts run on kept threads (webapp/requestthreads.py): one
thread for all of a request, lent to the next request once it ends, never started per
request (a thread start holds the event loop until the new thread runs)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started

from webapp.asgi import application
from webapp.requestthreads import request_thread

pytestmark = pytest.mark.django_db(transaction=True)


def get_scope(path: str) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def get(path: str) -> int:
    communicator = ApplicationCommunicator(application, get_scope(path))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=5)
    while (await communicator.receive_output(timeout=5)).get("more_body"):
        pass
    await communicator.wait(timeout=5)
    return start["status"]


async def test_requests_one_after_another_run_on_one_kept_thread() -> None:
    seen: list[tuple[str, str]] = []

    def started(**_: object) -> None:
        seen.append(("started", threading.current_thread().name))

    def finished(**_: object) -> None:
        seen.append(("finished", threading.current_thread().name))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        assert await get("/api/no-such-path") == 404
        assert await get("/api/no-such-path") == 404
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    names = {name for _, name in seen}
    # Both requests, start to finish, on one thread of the kept ones.
    assert [kind for kind, _ in seen] == ["started", "finished"] * 2
    assert len(names) == 1 and names.pop().startswith("request-")


async def test_requests_at_once_each_have_a_thread_of_their_own() -> None:
    both_in = asyncio.Barrier(2)

    async def one() -> tuple[int, int]:
        async with request_thread():
            first = await sync_to_async(threading.get_ident)()
            await both_in.wait()  # the other request is inside its block too
            return first, await sync_to_async(threading.get_ident)()

    (a1, a2), (b1, b2) = await asyncio.gather(one(), one())
    assert a1 == a2 and b1 == b2 and a1 != b1


def test_the_start_up_objects_are_frozen_out_of_full_collections() -> None:
    import gc

    from webapp.gcfreeze import freeze_startup

    before = gc.get_freeze_count()
    try:
        freeze_startup()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
