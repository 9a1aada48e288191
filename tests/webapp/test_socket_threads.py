"""A run socket's database work runs on threads of its own (webapp/socketdb.py), never
queued on asgiref's one shared thread, which every sync view without a request context
and every other ``sync_to_async`` caller shares: a burst there must not stall sockets."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from webapp.asgi import application
from webapp.flows import services
from webapp.runs.eventlog import write_batch
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"127.0.0.1:8000")
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
DOC = {
    "graph": {"name": "echo"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}},
        {"id": "o", "type": "output", "config": {"name": "a"}},
    ],
    "edges": [{"source": "q", "target": "o", "source_port": "value", "target_port": "value"}],
}


@sync_to_async
def recorded_run(owner, events: int) -> Run:
    flow = services.create(owner, "echo", DOC)
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=owner)
    batch = [
        {"seq": i, "ts": 1_700_000_000.0 + i, "type": "node_delta", "node": "o", "text": f"t{i}"}
        for i in range(1, events + 1)
    ]
    write_batch(run.pk, batch)
    return run


@sync_to_async
def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


class SharedThreadBusy:
    """Holds asgiref's shared sync thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.task: asyncio.Future | None = None

    def hold(self) -> None:
        self.entered.set()
        self.release.wait(30)

    async def __aenter__(self) -> SharedThreadBusy:
        self.task = asyncio.ensure_future(sync_to_async(self.hold, thread_sensitive=True)())
        assert await asyncio.to_thread(self.entered.wait, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.task


async def open_and_ping(run: Run, credential: tuple[bytes, bytes]) -> tuple[list[int], dict]:
    ws = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/", headers=[ORIGIN, HOST, credential]
    )
    connected, _ = await ws.connect(timeout=5)
    assert connected
    seqs = [e["seq"] for e in json.loads(await ws.receive_from(timeout=5))["events"]]
    await ws.send_to(text_data='{"type":"ping"}')
    pong = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    return seqs, pong


async def test_alices_socket_opens_replays_and_answers_pings_while_the_shared_thread_is_busy(
    alice,
):
    run = await recorded_run(alice, 3)
    cookie = await session_cookie(alice)
    async with SharedThreadBusy():
        seqs, pong = await open_and_ping(run, cookie)
    assert seqs == [1, 2, 3]
    assert pong == {"type": "pong", "seq": 3}


async def test_a_token_socket_opens_while_the_shared_thread_is_busy(alice, alice_token):
    run = await recorded_run(alice, 2)
    async with SharedThreadBusy():
        seqs, pong = await open_and_ping(run, (b"authorization", f"Bearer {alice_token}".encode()))
    assert seqs == [1, 2]
    assert pong["seq"] == 2


async def test_daves_socket_is_still_refused_while_the_shared_thread_is_busy(alice, dave):
    run = await recorded_run(alice, 1)
    cookie = await session_cookie(dave)
    async with SharedThreadBusy():
        ws = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/", headers=[ORIGIN, HOST, cookie]
        )
        connected, _ = await ws.connect(timeout=5)
    assert not connected
