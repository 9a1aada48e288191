"""Removing someone's access to a flow closes their open sockets to it within seconds:
the run event socket and the flow socket, with code 4403. Access that stays keeps them."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from webapp.asgi import application
from webapp.flows import services
from webapp.flows.models import Flow, FlowShare
from webapp.flows.sharing import service as sharing
from webapp.runs.models import Run
from webapp.teams.models import Membership, Role, Team

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")
CLOSED_FOR_ACCESS = {"type": "websocket.close", "code": 4403}


@sync_to_async
def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def watch(path: str, user) -> WebsocketCommunicator:
    client = await client_for(user)
    session = f"sessionid={client.cookies['sessionid'].value}".encode()
    ws = WebsocketCommunicator(application, path, headers=[ORIGIN, HOST, (b"cookie", session)])
    connected, _ = await ws.connect()
    assert connected, f"{user} could not open {path}"
    return ws


async def watch_run(run: Run, user) -> WebsocketCommunicator:
    return await watch(f"/ws/runs/{run.pk}/", user)


async def watch_flow(flow: Flow, user) -> WebsocketCommunicator:
    return await watch(f"/ws/flows/{flow.pk}/", user)


async def closed(ws: WebsocketCommunicator) -> dict:
    """The socket's close, skipping whatever it sent before; fails after a few seconds."""
    while (output := await ws.receive_output(timeout=3))["type"] != "websocket.close":
        pass
    return output


async def still_open(ws: WebsocketCommunicator) -> bool:
    """Open: it answers a ping (the run socket with a pong, the flow socket too)."""
    await ws.send_to(text_data='{"type":"ping"}')
    async with asyncio.timeout(30):  # other messages forever fail here
        while True:
            output = await ws.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                return False
            if json.loads(output["text"]).get("type") == "pong":
                return True


@pytest.fixture
def run(team_flow, alice) -> Run:
    return Run.objects.create(flow=team_flow, flow_version=team_flow.current(), started_by=alice)


@pytest.fixture
def other_team(dave) -> Team:
    team = Team.objects.create(name="Elsewhere")
    Membership.objects.create(team=team, user=dave, role=Role.OWNER)
    return team


async def test_removing_bob_from_the_team_closes_his_run_socket(alice, bob, team, run):
    ws = await watch_run(run, bob)
    owner = await client_for(alice)
    response = await sync_to_async(owner.post)(f"/teams/{team.pk}/members/{bob.pk}/remove/")
    assert response.status_code == 302
    assert await closed(ws) == CLOSED_FOR_ACCESS


async def test_removing_bob_closes_his_flow_socket_too(alice, bob, team, team_flow):
    ws = await watch_flow(team_flow, bob)
    await sync_to_async(Membership.objects.filter(team=team, user=bob).delete)()
    assert await closed(ws) == CLOSED_FOR_ACCESS


async def test_carols_role_change_to_editor_keeps_her_sockets_open(
    alice, carol, team, team_flow, run
):
    run_ws = await watch_run(run, carol)
    flow_ws = await watch_flow(team_flow, carol)
    owner = await client_for(alice)
    response = await sync_to_async(owner.post)(
        f"/teams/{team.pk}/members/{carol.pk}/role/", {"role": "editor"}
    )
    assert response.status_code == 302
    assert await sync_to_async(Membership.objects.get)(team=team, user=carol) is not None
    assert await still_open(run_ws) and await still_open(flow_ws)
    await run_ws.disconnect()
    await flow_ws.disconnect()


async def test_only_the_removed_member_is_closed(alice, bob, carol, team, run):
    bob_ws = await watch_run(run, bob)
    carol_ws = await watch_run(run, carol)
    alice_ws = await watch_run(run, alice)
    await sync_to_async(Membership.objects.filter(team=team, user=bob).delete)()
    assert await closed(bob_ws) == CLOSED_FOR_ACCESS
    assert await still_open(carol_ws) and await still_open(alice_ws)
    await carol_ws.disconnect()
    await alice_ws.disconnect()


