"""Websocket authentication by ``Authorization: Bearer`` (the session works as usual).

A token that matches nothing counts against the client's address, as on the API; while
the address is locked (throttle.py) a handshake with a token is refused outright, before
the token is looked at.
"""

from __future__ import annotations

from channels.auth import AuthMiddleware, get_user
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware

from webapp.accounts import throttle
from webapp.accounts.tokens import bearer, user_for_bearer
from webapp.socketdb import socket_db


class BearerAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        raw = bearer(headers.get(b"authorization", b"").decode("latin-1"))
        if raw:
            address = throttle.scope_address(scope)
            try:
                user = await socket_db(user_for_bearer)(raw, address)
            except throttle.Throttled:
                return await WebsocketDenier.as_asgi()(scope, receive, send)
            if user is not None:
                scope = {**scope, "user": user}
        return await super().__call__(scope, receive, send)


class SessionAuthMiddleware(AuthMiddleware):
    """channels' AuthMiddleware, its session lookup on the sockets' threads (socketdb)."""

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await socket_db(get_user.func)(scope)


def SocketAuthStack(inner):
    """channels' AuthMiddlewareStack, with SessionAuthMiddleware in place of AuthMiddleware."""
    return CookieMiddleware(SessionMiddleware(SessionAuthMiddleware(inner)))
