"""Body caps in the ASGI application (webapp/bodylimit.py): a body over its cap gets a 413
while it arrives, whether its length is declared or not, and the rest is never read."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import ApplicationCommunicator

from webapp.accounts.models import ApiToken
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = b" " * 10_000


def http_scope(path: str, *headers: tuple[bytes, bytes]) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


@pytest.fixture
def token(alice) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {ApiToken.issue(alice, 'tests')[1]}".encode())


async def response_of(communicator: ApplicationCommunicator) -> tuple[int, dict, bytes]:
    start = await communicator.receive_output(timeout=5)
    assert start["type"] == "http.response.start"
    body = b""
    async with asyncio.timeout(30):  # a body that never ends fails here, not at pytest-timeout
        while True:
            message = await communicator.receive_output(timeout=5)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    return start["status"], dict(start["headers"]), body


async def test_a_chunked_api_body_over_the_cap_gets_a_413_problem_not_a_500(settings, token):
    settings.API_MAX_BODY_BYTES = 50_000
    # No Content-Length: the size shows only as the body arrives. Six chunks pass the cap;
    # the body has not ended (more_body), and the answer must not wait for its end.
    communicator = ApplicationCommunicator(
        application, http_scope("/api/flows", token, (b"content-type", b"application/json"))
    )
    for _ in range(6):
        await communicator.send_input({"type": "http.request", "body": CHUNK, "more_body": True})
    status, headers, body = await response_of(communicator)
    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == "body_too_large"
    assert problem["detail"] == "request body is over 50,000 bytes; the limit is 50,000"
    await communicator.wait(timeout=5)


async def test_a_declared_length_over_the_cap_is_refused_before_any_body_is_read(settings):
    settings.API_MAX_BODY_BYTES = 50_000
    communicator = ApplicationCommunicator(
        application, http_scope("/api/flows", (b"content-length", b"100000000"))
    )
    # Not one byte of the body is sent.
    status, _, body = await response_of(communicator)
    assert status == 413
    assert json.loads(body)["detail"] == "request body is 100,000,000 bytes; the limit is 50,000"
    await communicator.wait(timeout=5)


async def test_a_page_body_over_its_own_cap_is_refused_as_it_arrives(settings):
    settings.API_MAX_BODY_BYTES = 10_000
    settings.MAX_BODY_BYTES = 20_000
    limit = 10_000 + 1_000_000  # never below the API's cap plus the import page's slack
    communicator = ApplicationCommunicator(application, http_scope("/flows/import/"))
    for _ in range(limit // len(CHUNK) + 1):
        await communicator.send_input({"type": "http.request", "body": CHUNK, "more_body": True})
    status, headers, body = await response_of(communicator)
    assert status == 413
    assert headers[b"content-type"].startswith(b"text/plain")
    assert f"the limit is {limit:,}".encode() in body
    await communicator.wait(timeout=5)
