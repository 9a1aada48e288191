"""What every websocket meets before its consumer: the URL routes.

A path no route matches is accepted and closed at once with 4404, instead of the
``ValueError`` channels raises (a 500 and a traceback in the log).
"""

from __future__ import annotations

import logging
from typing import Any

from channels.routing import URLRouter
from django.urls.exceptions import Resolver404

CLOSE_NOT_FOUND = 4404

log = logging.getLogger(__name__)

Scope = dict[str, Any]


async def close_not_found(scope: Scope, receive: Any, send: Any) -> None:
    """Accept, then close with 4404: a refused handshake reaches a browser as 1006, which
    looks like a network failure and invites reconnecting; 4404 says there is nothing here."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})
        elif message["type"] == "websocket.disconnect":
            return


class Routes(URLRouter):
    """A URLRouter for the outermost websocket routes: an unknown path closes with 4404."""

    def matches(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        root_path = scope.get("root_path", "")
        if root_path:
            if not path.startswith(root_path):
                return False
            path = path[len(root_path) :]
        path = path.lstrip("/")
        for route in self.routes:
            try:
                if route.pattern.match(path):
                    return True
            except Resolver404:
                continue
        return False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if not self.matches(scope):
            log.info("websocket: no route for %s; closing with %s", scope.get("path"), 4404)
            return await close_not_found(scope, receive, send)
        return await super().__call__(scope, receive, send)
