"""Websocket authentication by ``Authorization: Bearer`` (the session works as usual)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from webapp.accounts.tokens import bearer, user_for_token


class BearerAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        raw = bearer(headers.get(b"authorization", b"").decode("latin-1"))
        if raw:
            user = await database_sync_to_async(user_for_token)(raw)
            if user is not None:
                scope = {**scope, "user": user}
        return await super().__call__(scope, receive, send)
