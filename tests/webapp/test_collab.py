"""The flow socket: who has a flow open (live, across tabs) and every save, as it commits."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from webapp.asgi import application
from webapp.flows import services
from webapp.flows.collab import presence
from webapp.flows.models import Presence
from webapp.teams.models import Membership, Role

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")


@sync_to_async
def cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def open_flow(flow_id: int, user=None, *headers) -> tuple[WebsocketCommunicator, bool]:
    extra = [await cookie(user)] if user is not None else []
    ws = WebsocketCommunicator(
        application, f"/ws/flows/{flow_id}/", headers=[ORIGIN, HOST, *extra, *headers]
    )
    connected, _ = await ws.connect()
    return ws, connected


async def until(ws: WebsocketCommunicator, kind: str, test=lambda m: True) -> dict[str, Any]:
    """The next message of this type that passes `test`, skipping the others."""
    async with asyncio.timeout(30):  # other messages forever fail here
        while True:
            message = json.loads(await ws.receive_from(timeout=3))
            if message["type"] == kind and test(message):
                return message


def names(message: dict[str, Any]) -> list[str]:
    html = message["html"]
    return [part.split('"')[0] for part in html.split('data-username="')[1:]]


async def test_a_viewer_connects_and_hears_the_current_version(carol, team_flow):
    ws, connected = await open_flow(team_flow.pk, carol)
    assert connected
    assert (await until(ws, "hello"))["version"] == 1
    assert names(await until(ws, "presence")) == []
    await ws.disconnect()


async def test_strangers_and_anonymous_are_refused_like_a_missing_flow(dave, team_flow):
    _, stranger = await open_flow(team_flow.pk, dave)
    _, missing = await open_flow(999_999, dave)
    _, anonymous = await open_flow(team_flow.pk)
    assert (stranger, missing, anonymous) == (False, False, False)


async def test_a_bearer_token_opens_the_flow_socket(alice, alice_token, team_flow):
    ws, connected = await open_flow(
        team_flow.pk, None, (b"authorization", f"Bearer {alice_token}".encode())
    )
    assert connected
    await ws.disconnect()


async def test_everyone_sees_who_else_is_here_and_tabs_of_one_user_count_once(
    alice, bob, carol, team_flow
):
    alice_ws, _ = await open_flow(team_flow.pk, alice)
    bob_tab1, _ = await open_flow(team_flow.pk, bob)
    assert names(await until(alice_ws, "presence", lambda m: "bob" in m["html"])) == ["bob"]
    bob_tab2, _ = await open_flow(team_flow.pk, bob)
    carol_ws, _ = await open_flow(team_flow.pk, carol)
    seen = await until(alice_ws, "presence", lambda m: "carol" in m["html"])
    assert names(seen) == ["bob", "carol"]
    assert 'title="carol (viewer)"' in seen["html"]
    # Bob sees the others, never himself.
    assert names(await until(bob_tab2, "presence", lambda m: "carol" in m["html"])) == [
        "alice",
        "carol",
    ]
    # One of bob's tabs closing leaves him here; the last one takes him away.
    await bob_tab1.disconnect()
    assert names(await until(alice_ws, "presence")) == ["bob", "carol"]
    await bob_tab2.disconnect()
    assert names(await until(alice_ws, "presence")) == ["carol"]
    await carol_ws.disconnect()
    await alice_ws.disconnect()
    assert await sync_to_async(Presence.objects.count)() == 0


async def test_a_save_is_announced_to_everyone_on_the_flow_after_it_commits(
    alice, bob, carol, team_flow
):
    carol_ws, _ = await open_flow(team_flow.pk, carol)
    alice_ws, _ = await open_flow(team_flow.pk, alice)
    graph = services.starter_graph("Team flow", output_name="answer")
    await sync_to_async(services.save)(team_flow, bob, graph, 1, message="rename the output")
    expected = {"type": "saved", "version": 2, "author": "bob", "message": "rename the output"}
    assert await until(carol_ws, "saved") == expected
    assert await until(alice_ws, "saved") == expected
    await carol_ws.disconnect()
    await alice_ws.disconnect()


async def test_a_refused_stale_save_announces_nothing(alice, bob, team_flow):
    ws, _ = await open_flow(team_flow.pk, alice)
    await until(ws, "presence")
    graph = services.starter_graph("Team flow", output_name="answer")
    await sync_to_async(services.save)(team_flow, alice, graph, 1)
    assert (await until(ws, "saved"))["version"] == 2
    with pytest.raises(services.StaleVersion):
        await sync_to_async(services.save)(team_flow, bob, graph, 1)
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_role_change_is_told_to_the_user_and_shown_to_the_others(
    alice, bob, team, team_flow
):
    alice_ws, _ = await open_flow(team_flow.pk, alice)
    bob_ws, _ = await open_flow(team_flow.pk, bob)
    await until(alice_ws, "presence", lambda m: "bob (editor)" in m["html"])

    def demote() -> None:
        membership = Membership.objects.get(team=team, user=bob)
        membership.role = Role.VIEWER
        membership.save()

    await sync_to_async(demote)()
    assert await until(bob_ws, "role") == {"type": "role", "role": "viewer"}
    await until(alice_ws, "presence", lambda m: "bob (viewer)" in m["html"])
    await bob_ws.disconnect()
    await alice_ws.disconnect()


async def test_oversized_and_flooding_frames_close_the_flow_socket(alice, team_flow):
    ws, _ = await open_flow(team_flow.pk, alice)
    await ws.send_to(text_data="x" * 5000)
    while (output := await ws.receive_output(timeout=2))["type"] != "websocket.close":
        pass
    assert output["code"] == 1009
    ws, _ = await open_flow(team_flow.pk, alice)
    for _ in range(25):
        await ws.send_to(text_data='{"type":"ping"}')
    pongs = 0
    while (output := await ws.receive_output(timeout=2))["type"] != "websocket.close":
        pongs += json.loads(output["text"])["type"] == "pong"
    assert output["code"] == 1008 and pongs == 20
    assert await sync_to_async(Presence.objects.count)() == 0


def test_rows_of_a_process_that_died_expire_and_the_next_heartbeat_clears_them(
    alice, bob, team_flow
):
    presence.join(team_flow.pk, alice, "owner", "alive")
    presence.join(team_flow.pk, bob, "editor", "dead")
    old = timezone.now() - dt.timedelta(seconds=presence.EXPIRY_S + 1)
    Presence.objects.filter(channel_name="dead").update(seen=old)
    assert [p.username for p in presence.present(team_flow.pk)] == ["alice"]
    assert presence.heartbeat(team_flow.pk, alice, "owner", "alive") is True
    assert list(Presence.objects.values_list("channel_name", flat=True)) == ["alive"]
    assert presence.heartbeat(team_flow.pk, alice, "owner", "alive") is False


def test_a_socket_taken_for_dead_comes_back_on_its_next_heartbeat(alice, team_flow):
    presence.join(team_flow.pk, alice, "owner", "slow")
    Presence.objects.all().delete()
    assert presence.heartbeat(team_flow.pk, alice, "owner", "slow") is True
    assert [p.username for p in presence.present(team_flow.pk)] == ["alice"]
