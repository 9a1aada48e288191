"""Who is calling the API: an ``Authorization: Bearer`` token, else the Django session.

Routers pass ``auth=api_auth``. The order matters: the token is tried first, and a
request that carries one is judged by it alone, so a bad token is a 401 rather than a
CSRF failure. Logged-in session requests get ninja's CSRF check on unsafe methods; token
requests need none, since a browser never attaches the header on its own. Tokens that
match nothing are counted per client address; past the limit the address gets 429
(``throttle.Throttled``, answered by the API's handler) until the lock ends.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.security import SessionAuth as NinjaSessionAuth

from webapp.accounts import throttle
from webapp.accounts.tokens import bearer, user_for_bearer


class BearerAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return user_for_bearer(token, throttle.request_address(request))


class SessionAuth(NinjaSessionAuth):
    def __call__(self, request: HttpRequest) -> Any:
        # Without a logged-in session there is nothing for CSRF to protect: the caller
        # is simply unauthenticated (401), not a forgery (403).
        if bearer(request.headers.get("Authorization")) or not request.user.is_authenticated:
            return None
        return super().__call__(request)


bearer_auth = BearerAuth()
session_auth = SessionAuth()
api_auth = [bearer_auth, session_auth]
