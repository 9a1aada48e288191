"""The websocket Origin check: the socket's own origin (scheme, host and port) or a trusted
one, as Django's CSRF check judges a form post (webapp/sockets.py)."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from webapp.asgi import application
from webapp.flows import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flow_path(alice) -> str:
    flow = services.create(alice, "Origins", services.starter_graph("Origins"))
    return f"/ws/flows/{flow.pk}/"


@pytest.fixture
def cookie(alice) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(alice)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def opens(path: str, cookie: tuple[bytes, bytes], origin: str, host: str, *extra) -> bool:
    headers = [(b"origin", origin.encode()), (b"host", host.encode()), cookie, *extra]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port: another site
        "http://127.0.0.1",  # the default port, 80
        "https://127.0.0.1:8000",  # the same host and port over another scheme
        "http://localhost:8000",  # an allowed host, but not the one connected to
    ],
)
async def test_an_origin_differing_in_scheme_host_or_port_is_refused(flow_path, cookie, origin):
    assert await opens(flow_path, cookie, "http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not await opens(flow_path, cookie, origin, "127.0.0.1:8000")


async def test_behind_a_tls_proxy_only_the_https_origin_is_the_sockets_own(
    flow_path, cookie, settings
):
    settings.ALLOWED_HOSTS = ["switchyard.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = (b"x-forwarded-proto", b"https")
    host = "switchyard.example.com"
    assert await opens(flow_path, cookie, "https://switchyard.example.com", host, proxied)
    assert not await opens(flow_path, cookie, "http://switchyard.example.com", host, proxied)
    assert not await opens(flow_path, cookie, "https://switchyard.example.com", host)


async def test_trusted_origins_admit_exactly_their_scheme_host_and_port(
    flow_path, cookie, settings
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.org"]
    host = "127.0.0.1:8000"
    assert await opens(flow_path, cookie, "https://app.example.com", host)
    assert await opens(flow_path, cookie, "https://team.example.org", host)
    assert not await opens(flow_path, cookie, "http://app.example.com", host)
    assert not await opens(flow_path, cookie, "https://app.example.com:8443", host)
    assert not await opens(flow_path, cookie, "http://team.example.org", host)
    assert not await opens(flow_path, cookie, "https://app.example.com.evil.test", host)
