"""Sockets close with 4401 when the credential that opened them goes: a revoked API token,
a logged-out session (webapp/accounts/revocation.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from webapp.accounts.models import ApiToken
from webapp.asgi import application
from webapp.flows import services
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

BROWSER = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
SIGNED_OUT = 4401


@pytest.fixture
def paths(alice) -> dict[str, str]:
    flow = services.create(alice, "Tokens", services.starter_graph("Tokens"))
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)
    return {"run": f"/ws/runs/{run.pk}/", "flow": f"/ws/flows/{flow.pk}/"}


async def open_socket(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[*BROWSER, *headers])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def closed_with(communicator: WebsocketCommunicator) -> int:
    """The code the server closed with (what it sent before is skipped)."""
    while (output := await communicator.receive_output(timeout=3))["type"] != "websocket.close":
        pass
    return output["code"]


def bearer(raw: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {raw}".encode())


@sync_to_async
def revoke_in_settings(user, raw_token: str) -> None:
    """Revoke as the owner does, from the settings page."""
    client = Client()
    client.force_login(user)
    token = ApiToken.objects.get(user=user, hint=raw_token[:10])
    response = client.post(f"/settings/tokens/{token.pk}/revoke/")
    assert response.status_code == 302


@pytest.mark.parametrize("socket", ["run", "flow"])
async def test_revoking_a_token_closes_the_sockets_it_opened_with_4401(
    socket, paths, alice, alice_token
):
    communicator = await open_socket(paths[socket], bearer(alice_token))
    await revoke_in_settings(alice, alice_token)
    assert await closed_with(communicator) == SIGNED_OUT


async def test_revoking_one_token_leaves_the_sockets_of_another_open(paths, alice, alice_token):
    other = await sync_to_async(lambda: ApiToken.issue(alice, "other")[1])()
    kept = await open_socket(paths["run"], bearer(other))
    gone = await open_socket(paths["run"], bearer(alice_token))
    await revoke_in_settings(alice, alice_token)
    assert await closed_with(gone) == SIGNED_OUT
    await kept.send_to(text_data='{"type":"ping"}')
    assert (await kept.receive_json_from(timeout=2))["type"] == "pong"
    await kept.disconnect()


@pytest.mark.parametrize("socket", ["run", "flow"])
async def test_logging_out_closes_the_sockets_of_that_session_with_4401(socket, paths, alice):
    session, other_session = Client(), Client()
    await sync_to_async(session.force_login)(alice)
    await sync_to_async(other_session.force_login)(alice)
    cookie = (b"cookie", f"sessionid={session.cookies['sessionid'].value}".encode())
    other_cookie = (b"cookie", f"sessionid={other_session.cookies['sessionid'].value}".encode())
    communicator = await open_socket(paths[socket], cookie)
    elsewhere = await open_socket(paths[socket], other_cookie)
    response = await sync_to_async(session.post)("/logout/")
    assert response.status_code == 302
    assert await closed_with(communicator) == SIGNED_OUT
    # Another browser of the same user stays signed in, and so does its socket.
    await elsewhere.send_to(text_data='{"type":"ping"}')
    while (await elsewhere.receive_json_from(timeout=2)).get("type") != "pong":
        pass
    await elsewhere.disconnect()
