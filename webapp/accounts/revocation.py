"""Open sockets close when the credential that opened them goes: code 4401.

A socket opened with ``Authorization: Bearer`` joins its token's group; one opened with
the session cookie (and no token) joins its session's group. Deleting the token (revoking
it in the settings page, or deleting its user) and logging the session out send
``credentials.revoked`` to that group once the change commits, and the run and flow
consumers close with 4401: the credential is gone, so reconnecting with it is refused
(4403 stays "your access to this object went", with credentials still good).

Consumers join these groups before they re-check the credential (``still_valid``), so a
revocation between the handshake and the join cannot be missed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.http import HttpRequest

from webapp.accounts.models import ApiToken, hash_token
from webapp.accounts.tokens import bearer
from webapp.flows.groups import send_on_commit
from webapp.socketdb import socket_db

CLOSE_SIGNED_OUT = 4401
REVOKED = {"type": "credentials.revoked"}


def _name(kind: str, secret_digest: str) -> str:
    # Hashed again: a group name is visible to anyone who can read the channel layer, and
    # must never be usable as, or lead back to, the credential (nor the stored digest).
    return f"{kind}.{hashlib.sha256(f'{kind}:{secret_digest}'.encode()).hexdigest()[:40]}"


def token_group(digest: str) -> str:
    """The group of the sockets opened with the token whose stored digest is ``digest``."""
    return _name("api-token", digest)


def session_group(session_key: str) -> str:
    """The group of the sockets opened with this session (and no token)."""
    return _name("session", hashlib.sha256(session_key.encode()).hexdigest())


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bearer(value.decode("latin-1"))
    return None


def _session_key(scope: dict[str, Any]) -> str | None:
    session = scope.get("session")
    return getattr(session, "session_key", None) if session is not None else None


def groups_for(scope: dict[str, Any]) -> list[str]:
    """The credential groups an authenticated socket joins (a token judges alone)."""
    raw = _bearer(scope)
    if raw:
        return [token_group(hash_token(raw))]
    key = _session_key(scope)
    return [session_group(key)] if key else []


@socket_db
def still_valid(scope: dict[str, Any]) -> bool:
    """Whether the credential that authenticated the socket still exists."""
    raw = _bearer(scope)
    if raw:
        return ApiToken.objects.filter(digest=hash_token(raw)).exists()
    key = _session_key(scope)
    return key is None or scope["session"].exists(key)


@receiver(post_delete, sender=ApiToken)
def token_deleted(sender: type, instance: ApiToken, **kwargs: Any) -> None:
    send_on_commit(token_group(instance.digest), REVOKED)


@receiver(user_logged_out)
def session_ended(sender: type, request: HttpRequest, **kwargs: Any) -> None:
    # Sent before logout() flushes the session, so the key is still the one sockets hold.
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        send_on_commit(session_group(key), REVOKED)