async def test_removing_a_share_closes_daves_sockets(alice, dave, team_flow, run):
    share = await sync_to_async(FlowShare.objects.create)(
        flow=team_flow,
        user=dave,
        invitee="dave",
        role=FlowShare.Role.VIEWER,
        created_by=alice,
        accepted_at=timezone.now(),
    )
    run_ws = await watch_run(run, dave)
    flow_ws = await watch_flow(team_flow, dave)
    owner = await client_for(alice)
    response = await sync_to_async(owner.post)(f"/flows/{team_flow.pk}/shares/{share.pk}/remove/")
    assert response.status_code == 200
    assert await closed(run_ws) == CLOSED_FOR_ACCESS
    assert await closed(flow_ws) == CLOSED_FOR_ACCESS


async def test_changing_a_share_keeps_the_socket_and_a_team_share_removed_closes_it(
    alice, dave, team_flow, run, other_team
):
    share = await sync_to_async(FlowShare.objects.create)(
        flow=team_flow, team=other_team, role=FlowShare.Role.VIEWER, created_by=alice
    )
    ws = await watch_run(run, dave)
    await sync_to_async(sharing.change_share)(share, FlowShare.Role.EDITOR)
    assert await still_open(ws)
    await sync_to_async(sharing.remove_share)(share)
    assert await closed(ws) == CLOSED_FOR_ACCESS


async def test_leaving_the_team_that_a_flow_is_shared_with_closes_the_socket(
    alice, dave, charlie, team_flow, run, other_team
):
    await sync_to_async(Membership.objects.create)(team=other_team, user=charlie, role=Role.VIEWER)
    await sync_to_async(FlowShare.objects.create)(
        flow=team_flow, team=other_team, role=FlowShare.Role.VIEWER, created_by=alice
    )
    ws = await watch_run(run, charlie)
    await sync_to_async(Membership.objects.filter(team=other_team, user=charlie).delete)()
    assert await closed(ws) == CLOSED_FOR_ACCESS


async def test_transferring_the_flow_out_of_the_team_closes_the_members_sockets(
    alice, bob, team_flow, run
):
    bob_ws = await watch_run(run, bob)
    alice_ws = await watch_flow(team_flow, alice)
    await sync_to_async(sharing.transfer_to_user)(team_flow, alice, "alice")
    assert await closed(bob_ws) == CLOSED_FOR_ACCESS
    # Alice owns it now in her personal space: she keeps hers.
    assert await still_open(alice_ws)
    await alice_ws.disconnect()


async def test_moving_the_flow_to_another_team_closes_the_old_teams_sockets(
    alice, bob, dave, team_flow, run
):
    elsewhere = await sync_to_async(Team.objects.create)(name="Elsewhere")
    await sync_to_async(Membership.objects.create)(team=elsewhere, user=alice, role=Role.OWNER)
    ws = await watch_flow(team_flow, bob)
    await sync_to_async(sharing.transfer_to_team)(team_flow, alice, elsewhere.pk)
    assert await closed(ws) == CLOSED_FOR_ACCESS


async def test_deleting_the_flow_closes_every_socket_to_it(alice, bob, team_flow):
    bob_ws = await watch_flow(team_flow, bob)
    alice_ws = await watch_flow(team_flow, alice)
    flow = await sync_to_async(Flow.objects.get)(pk=team_flow.pk)
    await sync_to_async(flow.delete)()
    assert await closed(bob_ws) == CLOSED_FOR_ACCESS
    assert await closed(alice_ws) == CLOSED_FOR_ACCESS


async def test_a_save_does_not_disturb_the_watchers(alice, bob, team_flow, run):
    ws = await watch_run(run, bob)
    graph = services.starter_graph("Team flow", output_name="answer")
    await sync_to_async(services.save)(team_flow, alice, graph, 1)
    assert await still_open(ws)
    await ws.disconnect()


async def test_deleting_the_team_closes_its_members_sockets(alice, bob, team, run):
    ws = await watch_run(run, bob)
    owner = await client_for(alice)
    response = await sync_to_async(owner.post)(f"/teams/{team.pk}/delete/")
    assert response.status_code == 302
    assert await closed(ws) == CLOSED_FOR_ACCESS
