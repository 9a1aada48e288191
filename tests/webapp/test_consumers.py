"""The run websocket: who gets in, and that every event arrives once, in order."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from redis.exceptions import ConnectionError as RedisConnectionError

from webapp.asgi import application
from webapp.flows import services
from webapp.runs.eventlog import batch_message, run_group, write_batch
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

# The server a browser would connect to: the origin check compares the Origin with it.
HOST = (b"host", b"127.0.0.1:8000")

DOC = {
    "graph": {"name": "echo"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}},
        {"id": "o", "type": "output", "config": {"name": "a"}},
    ],
    "edges": [{"source": "q", "target": "o", "source_port": "value", "target_port": "value"}],
}


def event(seq: int, type_: str = "node_delta", **fields) -> dict:
    return {"seq": seq, "ts": 1_700_000_000.0 + seq, "type": type_, **fields}


@sync_to_async
def make_run(owner, recorded: int = 0) -> Run:
    flow = services.create(owner, "echo", DOC)
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=owner)
    if recorded:
        write_batch(
            run.pk, [event(i, node="o", iteration=1, text=f"t{i}") for i in range(1, recorded + 1)]
        )
    return run


@sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(path: str, *headers: tuple[bytes, bytes]) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"http://127.0.0.1:8000"), HOST, *headers]
    )
    connected, _ = await communicator.connect()
    return communicator, connected


async def received_seqs(communicator: WebsocketCommunicator, count: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        message = json.loads(await communicator.receive_from(timeout=2))
        seqs += [e["seq"] for e in message["events"]]
    assert await communicator.receive_nothing(timeout=0.1)
    return seqs


async def test_owner_gets_every_recorded_event_on_connect(alice):
    run = await make_run(alice, recorded=5)
    ws, connected = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert connected
    assert await received_seqs(ws, 5) == [1, 2, 3, 4, 5]
    await ws.disconnect()


async def test_after_resumes_exactly_after_that_seq(alice):
    run = await make_run(alice, recorded=5)
    ws, _ = await connect(f"/ws/runs/{run.pk}/?after=3", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 2) == [4, 5]
    await ws.disconnect()


async def test_a_batch_overlapping_what_was_sent_is_trimmed(alice):
    run = await make_run(alice, recorded=4)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 4) == [1, 2, 3, 4]
    await sync_to_async(write_batch)(run.pk, [event(5), event(6)])
    await get_channel_layer().group_send(
        run_group(run.pk), batch_message([event(4), event(5), event(6)])
    )
    await get_channel_layer().group_send(run_group(run.pk), batch_message([event(5), event(6)]))
    assert await received_seqs(ws, 2) == [5, 6]
    await ws.disconnect()


async def test_late_joiner_gets_backlog_then_live_events_without_duplicates(alice):
    run = await make_run(alice, recorded=3)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 3) == [1, 2, 3]
    batch = [event(3), event(4), event(5)]  # 3 is a duplicate the consumer must drop
    await sync_to_async(write_batch)(run.pk, batch[1:])
    await get_channel_layer().group_send(run_group(run.pk), batch_message(batch))
    assert await received_seqs(ws, 2) == [4, 5]
    await ws.disconnect()


async def test_a_gap_in_live_messages_is_filled_from_the_database(alice):
    run = await make_run(alice, recorded=2)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 2) == [1, 2]
    # Events 3-4 were committed but their broadcast was dropped by the channel layer.
    await sync_to_async(write_batch)(run.pk, [event(3), event(4), event(5)])
    await get_channel_layer().group_send(run_group(run.pk), batch_message([event(5)]))
    assert await received_seqs(ws, 3) == [3, 4, 5]
    await ws.disconnect()


async def test_a_stranger_is_refused_like_a_missing_run(alice, charlie):
    run = await make_run(alice, recorded=1)
    cookie = (b"cookie", await session_cookie(charlie))
    _, connected = await connect(f"/ws/runs/{run.pk}/", cookie)
    _, connected_missing = await connect("/ws/runs/999999/", cookie)
    assert connected is False and connected_missing is False


async def test_anonymous_is_refused(alice):
    run = await make_run(alice, recorded=1)
    _, connected = await connect(f"/ws/runs/{run.pk}/")
    assert connected is False


async def test_bearer_token_authenticates_and_a_bad_one_does_not(alice, alice_token):
    run = await make_run(alice, recorded=2)
    ws, connected = await connect(
        f"/ws/runs/{run.pk}/", (b"authorization", f"Bearer {alice_token}".encode())
    )
    assert connected and await received_seqs(ws, 2) == [1, 2]
    await ws.disconnect()
    _, connected = await connect(f"/ws/runs/{run.pk}/", (b"authorization", b"Bearer sy_nope"))
    assert connected is False


async def test_a_foreign_origin_is_refused_even_with_a_valid_session(alice):
    run = await make_run(alice)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/runs/{run.pk}/",
        headers=[
            (b"origin", b"https://evil.example"),
            HOST,
            (b"cookie", await session_cookie(alice)),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected is False


async def test_oversized_frames_close_the_socket(alice):
    run = await make_run(alice)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    await ws.send_to(text_data="x" * 5000)
    closed = await ws.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 1009}


async def test_flooding_messages_close_the_socket(alice):
    run = await make_run(alice)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    for _ in range(25):
        await ws.send_to(text_data='{"type":"ping"}')
    outputs = []
    async with asyncio.timeout(30):  # a socket that never closes fails here
        while True:
            output = await ws.receive_output(timeout=2)
            outputs.append(output)
            if output["type"] == "websocket.close":
                break
    assert outputs[-1]["code"] == 1008
    assert sum(o["type"] == "websocket.send" for o in outputs) == 20


async def test_batches_arriving_out_of_order_reach_the_client_once_in_order(alice):
    run = await make_run(alice, recorded=2)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 2) == [1, 2]
    # Two workers committed 3-4 then 5-6; their broadcasts reach the layer the other way.
    await sync_to_async(write_batch)(run.pk, [event(3), event(4)])
    await sync_to_async(write_batch)(run.pk, [event(5), event(6)])
    await get_channel_layer().group_send(run_group(run.pk), batch_message([event(5), event(6)]))
    await get_channel_layer().group_send(run_group(run.pk), batch_message([event(3), event(4)]))
    assert await received_seqs(ws, 4) == [3, 4, 5, 6]
    await ws.disconnect()


async def test_a_ping_brings_what_the_channel_layer_never_did(alice):
    run = await make_run(alice, recorded=2)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 2) == [1, 2]
    # Committed, but their broadcast was lost (Redis down): only the database has them.
    await sync_to_async(write_batch)(run.pk, [event(3), event(4)])
    await ws.send_to(text_data='{"type":"ping"}')
    assert json.loads(await ws.receive_from(timeout=2))["events"] == [event(3), event(4)]
    assert json.loads(await ws.receive_from(timeout=2)) == {"type": "pong", "seq": 4}
    # Nothing new: a pong only. A live batch arriving late is not sent again.
    await get_channel_layer().group_send(run_group(run.pk), batch_message([event(3), event(4)]))
    await ws.send_to(text_data='{"type":"ping"}')
    assert json.loads(await ws.receive_from(timeout=2)) == {"type": "pong", "seq": 4}
    assert await ws.receive_nothing(timeout=0.1)
    await ws.disconnect()


async def test_without_the_channel_layer_the_backlog_is_sent_then_the_client_told_to_return(
    alice, monkeypatch
):
    run = await make_run(alice, recorded=3)

    async def unreachable(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(get_channel_layer(), "group_add", unreachable)
    monkeypatch.setattr(get_channel_layer(), "group_discard", unreachable)
    ws, connected = await connect(
        f"/ws/runs/{run.pk}/?after=1", (b"cookie", await session_cookie(alice))
    )
    assert connected
    message = json.loads(await ws.receive_from(timeout=2))
    assert [e["seq"] for e in message["events"]] == [2, 3]
    assert await ws.receive_output(timeout=2) == {"type": "websocket.close", "code": 4503}


async def test_a_channel_layer_failing_under_an_open_socket_closes_it_for_a_reconnect(
    alice, monkeypatch
):
    run = await make_run(alice, recorded=1)
    layer = get_channel_layer()
    down = asyncio.Event()

    async def receive_until_down(channel):
        await down.wait()
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(layer, "receive", receive_until_down)
    ws, _ = await connect(f"/ws/runs/{run.pk}/", (b"cookie", await session_cookie(alice)))
    assert await received_seqs(ws, 1) == [1]
    down.set()
    assert await ws.receive_output(timeout=2) == {"type": "websocket.close", "code": 4503}
