"""Bearer-token authentication shared by the API and the websocket."""

from __future__ import annotations

from django.utils import timezone

from webapp.accounts import throttle
from webapp.accounts.models import TOKEN_PREFIX, ApiToken, hash_token


def user_for_token(raw: str | None):
    """The active user owning this raw token, or None."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(digest=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user


def user_for_bearer(raw: str, address: str):
    """The user owning this token, or None (counted as a failure against `address`).

    Raises throttle.Throttled while the address is locked, without looking at the token:
    a guess must get no answer during the lock, right or wrong.
    """
    throttle.check(address=address)
    user = user_for_token(raw)
    if user is None:
        throttle.failed(address=address)
    return user


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None
