"""Edges of the real server: a Daphne process, its sockets and its request bodies.

What only shows under Daphne itself (the in-process communicator never sees it): the
close codes it lets a consumer send (1008, 1009), what an unknown socket path does, and
whether a body over its cap is answered before the client has finished sending it. Every
test also checks that nothing it did left a traceback in the server's log.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.services import HOST, DaphneServer
from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.flows.services import starter_graph
from webapp.runs.models import Run

API_CAP = 100_000
RUN_FILES_CAP = 200_000


@dataclass
class Live:
    server: DaphneServer
    token: str
    paths: dict[str, str]
    log_from: int = 0

    def new_log(self) -> str:
        return self.server.process.log()[self.log_from :]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, django_db_blocker) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("daphne")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SWITCHYARD_API_MAX_BODY_BYTES": str(API_CAP),
        "SWITCHYARD_RUN_FILES_MAX_BYTES": str(RUN_FILES_CAP),
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    server = DaphneServer(env, folder / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")

    def world() -> dict:
        user = get_user_model().objects.create_user("alice", password="x")
        flow = services.create(user, "Edges", starter_graph("Edges"))
        run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=user)
        return {"token": ApiToken.issue(user, "t")[1], "flow": flow.pk, "run": run.pk}

    ids = server.orm(world)
    paths = {"run": f"/ws/runs/{ids['run']}/", "flow": f"/ws/flows/{ids['flow']}/"}
    server.start()
    yield Live(server, ids["token"], paths)
    server.stop()


@pytest.fixture
def edges(live: Live) -> Iterator[Live]:
    live.log_from = len(live.server.process.log())
    yield live
    time.sleep(0.3)  # the server logs an application's failure when it reaps it
    assert "Traceback" not in live.new_log(), live.new_log()


def open_socket(live: Live, path: str) -> ClientConnection:
    return connect(
        live.server.ws_url + path,
        origin=live.server.url,
        additional_headers={"Authorization": f"Bearer {live.token}"},
        max_size=None,
        open_timeout=5,
    )


def close_code(ws: ClientConnection) -> int | None:
    """The code of the close frame the server sent, reading until it comes."""
    deadline = time.monotonic() + 30  # frames forever fail here, not at pytest-timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=5)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("the server kept sending frames for 30 s and never closed")


# Sockets


@pytest.mark.parametrize("socket_kind", ["run", "flow"])
def test_an_oversized_frame_closes_the_socket_with_1009_and_no_traceback(edges, socket_kind):
    with open_socket(edges, edges.paths[socket_kind]) as ws:
        ws.send("x" * 5000)  # WS_MAX_FRAME_BYTES is 4096
        assert close_code(ws) == 1009


@pytest.mark.parametrize("socket_kind", ["run", "flow"])
def test_a_flood_of_messages_closes_the_socket_with_1008_and_no_traceback(edges, socket_kind):
    with open_socket(edges, edges.paths[socket_kind]) as ws:
        for _ in range(40):  # WS_MAX_MESSAGES_PER_SECOND is 20
            try:
                ws.send('{"type":"ping"}')
            except ConnectionClosed:
                break
        assert close_code(ws) == 1008


def test_an_unknown_socket_path_closes_with_4404_and_no_traceback(edges):
    with open_socket(edges, "/ws/nowhere/") as ws:
        assert close_code(ws) == 4404


# Bodies


def raw_request(live: Live, head: str) -> socket.socket:
    conn = socket.create_connection((HOST, live.server.port), timeout=5)
    conn.sendall(
        (
            f"{head}\r\nHost: {HOST}:{live.server.port}\r\n"
            f"Authorization: Bearer {live.token}\r\nContent-Type: application/json\r\n"
        ).encode()
    )
    return conn


def response_now(conn: socket.socket, within: float = 5) -> tuple[int, bytes]:
    """The status and body of the answer already on its way (fails if none comes)."""
    conn.settimeout(within)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        assert more, f"closed without an answer: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        more = conn.recv(65536)
        assert more, f"closed {length - len(body)} bytes short of the answer's body"
        body += more
    return int(head.split()[1]), body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def test_a_declared_body_over_the_api_cap_gets_413_before_any_of_it_is_sent(edges):
    conn = raw_request(edges, "POST /api/flows HTTP/1.1")
    conn.sendall(b"Content-Length: 100000000\r\n\r\n")  # 100 MB announced, none sent
    status, body = response_now(conn)
    assert status == 413
    problem = json.loads(body)
    assert problem["code"] == "body_too_large"
    assert problem["detail"] == f"request body is 100,000,000 bytes; the limit is {API_CAP:,}"
    conn.close()


def test_a_chunked_body_over_the_api_cap_gets_413_before_it_ends(edges):
    # Under the cap, a chunked body still reaches the API.
    document = json.dumps({"name": "Chunked", "graph": starter_graph("Chunked")}).encode()
    conn = raw_request(edges, "POST /api/flows HTTP/1.1")
    conn.sendall(b"Transfer-Encoding: chunked\r\n\r\n" + chunk(document) + b"0\r\n\r\n")
    assert response_now(conn)[0] == 201
    conn.close()

    conn = raw_request(edges, "POST /api/flows HTTP/1.1")
    conn.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(API_CAP // 10_000 + 2):
        conn.sendall(chunk(b" " * 10_000))
    # The body has not ended (no last chunk): the answer comes all the same.
    status, body = response_now(conn)
    assert status == 413
    problem = json.loads(body)
    assert problem["detail"] == f"request body is over {API_CAP:,} bytes; the limit is {API_CAP:,}"
    conn.close()


def multipart_request(live: Live, path: str, head: bytes) -> socket.socket:
    conn = socket.create_connection((HOST, live.server.port), timeout=5)
    conn.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{live.server.port}\r\n"
        f"Authorization: Bearer {live.token}\r\n"
        "Content-Type: multipart/form-data; boundary=b0undary\r\n".encode()
        + head
    )
    return conn


def test_a_run_upload_may_pass_the_api_cap_by_its_files_and_no_more(edges):
    runs = f"/api/flows/{edges.paths['flow'].split('/')[3]}/runs"
    upload_cap = API_CAP + RUN_FILES_CAP
    conn = multipart_request(edges, runs, b"Content-Length: 100000000\r\n\r\n")
    status, body = response_now(conn)
    assert status == 413
    assert json.loads(body)["detail"] == (
        f"request body is 100,000,000 bytes; the limit is {upload_cap:,}"
    )
    conn.close()
    # Over the JSON cap but within the upload's: read and parsed, refused by the flow (its
    # starter graph has no file input), not by the body's size.
    part = b"%PDF-1.4\n" + b"x" * (API_CAP + 10_000)
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="doc"; filename="a.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + part + b"\r\n--b0undary--\r\n"
    )
    conn = multipart_request(edges, runs, b"Content-Length: %d\r\n\r\n" % len(body))
    conn.sendall(body)
    status, answer = response_now(conn, within=30)
    assert status == 400, answer
    assert "doc" in answer.decode()
    conn.close()


def test_a_page_body_over_its_cap_gets_413_before_any_of_it_is_sent(edges):
    conn = raw_request(edges, "POST /flows/import/ HTTP/1.1")
    conn.sendall(b"Content-Length: 100000000\r\n\r\n")
    status, body = response_now(conn)
    assert status == 413
    assert body.startswith(b"Request too large: request body is 100,000,000 bytes")
    conn.close()
