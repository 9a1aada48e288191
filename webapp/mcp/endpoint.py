"""``/mcp``: the MCP server's HTTP endpoint (Streamable HTTP), beside Django in the ASGI app.

What a request meets, in order (each refusal is a JSON-RPC error body, which the SDK's
client reports as the error, with the HTTP status):

1. **DNS-rebinding protection**, as the MCP spec asks: the ``Host`` must be one of
   ``ALLOWED_HOSTS`` (Django's rule, 400 otherwise), and an ``Origin``, when a browser sends
   one, must be the server's own or one of ``CSRF_TRUSTED_ORIGINS``, exactly as for the
   websockets (``webapp.sockets.origin_matches``; 403 otherwise). Programs send no Origin.
2. **An API token**: ``Authorization: Bearer <token>``. None, or one that matches nothing
   (revoked, its user deleted or inactive): 401 with ``WWW-Authenticate: Bearer``. Unknown
   tokens count against the client address like the API's (``accounts/throttle.py``); a
   locked address gets 429 with ``Retry-After`` whatever token it sends. The token is
   looked up on every request, so revoking it stops the next one.
3. POST only (405 otherwise: a stateless server has no stream to GET, no session to
   DELETE), then the SDK's ``StreamableHTTPSessionManager`` with the user in the scope
   (``server.py``).

Every answer gets ``HEADERS`` (a policy that allows nothing, ``nosniff``, ``no-store``):
Django's middleware, which adds them to its own answers, never sees these.

**Stateless, JSON responses.** Each POST carries one JSON-RPC message and gets its answer
as one JSON body; the server keeps no session between requests. Why: several Daphne
processes behind a load balancer (README, "Scale-out") can each answer any request, with
no session affinity and nothing lost when a process restarts; a session would hold
nothing of ours anyway (the tools are read from the database on each list, a call's state
is its run, in the database). What it costs: no server-to-client requests or progress
notifications during a call, which our tools do not need (the run's URL and its event
stream, ``/api/runs/{id}/stream``, show progress), and a call's answer comes only once
the run ends or the wait (``MCP_WAIT_S``) does, so a proxy in front must allow that long a
quiet read. Protocol revisions from 2026-07-28 are
stateless by design and take the SDK's own path for them, with the same checks before it.

**Lifecycle.** The manager runs inside its ``run()`` context, which a server starts from
its ASGI lifespan; Daphne has none. So the first request starts it, as a task on the
server's own loop, and later requests wait for that start; under Daphne a Twisted
"before shutdown" trigger leaves the context (cancelling calls still waiting) before the
loop stops, so nothing is left pending. A manager runs once, so a new loop (a test's
server) gets a new one.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST

from webapp.accounts import throttle
from webapp.accounts.tokens import bearer, user_for_bearer
from webapp.mcp import server
from webapp.sockets import origin_matches

PATHS = ("/mcp", "/mcp/")
REALM = 'Bearer realm="switchyard"'

log = logging.getLogger(__name__)

Scope = dict[str, Any]


def handles(path: str) -> bool:
    return path in PATHS


@dataclass
class Refusal:
    """An answer instead of the MCP server's: a JSON-RPC error, which the SDK's client
    reports as such (its message), with an HTTP status and headers."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, send: Any) -> None:
        error = {"code": INVALID_REQUEST, "message": self.message}
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
        headers = {**self.headers, "content-type": "application/json"}
        headers["content-length"] = str(len(body))
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass
class _Running:
    loop: asyncio.AbstractEventLoop
    manager: StreamableHTTPSessionManager
    started: asyncio.Future[None]
    stop: asyncio.Event
    task: asyncio.Task[None]


class Endpoint:
    """The ASGI application for ``/mcp``."""

    def __init__(self) -> None:
        self._running: _Running | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        send = with_headers(send)
        user = await self.admit(scope)
        if isinstance(user, Refusal):
            return await user.send(send)
        if scope["method"] != "POST":
            # Stateless: no stream of server messages to GET, no session to DELETE. The
            # SDK would hold a GET open, sending nothing, for as long as the client liked.
            message = "the MCP server takes POST only (stateless Streamable HTTP)"
            return await Refusal(405, message, {"allow": "POST"}).send(send)
        manager = await self.manager()
        # One database thread per request for the ORM calls the handlers make, as Django
        # gives its own async views.
        async with ThreadSensitiveContext():
            await manager.handle_request({**scope, server.USER_KEY: user}, receive, send)

    async def admit(self, scope: Scope) -> Any:
        """The user the request's token belongs to, or the Refusal to answer with."""
        request = ASGIRequest(scope, io.BytesIO())
        try:
            request.get_host()
        except DisallowedHost:
            return Refusal(400, "invalid Host header: not one of ALLOWED_HOSTS")
        origins = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"origin"]
        if len(origins) > 1 or (origins and not origin_matches(origins[0], request)):
            return Refusal(403, "this Origin may not call the MCP server")
        raw = bearer(request.headers.get("Authorization"))
        if not raw:
            message = "an API token is required: Authorization: Bearer <token>"
            return Refusal(401, message, {"www-authenticate": REALM})
        address = throttle.scope_address(scope)
        try:
            user = await database_sync_to_async(user_for_bearer)(raw, address)
        except throttle.Throttled as exc:
            return Refusal(429, exc.api_detail, {"retry-after": str(exc.retry_after)})
        if user is None:
            challenge = f'{REALM}, error="invalid_token", error_description="unknown or revoked"'
            return Refusal(401, "unknown or revoked API token", {"www-authenticate": challenge})
        return user

    async def manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        running = self._running
        if running is None or running.loop is not loop or running.task.done():
            running = self._running = self._start(loop)
        await asyncio.shield(running.started)
        return running.manager

    def _start(self, loop: asyncio.AbstractEventLoop) -> _Running:
        manager = StreamableHTTPSessionManager(
            app=server.build(),
            stateless=True,
            json_response=True,
            max_request_body_size=settings.API_MAX_BODY_BYTES,
        )
        started: asyncio.Future[None] = loop.create_future()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                async with manager.run():
                    started.set_result(None)
                    await stop.wait()
                log.info("MCP server stopped")
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        # Its own context: the request that happens to start it ends long before it does.
        task = loop.create_task(serve(), context=contextvars.Context())
        running = _Running(loop, manager, started, stop, task)
        _stop_before_shutdown(running)
        return running


# Django's middleware never sees these answers: they get what a JSON answer needs of it.
HEADERS = {
    b"content-security-policy": b"default-src 'none'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"cache-control": b"no-store",
}


def with_headers(send: Any) -> Any:
    """`send`, adding ``HEADERS`` (those the answer lacks) to the response's start."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(k, v) for k, v in HEADERS.items() if k not in present]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _stop_before_shutdown(running: _Running) -> None:
    """Under Daphne, leave the manager's context before the reactor stops the loop."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under Twisted: importing the reactor would install one
    from twisted.internet import defer, reactor

    def stop() -> defer.Deferred[None] | None:
        if running.task.done():
            return None
        running.stop.set()
        return defer.Deferred.fromFuture(running.task)

    reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[attr-defined]


endpoint = Endpoint()
