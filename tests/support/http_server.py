"""A real HTTP server on 127.0.0.1 for tests of the ``http`` node: it records every request
and answers from a table of routes. No mocks: the node's guarded client talks to it over a
socket, as it would to an API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain; charset=utf-8"),)


def json_reply(value: object, status: int = 200, **headers: str) -> Reply:
    extra = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Reply(status, json.dumps(value).encode(), (("Content-Type", "application/json"), *extra))


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status, b"", (("Location", location),))


Route = Callable[[Seen], Reply]


@dataclass
class Server:
    port: int
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[Server]:
    """Serve ``routes`` (by path, without the query) until the block ends; 404 otherwise."""
    holder: list[Server] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def date_time_string(self, timestamp: float | None = None) -> str:
            # A fixed Date: two runs of one flow against the stand-in compare equal even
            # when a second boundary falls between them.
            return "Thu, 01 Jan 2026 00:00:00 GMT"

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            holder[0].seen.append(seen)
            route = routes.get(self.path.split("?")[0])
            reply = route(seen) if route else Reply(404, b"not found")
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            # A client that gave up (a timeout test) has closed its end; that is the point.
            with suppress(BrokenPipeError, ConnectionResetError):
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_one

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    holder.append(Server(port=httpd.server_address[1]))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()


REPOSITORY = {
    "full_name": "python/cpython",
    "stargazers_count": 65000,
    "language": "Python",
    "description": "The Python programming language",
    "forks_count": 31000,
    "owner": {"login": "python", "id": 1525981},
}


@contextmanager
def github_stand_in() -> Iterator[Server]:
    """A stand-in for the part of the GitHub API ``examples/http.json`` calls."""

    def repository(seen: Seen) -> Reply:
        if seen.headers.get("accept") != "application/vnd.github+json":
            return json_reply({"message": "send Accept: application/vnd.github+json"}, 415)
        return json_reply(REPOSITORY)

    with serve({"/repos/python/cpython": repository}) as server:
        yield server
