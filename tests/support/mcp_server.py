"""A real MCP server for tests: the official SDK's ``MCPServer`` (FastMCP's successor) over
Streamable HTTP, served by uvicorn on 127.0.0.1 in a thread of the test process.

Its tools: ``echo`` (says its text back), ``add``, ``fail`` (raises: a tool error result),
``hang`` (never answers), ``big`` (returns N bytes of text), ``whoami`` (returns the
Authorization header of the request that called it: a server echoing a secret) and ``deny``
(an error result quoting the headers it got).
``requests`` records each HTTP request's method and headers (and, for a POST, the
JSON-RPC ``rpc`` method it carries), so a test can see what a client sent: ``rpcs("initialize")``
counts handshakes, ``deletes()`` the sessions clients closed. ``forget()`` makes the server
answer 404 to every session it had, as one that restarted would.

    with McpTestServer() as server:
        server.url  # http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from tests.support.wait import wait_for


class McpTestServer:
    def __init__(self, *, json_response: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorization: str | None = None
        self.forgotten: set[str] = set()
        app = MCPServer("test-tools", log_level="WARNING")

        @app.tool(description="Say the text back.")
        def echo(text: str) -> str:
            return f"echo: {text}"

        @app.tool(description="Add two integers.")
        def add(a: int, b: int) -> int:
            return a + b

        @app.tool(description="Always fails.")
        def fail(reason: str = "it broke") -> str:
            raise ToolError(f"the tool failed: {reason}")

        @app.tool(description="Never answers.")
        async def hang() -> str:
            await asyncio.sleep(3600)
            return "never"

        @app.tool(description="Return size bytes of text.")
        def big(size: int) -> str:
            return "x" * size

        @app.tool(description="Tell who called (the Authorization header it got).")
        def whoami() -> str:
            return f"you sent {self.authorization}"

        @app.tool(description="Refuse, quoting the headers of the request that called it.")
        def deny() -> str:
            raise ToolError(f"not allowed for {self.requests[-1]['headers']}")

        # json_response: answers as one JSON body rather than an SSE stream.
        inner = app.streamable_http_app(stateless_http=False, json_response=json_response)

        async def recording(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                entry: dict[str, Any] = {"method": scope["method"], "headers": headers}
                if scope["method"] == "POST":
                    receive, entry["rpc"] = await _peek_rpc(receive)
                self.requests.append(entry)
                if "authorization" in headers:
                    self.authorization = headers["authorization"]
                if headers.get("mcp-session-id") in self.forgotten:
                    await _not_found(send)
                    return
            await inner(scope, receive, send)

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        config = uvicorn.Config(
            recording,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        # The inner app's lifespan starts the SDK's session manager.
        config.app = _Lifespan(recording, inner)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, daemon=True, name="mcp-test-server")

    def rpcs(self, method: str) -> list[dict[str, Any]]:
        """The POSTs that carried JSON-RPC `method` (``initialize``, ``tools/call``...)."""
        return [r for r in self.requests if r.get("rpc") == method]

    def deletes(self) -> list[str]:
        """The session ids clients closed (DELETE)."""
        return [
            r["headers"].get("mcp-session-id", "") for r in self.requests if r["method"] == "DELETE"
        ]

    def sessions(self) -> set[str]:
        """Every session id a client has used."""
        return {
            r["headers"]["mcp-session-id"]
            for r in self.requests
            if "mcp-session-id" in r["headers"]
        }

    def forget(self) -> None:
        """Answer 404 to the sessions opened so far, as a restarted server does."""
        self.forgotten |= self.sessions()

    def _serve(self) -> None:
        self.server.run(sockets=[self.sock])

    def __enter__(self) -> McpTestServer:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, message="the MCP test server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class _Lifespan:
    """Requests to `app`, lifespan events to `inner` (the SDK's app, which has one)."""

    def __init__(self, app: Any, inner: Any):
        self.app = app
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.inner(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _peek_rpc(receive: Any) -> tuple[Any, str | None]:
    """The JSON-RPC method of a request's body, and a receive that replays the body."""
    messages = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    try:
        rpc = json.loads(body).get("method")
    except (ValueError, AttributeError):
        rpc = None

    async def replay() -> Any:
        return messages.pop(0) if messages else await receive()

    return replay, rpc


async def _not_found(send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})
