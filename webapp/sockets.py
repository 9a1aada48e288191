"""What every websocket meets before its consumer: the Origin check and the URL routes.

The Origin check is Django's CSRF origin check (``CsrfViewMiddleware``) applied to the
handshake, so a socket admits exactly the origins a form post would:

- the socket's own origin: scheme, host and port of the handshake's ``Host`` (or
  ``X-Forwarded-Host`` under ``USE_X_FORWARDED_HOST``), the host admitted by
  ``ALLOWED_HOSTS``, the scheme ``https`` for ``wss`` or behind ``SECURE_PROXY_SSL_HEADER``;
- or one of ``CSRF_TRUSTED_ORIGINS`` (scheme, host and port exactly; ``https://*.example.com``
  for any subdomain with that scheme).

A page served from ``http://127.0.0.1:8000`` may open a socket there; one served from
``http://127.0.0.1:9999`` or ``https://127.0.0.1:8000`` may not, unless trusted. A
handshake with no Origin (not a browser) is refused as before. channels'
``AllowedHostsOriginValidator`` compared the host alone, ignoring scheme and port.

A path no route matches is accepted and closed at once with 4404, instead of the
``ValueError`` channels raises (a 500 and a traceback in the log).
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from channels.routing import URLRouter
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.urls.exceptions import Resolver404
from django.utils.http import is_same_domain

CLOSE_NOT_FOUND = 4404

log = logging.getLogger(__name__)

Scope = dict[str, Any]


def _handshake_request(scope: Scope) -> ASGIRequest:
    """The handshake as a Django request, so that host and scheme follow Django's rules."""
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())


def origin_allowed(scope: Scope) -> bool:
    """Whether the handshake's Origin is the socket's own origin or a trusted one."""
    origins = [v for k, v in scope.get("headers", []) if k == b"origin"]
    if len(origins) != 1:
        return False
    return origin_matches(origins[0].decode("latin-1"), _handshake_request(scope))


def origin_matches(origin: str, request: ASGIRequest) -> bool:
    """Whether `origin` is the request's own (scheme, allowed host, port) or a trusted one.

    Also the MCP endpoint's check (webapp/mcp/endpoint.py), on plain HTTP requests.
    """
    try:
        own = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except DisallowedHost:
        own = None
    if origin == own or origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    wildcards: dict[str, list[str]] = defaultdict(list)
    for trusted in (urlsplit(o) for o in settings.CSRF_TRUSTED_ORIGINS if "*" in o):
        wildcards[trusted.scheme].append(trusted.netloc.lstrip("*"))
    return any(is_same_domain(parsed.netloc, host) for host in wildcards[parsed.scheme])


class SameOriginValidator:
    """Refuses the handshake (403) unless ``origin_allowed``."""

    def __init__(self, application: Any):
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


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
